"""P7: one new day for every symbol through Airflow: ingest -> features -> scoring -> monitoring.

    .venv/bin/python bench/bench_daily_cycle.py                          # the dev universe
    .venv/bin/python bench/bench_daily_cycle.py --synthetic 654 --years 3  # a named synthetic one
    .venv/bin/python bench/bench_daily_cycle.py --template mf_devuniverse  # reuse a built database

Setup, untimed (printed): its own data database mf_bench_cycle (copied from --template, a
database holding raw.prices and the built marts, or loaded with `marketflow ingest` and
built with `marketflow features`), its own MLflow store and Airflow metadata database, and
a champion trained with ridge alone (`marketflow train --config`; the cycle does not train).

The cycle, timed: the next business day's bar for every symbol (each last close moved by a
seeded +-1%) written as vendor files, then each DAG run by `dag.test()` in turn, as the
scheduler would chain them through their Assets (training is not run: a new day alone does
not retrain): marketflow_ingest (csv provider, that folder), marketflow_features,
marketflow_scoring, marketflow_monitoring. Each must succeed. Prints each DAG's wall time,
the total (target <= 90 s on 2 cores for the dev universe) and the peak RSS of this process
(the tasks run in it; PostgreSQL's memory is not included).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEV_UNIVERSE = ROOT.parent / "shared" / "data" / "dev-universe"
ADMIN_URL = os.environ.get("MARKETFLOW_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
PG = ADMIN_URL.split("@", 1)[1].split("/", 1)[0]
DATABASE, AIRFLOW_DB, MLFLOW_DB = (
    "mf_bench_cycle",
    "mf_bench_cycle_airflow",
    "mf_bench_cycle_mlflow",
)
URL = f"postgresql://marketflow@{PG}/{DATABASE}"
WORK = Path(tempfile.mkdtemp(prefix="mf_bench_p7_"))
CHAIN = ("marketflow_features", "marketflow_scoring", "marketflow_monitoring")
RIDGE_ONLY = """\
label: fwd_ret_5d
seed: 42
processors: [robust_zscore, fillna]
walk_forward: {mode: expanding, train_days: 504, valid_days: 126, test_days: 126,
               step_days: 126, max_folds: 1}
final_valid_days: 126
backtest: {top_k: 10, cost_bps: 10}
selection_metric: rank_ic
gate: {metric: rank_ic, min_coverage: 0.9}
max_abs_feature_corr: 0.3
models:
  ridge: {class: ridge, kwargs: {alpha: 10.0}}
"""

# Airflow reads its configuration at first import: this run's own home and metadata database.
os.environ.update(
    {
        "AIRFLOW_HOME": str(WORK / "airflow"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://marketflow@{PG}/{AIRFLOW_DB}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "MARKETFLOW_DATABASE_URL": URL,
        "MARKETFLOW_DATA_DIR": str(WORK / "data"),
        "MARKETFLOW_DBT_TARGET_PATH": str(WORK / "dbt_target"),
        "MARKETFLOW_DBT_LOG_PATH": str(WORK / "dbt_logs"),
        "MARKETFLOW_INGEST_DATA_ROOTS": f'["{WORK}"]',
        "MLFLOW_TRACKING_URI": f"postgresql+psycopg2://marketflow@{PG}/{MLFLOW_DB}",
        "MARKETFLOW_PROGRESS": "0",
    }
)

from bench.bench_features_daily import write_next_day  # noqa: E402
from core.db import drop_database, ensure_database, ensure_role, init_database  # noqa: E402


def run(*command: str) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, env=dict(os.environ), capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode})")
    return time.perf_counter() - started


def marketflow(*args: str) -> float:
    return run(str(Path(sys.executable).parent / "marketflow"), *args)


def setup(args: argparse.Namespace) -> None:
    for name in (DATABASE, AIRFLOW_DB, MLFLOW_DB):
        drop_database(ADMIN_URL, name)
    ensure_role(ADMIN_URL, "marketflow")
    if args.template:
        run("createdb", "-h", PG.split(":")[0], "-U", "postgres", "-T", args.template, DATABASE)
        init_database(URL, ADMIN_URL)  # idempotent: grants, schema of this version
        print(f"setup: data copied from {args.template}")
    else:
        init_database(URL, ADMIN_URL)
        if args.synthetic:  # the CLI's synthetic provider has 20 symbols: load it here
            from datetime import date

            from ingest.loader import load_prices
            from ingest.providers.synthetic import SyntheticProvider

            started = time.perf_counter()
            provider = SyntheticProvider(
                n_symbols=args.synthetic,
                start=date(2017 - args.years, 1, 2),
                end=date(2016, 12, 30),
            )
            load_prices(URL, provider.fetch(), "synthetic")
            seconds = time.perf_counter() - started
        else:
            seconds = marketflow("ingest", "--provider", "csv", "--path", str(args.path))
        print(f"setup: ingest {seconds:.0f} s")
        print(f"setup: features from scratch {marketflow('features'):.0f} s")
    ensure_database(ADMIN_URL, MLFLOW_DB, "marketflow")
    ensure_database(ADMIN_URL, AIRFLOW_DB, "marketflow")
    config = WORK / "ridge_only.yaml"
    config.write_text(RIDGE_ONLY)
    print(
        f"setup: champion (ridge) trained in {marketflow('train', '--config', str(config)):.0f} s"
    )
    airflow = str(Path(sys.executable).parent / "airflow")
    print(f"setup: airflow db migrate {run(airflow, 'db', 'migrate'):.0f} s")
    run(airflow, "dags", "reserialize")


def cycle() -> dict[str, float]:
    from airflow.dag_processing.dagbag import DagBag

    new_day = WORK / "new_day"
    new_day.mkdir()
    day, n_symbols = write_next_day(URL, new_day)
    print(f"cycle: {n_symbols} bars dated {day}")
    bag = DagBag(str(ROOT / "dags"))
    assert not bag.import_errors, bag.import_errors
    timings: dict[str, float] = {}
    runs = [
        ("marketflow_ingest", {"provider": "csv", "path": str(new_day), "start": day, "end": day})
    ]
    runs += [(dag_id, None) for dag_id in CHAIN]
    for dag_id, conf in runs:
        started = time.perf_counter()
        dag_run = bag.get_dag(dag_id).test(run_conf=conf)
        timings[dag_id] = time.perf_counter() - started
        states = {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}
        print(f"  {dag_id:<24} {timings[dag_id]:7.1f} s  {dag_run.state}")
        if str(dag_run.state) != "success":
            raise SystemExit(f"{dag_id} did not succeed: {states}")
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", type=Path, default=DEV_UNIVERSE)
    parser.add_argument("--synthetic", type=int, help="symbols of a synthetic universe")
    parser.add_argument("--years", type=int, default=3, help="years of the synthetic universe")
    parser.add_argument("--template", help="a database to copy the built data from")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    name = (
        f"synthetic {args.synthetic} symbols x {args.years} y (seed 0)"
        if args.synthetic
        else f"{args.template or args.path}"
    )
    print(f"input: {name}")
    print(f"machine: {platform.platform()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    try:
        setup(args)
        timings = cycle()
        total = sum(timings.values())
        print(f"P7 daily cycle: {total:.1f} s (target <= 90 s)")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
        print(f"peak RSS of the cycle's process: {peak:.2f} GB (PostgreSQL not included)")
    finally:
        if not args.keep:
            for db in (DATABASE, AIRFLOW_DB, MLFLOW_DB):
                drop_database(ADMIN_URL, db)


if __name__ == "__main__":
    main()
