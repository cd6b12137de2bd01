"""P1 (issue 12): `marketflow ingest --provider csv` of a folder of vendor files against
`psql \\copy` of the same rows from one plain CSV into an unindexed table, in the same run.

    .venv/bin/python bench/bench_ingest_csv.py                      # the dev universe
    .venv/bin/python bench/bench_ingest_csv.py --path DIR --runs 2

Both sides run as child processes, the way a user runs them, and each child's own peak RSS
comes from wait4. The ingest goes into a fresh database (mf_bench_ingest_csv, created and
dropped here), so it takes the initial bulk-load path; `\\copy` goes into a plain table of
that database. The load average is printed next to every number: the machine is shared.
The folder is only read; the plain CSV is written to a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg2

from core.db import connect, drop_database, init_database
from core.urls import with_database
from ingest.providers.csv import CsvProvider
from ingest.schema import PRICE_COLUMNS

REPO = Path(__file__).resolve().parents[1]
DEV_UNIVERSE = REPO.parent / "shared" / "data" / "dev-universe"
DATABASE = "mf_bench_ingest_csv"
ADMIN_URL = os.environ.get("MARKETFLOW_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
URL = with_database(ADMIN_URL, DATABASE).replace("://postgres@", "://marketflow@", 1)
TARGET = 0.5

_PLAIN_TABLE = """
create table bench_copy_plain (
    symbol text, trade_date date, open float8, high float8, low float8, close float8,
    adj_close float8, volume bigint
)
"""


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def run_child(command: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Wall seconds, the child's own peak RSS in MB, and its stdout."""
    with tempfile.TemporaryFile("w+") as out:
        started = time.perf_counter()
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.DEVNULL, env=env, cwd=REPO)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read()
    if child.returncode:
        raise RuntimeError(f"{command[0]} exited with {child.returncode}:\n{text[-2000:]}")
    return seconds, usage.ru_maxrss / 1024, text


def write_plain_csv(folder: Path, path: Path) -> int:
    """The rows the provider reads from `folder`, as one CSV in the table's column order."""
    rows = 0
    with path.open("w") as out:
        for frame in CsvProvider(folder).fetch():
            if hasattr(frame, "columns"):
                frame[PRICE_COLUMNS].to_csv(out, header=False, index=False)
                rows += len(frame)
    return rows


def checkpoint() -> None:
    """Each timed stage starts with no dirty buffers left over from the previous one."""
    with connect(with_database(ADMIN_URL, DATABASE), autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("checkpoint")


def time_copy(csv_path: Path) -> tuple[float, float, str]:
    with psycopg2.connect(URL) as conn, conn.cursor() as cur:
        cur.execute("drop table if exists bench_copy_plain")
        cur.execute(_PLAIN_TABLE)
    conn.close()
    checkpoint()
    psql = shutil.which("psql")
    if psql is None:
        raise RuntimeError("psql is not on PATH")
    command = [
        psql,
        URL,
        "-v",
        "ON_ERROR_STOP=1",
        "-c",
        f"\\copy bench_copy_plain from '{csv_path}' with (format csv)",
    ]
    return run_child(command, dict(os.environ))


def time_ingest(folder: Path) -> tuple[float, float, str]:
    with psycopg2.connect(URL) as conn, conn.cursor() as cur:
        cur.execute("truncate raw.prices, raw.rejected_prices, raw.ingest_batches")
    conn.close()
    checkpoint()
    marketflow = Path(sys.executable).with_name("marketflow")
    env = {**os.environ, "MARKETFLOW_DATABASE_URL": URL}
    command = [str(marketflow), "ingest", "--provider", "csv", "--path", str(folder)]
    return run_child(command, env)


def loaded() -> tuple[int, int, dict[str, float]]:
    with psycopg2.connect(URL) as conn, conn.cursor() as cur:
        cur.execute("select count(*) from raw.prices")
        prices = cur.fetchone()
        cur.execute("select rows_rejected, timings from raw.ingest_batches")
        batch = cur.fetchone()
    conn.close()
    assert prices is not None and batch is not None
    return prices[0], batch[0], batch[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", type=Path, default=DEV_UNIVERSE, help="folder of vendor files")
    parser.add_argument("--runs", type=int, default=1, help="repeat both measurements")
    args = parser.parse_args()
    folder = args.path.resolve()

    say(f"bench_ingest_csv: {folder}, {os.cpu_count()} CPUs, load average {loadavg()}")
    drop_database(ADMIN_URL, DATABASE)
    init_database(URL, ADMIN_URL)
    results = []
    try:
        with tempfile.TemporaryDirectory(prefix="mf_bench_csv_") as tmp:
            plain = Path(tmp) / "prices.csv"
            rows = write_plain_csv(folder, plain)
            say(
                f"plain CSV of the same rows: {rows:,} rows, {plain.stat().st_size / 1e6:.0f} MB (not timed)"
            )
            for run in range(1, args.runs + 1):
                before_copy = loadavg()
                copy_s, copy_rss, _ = time_copy(plain)
                say(
                    f"run {run}: psql \\copy  {copy_s:6.2f} s, peak RSS {copy_rss:5.0f} MB (load {before_copy})"
                )
                before_ingest = loadavg()
                ingest_s, ingest_rss, _ = time_ingest(folder)
                inserted, rejected, timings = loaded()
                say(
                    f"run {run}: ingest csv  {ingest_s:6.2f} s, peak RSS {ingest_rss:5.0f} MB "
                    f"(load {before_ingest}); {inserted:,} rows in raw.prices, {rejected:,} rejected"
                )
                say(f"run {run}: loader timings (s): {timings}")
                results.append((copy_s, ingest_s))
                if inserted + rejected != rows:
                    say(
                        f"WARNING: {rows:,} rows read but {inserted + rejected:,} loaded or rejected"
                    )
    finally:
        drop_database(ADMIN_URL, DATABASE)
    print()
    print("| run | \\copy s | ingest s | ratio \\copy / ingest (target >= 0.5) |")
    print("|---|---|---|---|")
    for run, (copy_s, ingest_s) in enumerate(results, 1):
        print(f"| {run} | {copy_s:.2f} | {ingest_s:.2f} | {copy_s / ingest_s:.2f} |")
    print(f"load average at the end: {loadavg()}")


if __name__ == "__main__":
    main()
