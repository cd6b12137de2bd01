"""The locks install anywhere (issue 16): public version pins only, the runtime lock free of
test and lint tools, the two locks agreeing on every package they share, and every runtime
dependency of pyproject.toml pinned. `make lock-check` (in `make lint`) checks they are what
`make lock` writes."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==(\S+)$")


def _pins(name: str) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (REPO / name).read_text().splitlines():
        match = PIN.match(line.strip())
        if match:
            pins[match.group(1).lower().replace("_", "-")] = match.group(2)
    return pins


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_the_locks_hold_public_pins_only() -> None:
    for lock in ("requirements.txt", "requirements-dev.txt"):
        text = (REPO / lock).read_text()
        options = [line for line in text.splitlines() if line.startswith("-")]
        assert options == [], f"{lock}: {options} (machine paths do not install elsewhere)"
        local = {name: v for name, v in _pins(lock).items() if "+" in v}
        assert local == {}, f"{lock}: local build tags no index serves: {local}"
        assert _pins(lock), lock


def test_the_runtime_lock_has_no_dev_tools_and_pins_every_dependency() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    runtime, dev = _pins("requirements.txt"), _pins("requirements-dev.txt")
    tools = {_name(r) for r in project["optional-dependencies"]["dev"]}
    assert tools & set(runtime) == set(), "test and lint tools are not runtime dependencies"
    assert tools <= set(dev)
    wanted = {_name(r) for r in project["dependencies"] + project["optional-dependencies"]["cpu"]}
    assert wanted - set(runtime) == set()
    # One environment: every package both locks pin is pinned to the same version.
    differ = {name: (v, dev[name]) for name, v in runtime.items() if dev.get(name) != v}
    assert differ == {}
