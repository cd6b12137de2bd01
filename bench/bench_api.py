"""The API under gunicorn against a bare Flask JSON endpoint on the same gunicorn settings.

    .venv/bin/python bench/bench_api.py                 # 3 rounds x 5 s of wrk per endpoint
    .venv/bin/python bench/bench_api.py --rounds 5 --duration 5 --connections 32 --workers 2

In one run, alternating round after round: wrk on `GET /api/v1/signals/latest` (500 symbols,
with a key) and on a bare Flask endpoint returning a small JSON object, both served by `gunicorn -c api/gunicorn.conf.py`
with the same workers; then the p50 of `POST /api/v1/score` for 10 symbols (keep-alive client,
after warm-up). Works in its own databases, mf_bench_api and mf_bench_api_mlflow (dropped and
created at the start, dropped at the end), on the server named by MARKETFLOW_ADMIN_URL, and
free ports. See bench/README.md.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

GUNICORN = Path(sys.executable).with_name("gunicorn")
ADMIN_URL = os.environ.get("MARKETFLOW_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
DATABASE = "mf_bench_api"


def bare_app() -> Any:
    """The baseline: Flask returning a small JSON object, nothing else."""
    from flask import Flask, jsonify

    app = Flask("bare")

    @app.get("/bare")
    def bare() -> Any:
        return jsonify(status="ok", value=42)

    return app


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_gunicorn(app: str, env: dict[str, str], log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**env, "MARKETFLOW_API_BIND": f"127.0.0.1:{port}"}
    server = subprocess.Popen(
        [str(GUNICORN), "-c", "api/gunicorn.conf.py", "--access-logfile", "/dev/null", app],
        cwd=REPO,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    base = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"gunicorn exited:\n{log.read_text()}")
        try:
            conn = http.client.HTTPConnection(base, timeout=2)
            conn.request("GET", "/bare" if "bare" in app else "/api/v1/health")
            if conn.getresponse().status == 200:
                return server, base
        except OSError:
            pass
        time.sleep(0.2)
    server.terminate()
    raise RuntimeError(f"gunicorn did not answer:\n{log.read_text()}")


def stop(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.kill()


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk(url: str, connections: int, duration: int, threads: int, key: str | None) -> dict:
    # Accept-Encoding as every HTTP library sends it; the bare endpoint's body is too small
    # for it to matter, the 500-symbol list is served gzipped.
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", url]
    command[1:1] = ["-H", "Accept-Encoding: gzip"]
    if key:
        command[1:1] = ["-H", f"Authorization: Bearer {key}"]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout

    def latency(pct: str) -> float:
        value, unit = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()  # type: ignore[union-attr]
        return float(value) * _UNITS[unit]

    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": errors.group(1) if errors else "",
    }


def median_result(rounds: list[dict]) -> dict:
    keys = ("requests_per_s", "p50_ms", "p99_ms")
    out: dict[str, Any] = {k: statistics.median(r[k] for r in rounds) for k in keys}
    out["rounds"] = [{k: r[k] for k in keys} for r in rounds]
    out["non_2xx"] = sum(r["non_2xx"] for r in rounds)
    out["socket_errors"] = "; ".join(r["socket_errors"] for r in rounds if r["socket_errors"])
    return out


def score_p50(base: str, key: str, symbols: list[str], n: int) -> dict[str, float]:
    conn = http.client.HTTPConnection(base, timeout=30)
    body = json.dumps({"symbols": symbols})
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    def once() -> float:
        t0 = time.perf_counter()
        conn.request("POST", "/api/v1/score", body, headers)
        response = conn.getresponse()
        data = response.read()
        elapsed = (time.perf_counter() - t0) * 1000
        if response.status != 200:
            raise RuntimeError(f"score answered {response.status}: {data[:300]!r}")
        return elapsed

    first = once()  # loads the champion
    for _ in range(20):
        once()
    times = sorted(once() for _ in range(n))
    return {
        "first_ms": first,
        "p50_ms": statistics.median(times),
        "p90_ms": times[int(0.9 * len(times))],
        "n": n,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--score-requests", type=int, default=300)
    args = parser.parse_args()

    from api.keys import create_key
    from core.db import drop_database, ensure_database, init_database
    from core.urls import with_database
    from tests.api.api_test_helpers import API_ROLE, as_role, seed_demo

    owner_url = with_database(ADMIN_URL, DATABASE).replace("://postgres@", "://marketflow@", 1)
    mlflow_db = f"{DATABASE}_mlflow"
    drop_database(ADMIN_URL, DATABASE)
    drop_database(ADMIN_URL, mlflow_db)
    init_database(owner_url, ADMIN_URL)
    ensure_database(ADMIN_URL, mlflow_db, "marketflow")
    tracking_uri = with_database(owner_url, mlflow_db).replace(
        "postgresql://", "postgresql+psycopg2://", 1
    )
    servers: list[subprocess.Popen] = []
    try:
        with tempfile.TemporaryDirectory(prefix="mf_bench_api_") as tmp:
            say(f"seeding {args.symbols} symbols and a champion")
            seeded = seed_demo(owner_url, tracking_uri, Path(tmp) / "artifacts", "bench_model",
                               n_symbols=args.symbols, n_days=5,
                               reports_dir=Path(tmp) / "data" / "reports")  # fmt: skip
            _, key = create_key(owner_url, "bench")
            env = {
                **os.environ,
                "MARKETFLOW_API_DATABASE_URL": as_role(owner_url, API_ROLE),
                "MARKETFLOW_API_WORKERS": str(args.workers),
                "MLFLOW_TRACKING_URI": tracking_uri,
                "MARKETFLOW_MODEL_NAME": "bench_model",
                "MARKETFLOW_DATA_DIR": str(Path(tmp) / "data"),
                "PYTHONPATH": f"{REPO}:{REPO / 'bench'}",
            }
            bare, bare_base = start_gunicorn("bench_api:bare_app()", env, Path(tmp) / "bare.log")
            servers.append(bare)
            api, api_base = start_gunicorn("api.wsgi:app", env, Path(tmp) / "api.log")
            servers.append(api)

            latest = f"http://{api_base}/api/v1/signals/latest"
            check = http.client.HTTPConnection(api_base, timeout=10)
            check.request(
                "GET", "/api/v1/signals/latest", headers={"Authorization": f"Bearer {key}"}
            )
            count = json.loads(check.getresponse().read())["count"]
            assert count == args.symbols, count

            say("wrk: warm-up")
            wrk(latest, args.connections, 2, args.threads, key)
            wrk(f"http://{bare_base}/bare", args.connections, 2, args.threads, None)
            # Alternate the two, round after round: the machine's load drifts during a run,
            # and each side should see the same share of it. Medians over the rounds.
            bare_rounds, api_rounds = [], []
            for round_ in range(1, args.rounds + 1):
                say(f"round {round_}/{args.rounds}: wrk bare Flask, then /api/v1/signals/latest "
                    f"({args.symbols} symbols), {args.connections} connections, {args.duration}s")  # fmt: skip
                bare_rounds.append(wrk(f"http://{bare_base}/bare", args.connections,
                                       args.duration, args.threads, None))  # fmt: skip
                api_rounds.append(wrk(latest, args.connections, args.duration, args.threads, key))
            base_result = median_result(bare_rounds)
            api_result = median_result(api_rounds)
            say("POST /api/v1/score, 10 symbols")
            scoring = score_p50(api_base, key, seeded["symbols"][:10], args.score_requests)
            load = os.getloadavg()
    finally:
        for server in servers:
            stop(server)
        drop_database(ADMIN_URL, DATABASE)
        drop_database(ADMIN_URL, mlflow_db)

    ratio = api_result["requests_per_s"] / base_result["requests_per_s"]
    report = {
        "bare_flask": base_result,
        "signals_latest": api_result,
        "throughput_ratio": round(ratio, 3),
        "score_10_symbols": {k: round(v, 3) for k, v in scoring.items()},
        "settings": {
            "connections": args.connections,
            "threads": args.threads,
            "workers": args.workers,
            # Threads per worker from MARKETFLOW_API_THREADS (1: sync worker; >1: gthread).
            "gunicorn_threads": int(os.environ.get("MARKETFLOW_API_THREADS") or 1),
            "duration_s": args.duration,
            "rounds": args.rounds,
            "symbols": args.symbols,
            "cpus": os.cpu_count(),
        },
        "load_average_after": [round(x, 2) for x in load],
    }
    print(json.dumps(report, indent=2))
    print(
        f"\nsignals/latest: {api_result['requests_per_s']:.0f} req/s "
        f"(p50 {api_result['p50_ms']:.2f} ms, p99 {api_result['p99_ms']:.2f} ms); bare Flask: "
        f"{base_result['requests_per_s']:.0f} req/s (p50 {base_result['p50_ms']:.2f} ms, "
        f"p99 {base_result['p99_ms']:.2f} ms); ratio {ratio:.2f} (target >= 0.5, p99 <= 20 ms)"
        f"\nPOST /score, 10 symbols: p50 {scoring['p50_ms']:.2f} ms (target <= 5 ms); "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
