"""The zoo's training fan-out on Celery: the whole training DAG run on 2 workers vs 1.

    .venv/bin/python bench/bench_fanout.py                         # synthetic-40x8 (40 symbols, 8 years)
    .venv/bin/python bench/bench_fanout.py --symbols 100 --years 10

Setup, untimed (printed): a data database of its own (mf_bench_fanout) with a named synthetic
universe loaded by the synthetic provider (seed 0) and `marketflow features` built, Airflow's
metadata database, a redis-server of its own on a free port (the broker), and the local
stack's Airflow processes from stack.yaml with the CeleryExecutor (api-server, scheduler,
dag-processor, `default` workers) on free ports.

Timed, once with one worker and once with two (each `--concurrency 1`, both consuming the
`default` queue, where the training queue points by default): `marketflow_training` triggered
through Airflow's REST API, from the trigger to the run's end (check_data -> begin -> one
mapped walk-forward per zoo model -> register_and_gate). Each run starts from an empty MLflow
store (its own database), so both train the same zoo on the same folds. Prints both wall
times, the ratio (the baseline is the one-worker run of the same process run) and the peak
RSS of the workers' process trees (sampled twice a second).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
ADMIN_URL = os.environ.get("MARKETFLOW_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
PG = ADMIN_URL.split("@", 1)[1].split("/", 1)[0]
DATABASE, AIRFLOW_DB, MLFLOW_DB = (
    "mf_bench_fanout",
    "mf_bench_fanout_airflow",
    "mf_bench_fanout_mlflow",
)
URL = f"postgresql://marketflow@{PG}/{DATABASE}"
WORK = Path(tempfile.mkdtemp(prefix="mf_bench_fanout_"))
DAG_ID = "marketflow_training"
N_MODELS = 0


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


REDIS_PORT = free_port()
os.environ.update(
    {
        "MARKETFLOW_DATABASE_URL": URL,
        "MARKETFLOW_DATA_DIR": str(WORK / "data"),
        "MARKETFLOW_DBT_TARGET_PATH": str(WORK / "dbt_target"),
        "MARKETFLOW_DBT_LOG_PATH": str(WORK / "dbt_logs"),
        "MARKETFLOW_AIRFLOW_PORT": str(free_port()),
        "MARKETFLOW_AIRFLOW_DATABASE": AIRFLOW_DB,
        "MARKETFLOW_EXECUTOR": "celery",
        "MARKETFLOW_CELERY_BROKER_URL": f"redis://127.0.0.1:{REDIS_PORT}/0",
        "MLFLOW_TRACKING_URI": f"postgresql+psycopg2://marketflow@{PG}/{MLFLOW_DB}",
        "MARKETFLOW_PROGRESS": "0",
        # The demo's zoo without its second benchmark (AAPL is not in a synthetic universe).
        "MARKETFLOW_TRAINING_CONFIG": str(WORK / "zoo.yaml"),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
    }
)

from core.db import drop_database, ensure_database, ensure_role, init_database  # noqa: E402
from core.settings import get_settings  # noqa: E402
from marketflow.airflow_api import AirflowApi  # noqa: E402
from marketflow.services import Service, airflow_env, services, start_all, stop_all  # noqa: E402


def run(*command: str, env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return time.perf_counter() - started


def write_config() -> int:
    """ml/config/models.yaml less `backtest.benchmark_symbol`; the number of models."""
    import yaml

    config = yaml.safe_load((ROOT / "ml" / "config" / "models.yaml").read_text())
    config["backtest"].pop("benchmark_symbol", None)
    (WORK / "zoo.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return len(config["models"])


def setup(args: argparse.Namespace) -> None:
    from ingest.loader import load_prices
    from ingest.providers.synthetic import SyntheticProvider

    for name in (DATABASE, AIRFLOW_DB, MLFLOW_DB):
        drop_database(ADMIN_URL, name)
    ensure_role(ADMIN_URL, "marketflow")
    init_database(URL, ADMIN_URL)
    provider = SyntheticProvider(
        n_symbols=args.symbols, start=date(2017 - args.years, 1, 2), end=date(2016, 12, 30)
    )
    started = time.perf_counter()
    load_prices(URL, provider.fetch(), "synthetic")
    print(
        f"setup: synthetic-{args.symbols}x{args.years} loaded in {time.perf_counter() - started:.0f} s"
    )
    marketflow = str(Path(sys.executable).parent / "marketflow")
    print(f"setup: features from scratch {run(marketflow, 'features'):.0f} s")
    ensure_database(ADMIN_URL, AIRFLOW_DB, "marketflow")
    env = {**os.environ, **airflow_env(get_settings()),
           "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True"}  # fmt: skip
    airflow = str(Path(sys.executable).parent / "airflow")
    print(f"setup: airflow db migrate {run(airflow, 'db', 'migrate', env=env):.0f} s")
    run(airflow, "dags", "reserialize", env=env)


THREADS: dict[str, str] = {}  # --threads: the math libraries' threads in every task


def workers(n: int) -> list[Service]:
    """The stack's Airflow processes with `n` workers on the `default` queue, one slot each."""
    # Every other DAG stays paused: no scheduled ingest or features run competes.
    paused = {"AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True"}
    stack = [
        replace(s, env={**s.env, **paused})
        for s in services(get_settings())
        if s.name.startswith("airflow-")
    ]
    base = next(s for s in stack if s.name == "airflow-worker")
    out = [s for s in stack if "worker" not in s.name]
    for i in range(n):
        argv = list(base.argv)
        argv[argv.index("--concurrency") + 1] = "1"
        argv[argv.index("--celery-hostname") + 1] = f"default{i}@%h"
        env = {**base.env, "MARKETFLOW_WORKER_NAME": f"default{i}", **THREADS}
        out.append(Service(f"airflow-worker-{i}", argv, None, env))
    return out


def _tree_rss(pgids: list[int]) -> int:
    """Resident bytes of every live process in these process groups."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) in pgids:
                total += int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    return total


def one_run(n: int, timeout: float) -> tuple[float, int]:
    drop_database(ADMIN_URL, MLFLOW_DB)  # no earlier version: the zoo trains in full
    ensure_database(ADMIN_URL, MLFLOW_DB, "marketflow")
    settings = get_settings()
    stack = workers(n)
    start_all(settings, echo=lambda _: None, stack=stack)
    run_dir = settings.data_dir / "run"
    pgids = [int((run_dir / f"{s.name}.pid").read_text()) for s in stack if "worker" in s.name]
    peak, done = [0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _tree_rss(pgids))
            time.sleep(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    try:
        api = AirflowApi.for_stack(settings)
        deadline = time.monotonic() + 180
        while True:  # the DAG processor has parsed the DAGs
            try:
                api.set_paused(DAG_ID, False)
                break
            except Exception:  # noqa: BLE001 - 404 until parsed
                if time.monotonic() > deadline:
                    raise
                time.sleep(2)
        sampler.start()
        run_id = f"bench_fanout_{n}_{int(time.time())}"
        started = time.perf_counter()
        api.trigger(DAG_ID, run_id, {})
        while True:
            [state] = [r for r in api.runs_since([DAG_ID], datetime(2000, 1, 1, tzinfo=UTC))
                       if r.run_id == run_id]  # fmt: skip
            if state.state in ("success", "failed"):
                break
            if time.perf_counter() - started > timeout:
                raise SystemExit(f"{n} worker(s): no result after {timeout:.0f} s")
            time.sleep(2)
        seconds = time.perf_counter() - started
        if state.state != "success":
            raise SystemExit(f"{n} worker(s): the training run failed (logs: {run_dir / 'logs'})")
        # Every candidate's walk-forward finished (the gather task runs on any one success).
        results = list((settings.data_dir / "training").glob("*/*/"))
        if len(results) != N_MODELS:
            raise SystemExit(f"{n} worker(s): {len(results)} of {N_MODELS} walk-forwards finished")
        for folder in (settings.data_dir / "training").glob("*"):
            shutil.rmtree(folder)
    finally:
        done.set()
        stop_all(settings, echo=lambda _: None, stack=stack, timeout=20)
    return seconds, peak[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--symbols", type=int, default=40)
    parser.add_argument("--years", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--keep", action="store_true", help="keep the databases")
    parser.add_argument(
        "--threads", type=int, default=0,
        help="threads of torch, XGBoost and BLAS in each task (0: their defaults, every core)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.threads:
        THREADS.update({name: str(args.threads) for name in
                        ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")})  # fmt: skip
    print(f"== {platform.node()} {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}; "
          f"input synthetic-{args.symbols}x{args.years}, zoo of ml/config/models.yaml, "
          f"threads per task: {args.threads or 'default'}")  # fmt: skip
    redis = subprocess.Popen(
        ["redis-server", "--port", str(REDIS_PORT), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no"], stdout=subprocess.DEVNULL,
    )  # fmt: skip
    global N_MODELS
    N_MODELS = write_config()
    try:
        setup(args)
        results = {n: one_run(n, args.timeout) for n in (1, 2)}
    finally:
        redis.terminate()
        if not args.keep:
            for name in (DATABASE, AIRFLOW_DB, MLFLOW_DB):
                drop_database(ADMIN_URL, name)
    print(f"\n{'workers':>8} {'wall s':>8} {'peak RSS MB (workers)':>22}")
    for n, (seconds, peak) in results.items():
        print(f"{n:>8} {seconds:>8.1f} {peak / 2**20:>22.0f}")
    ratio = results[2][0] / results[1][0]
    print(f"\n2 workers / 1 worker, wall: {ratio:.2f} (speed-up {1 / ratio:.2f}x); "
          f"load {os.getloadavg()[0]:.2f} at the end")  # fmt: skip


if __name__ == "__main__":
    main()
