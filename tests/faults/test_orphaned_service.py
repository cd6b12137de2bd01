"""A service whose leader dies by SIGKILL leaves children on its ports: `down` and `up` reclaim
them (the scheduler's log and health servers, 8793/8974, in the drill that found it)."""

from __future__ import annotations

import os
import signal
import socket
import sys
import textwrap
from pathlib import Path

from core.settings import Settings
from marketflow.services import Service, run_dir, start_all, stop_all
from tests.api.api_test_helpers import free_port
from tests.helpers import wait_for

# The leader starts a child that listens on the port, as Airflow's scheduler starts its
# log server, then waits; the child records its pid.
LEADER = textwrap.dedent(
    """
    import subprocess, sys, time
    port, pidfile = sys.argv[1], sys.argv[2]
    child = (
        "import os, socket, sys, time\\n"
        "s = socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen()\\n"
        "open(sys.argv[2], 'w').write(str(os.getpid()))\\n"
        "time.sleep(600)\\n"
    )
    subprocess.Popen([sys.executable, "-c", child, port, pidfile])
    time.sleep(600)
    """
)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _alive(pid: int) -> bool:
    """Running, not a zombie (an orphan's exit is reaped by init, perhaps later)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def _wait(predicate, what: str, timeout: float = 20.0) -> None:
    wait_for(predicate, what, timeout, every=0.1)


def _kill_leader(settings: Settings, name: str) -> int:
    """SIGKILL the service's leader only (not its group), as the OOM killer would."""
    leader = int((run_dir(settings) / f"{name}.pid").read_text())
    os.kill(leader, signal.SIGKILL)
    os.waitpid(leader, 0)  # the test process started it: reap it, as init would
    return leader


def test_a_killed_leaders_children_are_stopped_by_down_and_reclaimed_by_up(
    tmp_path: Path,
) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    port, child_pidfile = free_port(), tmp_path / "child.pid"
    stack = [Service("fake-scheduler", [sys.executable, "-c", LEADER, str(port),
                                        str(child_pidfile)], None, {})]  # fmt: skip
    said: list[str] = []
    try:
        start_all(settings, echo=said.append, stack=stack)
        _wait(lambda: _listening(port) and child_pidfile.exists(), "the child's port")
        orphan = int(child_pidfile.read_text())
        _kill_leader(settings, "fake-scheduler")
        assert _alive(orphan) and _listening(port), "the drill needs the orphan on its port"

        # `up` again: the orphan is stopped first, so the new child can take the port.
        child_pidfile.unlink()
        start_all(settings, echo=said.append, stack=stack)
        assert any("stopping what its dead process" in line for line in said), said
        _wait(child_pidfile.exists, "the new child")
        new_child = int(child_pidfile.read_text())
        assert new_child != orphan
        _wait(lambda: not _alive(orphan), "the orphan to exit", timeout=5)
        assert _listening(port)

        # `down` with the leader dead again: the whole group goes, the port is free.
        _kill_leader(settings, "fake-scheduler")
        assert _alive(new_child)
        said.clear()
        stop_all(settings, echo=said.append, stack=stack, timeout=5)
        assert len(said) == 1 and "its leader already dead" in said[0], said
        _wait(lambda: not _alive(new_child), "the orphan to exit", timeout=5)
        assert not _listening(port)
        assert not (run_dir(settings) / "fake-scheduler.pid").exists()
    finally:
        stop_all(settings, echo=lambda _: None, stack=stack, timeout=2)
