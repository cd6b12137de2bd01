"""P2: the whole features stage after one new day, against the whole stage from scratch.

    .venv/bin/python bench/bench_features_daily.py                 # the dev universe
    .venv/bin/python bench/bench_features_daily.py --path DIR      # another folder of vendor files
    .venv/bin/python bench/bench_features_daily.py --keep          # leave the database

The path a user takes: `marketflow ingest --provider csv --path DIR`, then `marketflow
features` (GX gate on raw.prices, `dbt build`, GX gates on the three marts) from scratch;
then one new bar for every symbol (the next business day, each symbol's last close moved by
a seeded +-1%, written as vendor files into a temporary folder and ingested the same way),
and `marketflow features` again. Each command runs as a subprocess with the database in
MARKETFLOW_DATABASE_URL; the ratio is new day / from scratch (target <= 0.05), measured in
the same run. Peak memory: the largest RSS of any command (ru_maxrss of the children; the
PostgreSQL server's own memory is not in it). Each gate's scope and time are read back from
monitoring.validation_runs.

Works in its own database, mf_bench_features_daily (dropped and created at the start,
dropped at the end unless --keep), with dbt's target and the Data Docs in a temporary folder.
"""

from __future__ import annotations

import argparse
import gzip
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg2

from core.db import drop_database, init_database
from core.urls import with_database

ROOT = Path(__file__).resolve().parents[1]
DEV_UNIVERSE = ROOT.parent / "shared" / "data" / "dev-universe"
DATABASE = "mf_bench_features_daily"
ADMIN_URL = os.environ.get("MARKETFLOW_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
URL = with_database(ADMIN_URL, DATABASE).replace("://postgres@", "://marketflow@", 1)


def marketflow(*args: str, env: dict[str, str]) -> float:
    """Run one `marketflow` command; its wall time in seconds (it must succeed)."""
    started = time.perf_counter()
    done = subprocess.run(
        [str(Path(sys.executable).parent / "marketflow"), *args],
        env=env,
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
        raise SystemExit(f"marketflow {' '.join(args)} failed ({done.returncode})")
    return elapsed


def peak_child_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2


def write_next_day(url: str, folder: Path, seed: int = 0) -> tuple[str, int]:
    """One vendor file per symbol holding its next business day's bar."""
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            "select distinct on (symbol) symbol, trade_date, close, volume from raw.prices"
            " order by symbol, trade_date desc"
        )
        last = pd.DataFrame(cur.fetchall(), columns=["symbol", "trade_date", "close", "volume"])
    conn.close()
    day = (pd.Timestamp(last["trade_date"].max()) + pd.offsets.BDay(1)).date()
    moves = np.random.default_rng(seed).uniform(-0.01, 0.01, len(last))
    for (symbol, close, volume), move in zip(
        last[["symbol", "close", "volume"]].itertuples(index=False), moves, strict=True
    ):
        new_close = round(float(close) * (1 + move), 4)
        high = round(max(float(close), new_close) * 1.002, 4)
        low = round(min(float(close), new_close) * 0.998, 4)
        with gzip.open(folder / f"{symbol}.csv.gz", "wt") as out:
            out.write("Date,Open,High,Low,Close,Volume,OpenInt\n")
            out.write(f"{day},{close},{high},{low},{new_close},{int(volume)},0\n")
    return day.isoformat(), len(last)


def gate_report(url: str, since_id: int) -> list[tuple]:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            "select suite, success, rows_validated, scope,"
            " extract(epoch from created_at - started_at)"
            " from monitoring.validation_runs where id > %s order by id",
            (since_id,),
        )
        rows = cur.fetchall()
    conn.close()
    return rows


def last_run_id(url: str) -> int:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("select coalesce(max(id), 0) from monitoring.validation_runs")
        (value,) = cur.fetchone()
    conn.close()
    return int(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", type=Path, default=DEV_UNIVERSE)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()

    drop_database(ADMIN_URL, DATABASE)
    init_database(URL, ADMIN_URL)
    work = Path(tempfile.mkdtemp(prefix="mf_bench_p2_"))
    env = {
        **os.environ,
        "MARKETFLOW_DATABASE_URL": URL,
        "MARKETFLOW_DATA_DIR": str(work / "data"),
        "MARKETFLOW_DBT_TARGET_PATH": str(work / "dbt_target"),
        "MARKETFLOW_DBT_LOG_PATH": str(work / "dbt_logs"),
        "MARKETFLOW_PROGRESS": "0",
    }
    print(f"input: {args.path} ({len(list(args.path.glob('*.csv*')))} files)")
    print(f"machine: {platform.platform()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    try:
        ingest_s = marketflow("ingest", "--provider", "csv", "--path", str(args.path), env=env)
        with psycopg2.connect(URL) as conn, conn.cursor() as cur:
            cur.execute("select count(*), count(distinct symbol) from raw.prices")
            n_bars, n_symbols = cur.fetchone()
        conn.close()
        print(f"ingest: {n_bars:,} bars of {n_symbols} symbols in {ingest_s:.1f} s")

        scratch_s = marketflow("features", env=env)
        print(f"features from scratch: {scratch_s:.1f} s")
        for row in gate_report(URL, 0):
            print("  gate {:<15} passed={} rows={} ({}) {:.1f} s".format(*row))

        new_day_dir = work / "new_day"
        new_day_dir.mkdir()
        day, n_new = write_next_day(URL, new_day_dir)
        new_ingest_s = marketflow(
            "ingest", "--provider", "csv", "--path", str(new_day_dir), env=env
        )
        print(f"ingest of {n_new} bars dated {day}: {new_ingest_s:.1f} s")

        before = last_run_id(URL)
        daily_s = marketflow("features", env=env)
        print(f"features after one new day: {daily_s:.1f} s")
        for row in gate_report(URL, before):
            print("  gate {:<15} passed={} rows={} ({}) {:.1f} s".format(*row))
        print(f"P2 new day / from scratch: {daily_s / scratch_s:.3f}  (target <= 0.05)")
        print(f"peak RSS of any command: {peak_child_rss_gb():.2f} GB (PostgreSQL not included)")
    finally:
        if not args.keep:
            drop_database(ADMIN_URL, DATABASE)


if __name__ == "__main__":
    main()
