"""Feature store build time: a full dbt build, then the incremental build after one more day.

    .venv/bin/python bench/bench_features.py              # 500 symbols x 10 years (~1.25M bars)
    .venv/bin/python bench/bench_features.py --symbols 50 # a smaller run
    .venv/bin/python bench/bench_features.py --keep       # leave the database for a look

Works in its own database, mf_bench_features (dropped and created at the start, dropped at
the end unless --keep), on the server named by MARKETFLOW_ADMIN_URL, with dbt's target in a
temporary folder (never dbt/target). Data: the synthetic provider (seed 0), every business
day of 2015-2024 but the last, loaded by the real loader; the last day is loaded as a second
batch before the incremental build. Both builds are `dbt build` (models, seed and data
tests, as the pipeline runs it); the model time of each is also read from run_results.json.
See bench/README.md for results.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import psycopg2

from core.db import drop_database, init_database
from core.dbt import build, target_path
from core.urls import with_database
from ingest.loader import load_prices
from ingest.providers.synthetic import SyntheticProvider

DATABASE = "mf_bench_features"
ADMIN_URL = os.environ.get("MARKETFLOW_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
URL = with_database(ADMIN_URL, DATABASE).replace("://postgres@", "://marketflow@", 1)
START, END = date(2015, 1, 1), date(2024, 12, 31)
INCREMENTAL_MODELS = ("model.marketflow.features_daily", "model.marketflow.labels_daily")


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def timed_build() -> tuple[float, dict[str, float]]:
    """Wall seconds of one `dbt build`, and each incremental model's own seconds."""
    conn = psycopg2.connect(ADMIN_URL)  # CHECKPOINT needs the superuser
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("checkpoint")  # neither build pays for the other's dirty buffers
    conn.close()
    started = time.perf_counter()
    build(URL)
    seconds = time.perf_counter() - started
    results = json.loads((target_path() / "run_results.json").read_text())["results"]
    models = {r["unique_id"]: r["execution_time"] for r in results}
    return seconds, {name: models[name] for name in INCREMENTAL_MODELS}


def count(query: str) -> int:
    with psycopg2.connect(URL) as conn, conn.cursor() as cur:
        cur.execute(query)
        (value,) = cur.fetchone()
    conn.close()
    return int(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--keep", action="store_true", help="keep the database at the end")
    args = parser.parse_args()

    os.environ["MARKETFLOW_DBT_TARGET_PATH"] = str(
        Path(tempfile.mkdtemp(prefix="mf_bench_dbt_")) / "target"
    )
    days = pd.bdate_range(START, END).date
    last_day = days[-1]
    provider = SyntheticProvider(n_symbols=args.symbols, start=START, end=END)

    drop_database(ADMIN_URL, DATABASE)
    init_database(URL, ADMIN_URL)
    try:
        say(f"loading {args.symbols} symbols, {START}..{last_day - timedelta(days=1)}")
        loaded = load_prices(URL, provider.fetch(end=days[-2]), "synthetic")
        say(f"loaded {loaded.rows_inserted:,} bars in {loaded.seconds:.1f}s")

        say("full build (dbt build: empty marts)")
        full_s, full_models = timed_build()
        rows = count("select count(*) from marts.features_daily")
        columns = count(
            "select count(*) from information_schema.columns"
            " where table_schema = 'marts' and table_name = 'features_daily'"
        )
        say(f"full build: {full_s:.1f}s, {rows:,} rows x {columns} columns")

        appended = load_prices(URL, provider.fetch(start=last_day, end=last_day), "synthetic")
        say(f"appended {appended.rows_inserted:,} bars for {last_day}")
        say("incremental build (dbt build: one new day)")
        incremental_s, incremental_models = timed_build()
        say(f"incremental build: {incremental_s:.1f}s")
        assert count("select count(*) from marts.features_daily") == rows + appended.rows_inserted

        full_model_s = sum(full_models.values())
        incremental_model_s = sum(incremental_models.values())
        print()
        print(
            f"machine            {platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}"
        )
        print(f"data               {rows:,} bars ({args.symbols} symbols), {columns} columns")
        print(
            f"full build         {full_s:8.1f} s   (features + labels models {full_model_s:.1f} s)"
        )
        print(
            f"incremental build  {incremental_s:8.1f} s   "
            f"(features + labels models {incremental_model_s:.1f} s)"
        )
        print(f"ratio, dbt build   {incremental_s / full_s:8.1%}   (target <= 5%)")
        print(f"ratio, models      {incremental_model_s / full_model_s:8.1%}")
    finally:
        if not args.keep:
            drop_database(ADMIN_URL, DATABASE)


if __name__ == "__main__":
    main()
