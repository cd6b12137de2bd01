"""P2b: the full features_daily build on every core, against one slice and the numpy reference.

    .venv/bin/python bench/bench_features_full.py                  # the dev universe
    .venv/bin/python bench/bench_features_full.py --path DIR       # another folder of vendor files
    .venv/bin/python bench/bench_features_full.py --slices 4 --keep

The path a user takes: `marketflow ingest --provider csv --path DIR` loads the vendor files,
then the full build of features_daily as `marketflow features` runs it (`dbt run --select
+features_daily --full-refresh`), timed twice in the same run: with one slice (the single
statement) and with one slice per core (MARKETFLOW_DBT_FEATURE_SLICES, default: the
machine's cores). The two tables are compared row for row (EXCEPT ALL both ways). Then the
project's numpy/pandas reference (tests/dbt/reference.py, one thread) computes the same
columns from the same raw rows. Ratios: all cores / one slice (target <= 0.6 on 2 cores) and
all cores / reference (target <= 4).

Peak memory: this process's RSS (the reference's frames) and the largest PostgreSQL backend
RSS sampled every 0.5 s during each build (the slices run in server backends, not here).

Works in its own database, mf_bench_features_full (dropped and created at the start, dropped
at the end unless --keep), with dbt's target and logs in a temporary folder.
"""

from __future__ import annotations

import os

# The reference runs on one core: pin BLAS/OpenMP threads before numpy loads.
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import pandas as pd  # noqa: E402
import psycopg2  # noqa: E402

from core.db import drop_database, init_database  # noqa: E402
from core.dbt import run_dbt  # noqa: E402
from core.urls import with_database  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.dbt.reference import expected_features  # noqa: E402

DEV_UNIVERSE = ROOT.parent / "shared" / "data" / "dev-universe"
DATABASE = "mf_bench_features_full"
ADMIN_URL = os.environ.get("MARKETFLOW_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
URL = with_database(ADMIN_URL, DATABASE).replace("://postgres@", "://marketflow@", 1)


def query(url: str, sql: str) -> list[tuple]:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(sql)
        rows = cur.fetchall() if cur.description else []
    conn.close()
    return rows


class BackendPeak(threading.Thread):
    """The largest RSS (GB) of any server backend of the bench database while running."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak_kb = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.5):
            pids = [
                pid
                for (pid,) in query(
                    ADMIN_URL, f"select pid from pg_stat_activity where datname = '{DATABASE}'"
                )
            ]
            for pid in pids:
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                except OSError:
                    continue
                for line in status.splitlines():
                    if line.startswith("VmRSS:"):
                        self.peak_kb = max(self.peak_kb, int(line.split()[1]))

    def __enter__(self) -> BackendPeak:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.join()

    @property
    def gb(self) -> float:
        return self.peak_kb / 1024**2


def full_build(slices: int) -> tuple[float, float, int]:
    """Seconds of the full build with `slices` slices, the peak backend RSS, the row count."""
    os.environ["MARKETFLOW_DBT_FEATURE_SLICES"] = str(slices)
    query(ADMIN_URL, "checkpoint")  # no build pays for the other's dirty buffers
    with BackendPeak() as peak:
        started = time.perf_counter()
        run_dbt(["run", "--select", "+features_daily", "--full-refresh"], URL)
        seconds = time.perf_counter() - started
    [(rows,)] = query(URL, "select count(*) from marts.features_daily")
    return seconds, peak.gb, rows


def read_raw() -> pd.DataFrame:
    with psycopg2.connect(URL) as conn, conn.cursor() as cur:
        cur.execute(
            "select symbol, trade_date, open::float8, high::float8, low::float8, close::float8,"
            " adj_close::float8, volume::float8 from raw.prices order by symbol, trade_date"
        )
        frame = pd.DataFrame(
            cur.fetchall(),
            columns=["symbol", "trade_date", "open", "high", "low", "close", "adj_close", "volume"],
        )
    conn.close()
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", type=Path, default=DEV_UNIVERSE)
    parser.add_argument("--slices", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()

    drop_database(ADMIN_URL, DATABASE)
    init_database(URL, ADMIN_URL)
    work = Path(tempfile.mkdtemp(prefix="mf_bench_p2b_"))
    os.environ.update(
        {
            "MARKETFLOW_DATABASE_URL": URL,
            "MARKETFLOW_DATA_DIR": str(work / "data"),
            "MARKETFLOW_DBT_TARGET_PATH": str(work / "dbt_target"),
            "MARKETFLOW_DBT_LOG_PATH": str(work / "dbt_logs"),
        }
    )
    print(f"input: {args.path} ({len(list(args.path.glob('*.csv*')))} files)")
    print(f"machine: {platform.platform()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    try:
        subprocess.run(
            [
                str(Path(sys.executable).parent / "marketflow"),
                "ingest",
                "--provider",
                "csv",
                "--path",
                str(args.path),
            ],
            check=True,
            capture_output=True,
        )
        [(n_bars, n_symbols)] = query(
            URL, "select count(*), count(distinct symbol) from raw.prices"
        )
        print(f"raw.prices: {n_bars:,} bars of {n_symbols} symbols")
        if not n_bars:
            raise SystemExit(f"no bars loaded from {args.path}")
        query(URL, "select count(*) from raw.prices")  # both builds start from a warm cache

        serial_s, serial_gb, serial_rows = full_build(1)
        print(
            f"full build, 1 slice: {serial_s:.1f} s, {serial_rows:,} rows,"
            f" peak backend RSS {serial_gb:.2f} GB"
        )
        query(
            URL,
            "create unlogged table public.serial_features as select * from marts.features_daily",
        )
        wide_s, wide_gb, wide_rows = full_build(args.slices)
        print(
            f"full build, {args.slices} slices: {wide_s:.1f} s, {wide_rows:,} rows,"
            f" peak backend RSS {wide_gb:.2f} GB"
        )
        [(extra, missing)] = query(
            URL,
            "select (select count(*) from (select * from marts.features_daily except all"
            " select * from public.serial_features) as e),"
            " (select count(*) from (select * from public.serial_features except all"
            " select * from marts.features_daily) as m)",
        )
        print(
            f"row for row: {extra} rows only in the sliced build, {missing} only in the serial one"
        )

        raw = read_raw()
        started = time.perf_counter()
        reference = expected_features(raw)
        reference_s = time.perf_counter() - started
        print(f"numpy reference, one thread: {reference_s:.1f} s, {len(reference):,} rows")
        print(f"P2b all cores / one slice: {wide_s / serial_s:.2f}  (target <= 0.6 on 2 cores)")
        print(f"P2b all cores / reference: {wide_s / reference_s:.1f}  (target <= 4)")
        print(f"one slice / reference: {serial_s / reference_s:.1f}")
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
        print(f"peak RSS of this process (reference frames, dbt): {rss:.2f} GB")
    finally:
        if not args.keep:
            drop_database(ADMIN_URL, DATABASE)


if __name__ == "__main__":
    main()
