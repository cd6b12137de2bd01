"""Ingest throughput and memory: MarketFlow's loader against raw COPY and pandas.to_sql.

    .venv/bin/python bench/bench_ingest.py            # ~5.2M rows: 2,000 symbols x 10 years
    .venv/bin/python bench/bench_ingest.py --quick    # 200k rows, a smoke run
    .venv/bin/python bench/bench_ingest.py --rows 1000000

Works in its own database, mf_bench_ingest (dropped and created at the start, dropped at
the end), on the server named by MARKETFLOW_ADMIN_URL. Every loader run happens in a child
process so its peak RSS is its own. See bench/README.md for what each number means.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg2

from core.db import connect, drop_database, init_database
from core.urls import with_database
from ingest.providers.synthetic import SyntheticProvider, symbol_name
from ingest.schema import PRICE_COLUMNS

REPO = Path(__file__).resolve().parents[1]

DATABASE = "mf_bench_ingest"
ADMIN_URL = os.environ.get("MARKETFLOW_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
URL = with_database(ADMIN_URL, DATABASE).replace("://postgres@", "://marketflow@", 1)
FULL_ROWS = 5_200_000  # 2,000 symbols x 10 years of business days
QUICK_ROWS = 200_000
ROWS_PER_SYMBOL = len(pd.bdate_range("2015-01-01", "2024-12-31")) * (1 - 0.002)

_PLAIN_TABLE = """
create table bench_copy_plain (
    symbol text, trade_date date, open float8, high float8, low float8, close float8,
    adj_close float8, volume bigint
)
"""
_KEYED_TABLE = """
create table bench_copy_keyed (
    symbol text not null, trade_date date not null, open float8, high float8, low float8,
    close float8, adj_close float8, volume bigint, primary key (symbol, trade_date)
)
"""


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def symbols_for(rows: int) -> int:
    return max(1, round(rows / ROWS_PER_SYMBOL))


def provider_for(rows: int) -> SyntheticProvider:
    return SyntheticProvider(n_symbols=symbols_for(rows))


def maxrss_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux reports KiB


# --- child process: one loader run (or the provider alone), reported as JSON ------------


def child_main(mode: str, rows: int, base: int = 0) -> None:
    """`load`/`generate` the first symbols_for(rows) symbols; `extend` the symbols_for(rows)
    that follow the first symbols_for(base) (new keys into a populated raw.prices)."""
    started = time.perf_counter()
    if mode == "extend":
        first, count = symbols_for(base), symbols_for(rows)
        provider = SyntheticProvider(n_symbols=first + count)
        items = provider.fetch([symbol_name(i) for i in range(first, first + count)])
    else:
        provider = provider_for(rows)
        items = provider.fetch()
    if mode == "generate":
        n = sum(len(frame) for frame in items)
        report: dict[str, Any] = {"rows_in": n}
    else:
        from ingest.loader import load_prices

        result = load_prices(URL, items, provider.name)
        report = {
            "rows_in": result.rows_in,
            "direct": result.rows_direct,
            "inserted": result.rows_inserted,
            "updated": result.rows_updated,
            "unchanged": result.rows_unchanged,
            "rejected": result.rows_rejected,
            "timings": result.timings,
        }
    report["seconds"] = time.perf_counter() - started
    report["self_maxrss_mb"] = maxrss_mb(resource.RUSAGE_SELF)
    print("RESULT " + json.dumps(report), flush=True)


def run_child(mode: str, rows: int, base: int = 0) -> dict[str, Any]:
    """Run `mode` in a fresh interpreter; add the parent's view of children's peak RSS."""
    completed = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--rows", str(rows), "--base", str(base)],
        check=True,
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    line = next(x for x in completed.stdout.splitlines() if x.startswith("RESULT "))
    report = json.loads(line.removeprefix("RESULT "))
    report["children_maxrss_mb"] = maxrss_mb(resource.RUSAGE_CHILDREN)
    return report


# --- the baselines, in this process ----------------------------------------------------


def frames(rows: int) -> Iterator[pd.DataFrame]:
    for frame in provider_for(rows).fetch():
        yield frame[PRICE_COLUMNS]


def write_csv(rows: int, path: Path) -> int:
    count = 0
    with path.open("w") as out:
        for frame in frames(rows):
            frame.to_csv(out, header=False, index=False)
            count += len(frame)
    return count


def checkpoint() -> None:
    """Start each timed stage with no dirty buffers left over from the previous one."""
    with connect(with_database(ADMIN_URL, DATABASE), autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("checkpoint")


def time_copy(csv_path: Path, table_ddl: str, table: str) -> float:
    with psycopg2.connect(URL) as conn, conn.cursor() as cur:
        cur.execute(table_ddl)
    conn.close()
    checkpoint()
    started = time.perf_counter()
    with psycopg2.connect(URL) as conn, conn.cursor() as cur, csv_path.open() as data:
        cur.copy_expert(f"copy {table} from stdin with (format csv)", data)
    conn.close()
    return time.perf_counter() - started


def time_to_sql(source_rows: int, rows: int, chunksize: int) -> tuple[int, float]:
    """to_sql of the first `rows` of the loader's input (the first symbols, in order)."""
    from sqlalchemy import create_engine

    subset = pd.concat(_take(frames(source_rows), rows), ignore_index=True)
    engine = create_engine(URL.replace("postgresql://", "postgresql+psycopg2://", 1))
    checkpoint()
    started = time.perf_counter()
    subset.to_sql(
        "bench_to_sql",
        engine,
        index=False,
        if_exists="replace",
        method="multi",
        chunksize=chunksize,
    )
    seconds = time.perf_counter() - started
    engine.dispose()
    return len(subset), seconds


def _take(items: Iterator[pd.DataFrame], rows: int) -> list[pd.DataFrame]:
    taken, have = [], 0
    for frame in items:
        taken.append(frame.iloc[: rows - have])
        have += len(taken[-1])
        if have >= rows:
            break
    return taken


def truncate_prices() -> None:
    with psycopg2.connect(URL) as conn, conn.cursor() as cur:
        cur.execute("truncate raw.prices, raw.rejected_prices, raw.ingest_batches")
    conn.close()


def server_facts() -> str:
    with psycopg2.connect(URL) as conn, conn.cursor() as cur:
        facts = []
        for name in ("shared_buffers", "synchronous_commit", "max_wal_size", "work_mem"):
            cur.execute(f"show {name}")
            row = cur.fetchone()
            facts.append(f"{name}={row[0] if row else '?'}")
        cur.execute("select current_setting('server_version')")
        row = cur.fetchone()
    conn.close()
    return f"PostgreSQL {row[0] if row else '?'} ({', '.join(facts)})"


# --- report ----------------------------------------------------------------------------


def rate(rows: int, seconds: float) -> str:
    return f"{rows / seconds:,.0f}" if seconds > 0 else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description="Ingest throughput and memory benchmark.")
    parser.add_argument(
        "--rows", type=int, default=None, help=f"rows to load (default {FULL_ROWS:,})"
    )
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_ROWS:,} rows: a smoke run")
    parser.add_argument("--to-sql-rows", type=int, default=None, help="rows for to_sql (200,000)")
    parser.add_argument("--chunksize", type=int, default=1000, help="to_sql chunksize (1000)")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--child", choices=["load", "generate", "extend"], help=argparse.SUPPRESS)
    parser.add_argument("--base", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    rows = args.rows or (QUICK_ROWS if args.quick else FULL_ROWS)
    if args.child:
        child_main(args.child, rows, args.base)
        return
    small = max(1, rows // 5)
    to_sql_rows = args.to_sql_rows or min(rows, 50_000 if args.quick else 200_000)

    say(
        f"bench_ingest: {rows:,} rows requested ({symbols_for(rows):,} synthetic symbols x "
        f"10 years), memory also at {small:,}; to_sql on {to_sql_rows:,}"
    )
    say(
        f"machine: {platform.node()}, {os.cpu_count()} CPUs, load average "
        + " ".join(f"{x:.2f}" for x in os.getloadavg())
    )
    say(f"database {DATABASE}: drop and create")
    drop_database(ADMIN_URL, DATABASE)
    init_database(URL, ADMIN_URL)
    say(server_facts())
    results: dict[str, Any] = {}
    try:
        say(f"provider alone: generating {rows:,} rows in a child process")
        results["generate"] = run_child("generate", rows)

        say(f"loader, {small:,} rows into an empty raw.prices (child; for peak RSS)")
        checkpoint()
        results["load_small"] = run_child("load", small)
        truncate_prices()

        say(f"loader, first load: {rows:,} rows into an empty raw.prices (child)")
        checkpoint()
        results["load_first"] = run_child("load", rows)
        say(f"loader, second load of the same {rows:,} rows: all unchanged (child)")
        checkpoint()
        results["load_again"] = run_child("load", rows)
        say(f"loader, {small:,} rows of new symbols into the populated raw.prices (child)")
        checkpoint()
        results["load_extend"] = run_child("extend", small, base=rows)

        with tempfile.TemporaryDirectory(prefix="mf_bench_") as tmp:
            csv_path = Path(tmp) / "prices.csv"
            say(f"raw COPY: writing the same rows as CSV to {csv_path} (not timed)")
            copy_rows = write_csv(rows, csv_path)
            say(f"raw COPY: {copy_rows:,} rows into bench_copy_plain (no index, logged)")
            results["copy_plain"] = (
                copy_rows,
                time_copy(csv_path, _PLAIN_TABLE, "bench_copy_plain"),
            )
            say(f"raw COPY: {copy_rows:,} rows into bench_copy_keyed (primary key only)")
            results["copy_keyed"] = (
                copy_rows,
                time_copy(csv_path, _KEYED_TABLE, "bench_copy_keyed"),
            )

        say(f"pandas.to_sql(method='multi', chunksize={args.chunksize}): {to_sql_rows:,} rows")
        results["to_sql"] = time_to_sql(rows, to_sql_rows, args.chunksize)
        results["load_avg_end"] = os.getloadavg()
    finally:
        if args.keep:
            say(f"keeping database {DATABASE}")
        else:
            say(f"database {DATABASE}: drop")
            drop_database(ADMIN_URL, DATABASE)
    report(results, args.chunksize)


def report(results: dict[str, Any], chunksize: int) -> None:
    gen, small, first, again, extend = (
        results["generate"],
        results["load_small"],
        results["load_first"],
        results["load_again"],
        results["load_extend"],
    )
    problems = []
    if first["inserted"] != first["rows_in"] or first["rejected"]:
        problems.append("the first load did not insert every row")
    if again["unchanged"] != again["rows_in"]:
        problems.append("the second load did not find every row unchanged")
    if extend["direct"] != extend["rows_in"]:
        problems.append("the load of new symbols did not go straight into raw.prices")
    copy_rows, copy_s = results["copy_plain"]
    keyed_rows, keyed_s = results["copy_keyed"]
    sql_rows, sql_s = results["to_sql"]

    lines = [
        ("provider alone (generate, no DB)", gen["rows_in"], gen["seconds"], gen["self_maxrss_mb"]),
        (
            "loader: first load, empty raw.prices",
            first["rows_in"],
            first["seconds"],
            first["self_maxrss_mb"],
        ),
        (
            "loader: second load, all unchanged",
            again["rows_in"],
            again["seconds"],
            again["self_maxrss_mb"],
        ),
        (
            "loader: new symbols into populated table",
            extend["rows_in"],
            extend["seconds"],
            extend["self_maxrss_mb"],
        ),
        (
            f"loader: {small['rows_in']:,} rows (memory point)",
            small["rows_in"],
            small["seconds"],
            small["self_maxrss_mb"],
        ),
        ("raw COPY -> plain table, no index", copy_rows, copy_s, None),
        ("raw COPY -> table with PK (symbol, date)", keyed_rows, keyed_s, None),
        (f"to_sql multi, chunksize {chunksize}", sql_rows, sql_s, None),
    ]
    print()
    print(
        f"| {'stage':<44} | {'rows':>10} | {'seconds':>8} | {'rows/s':>10} | {'peak RSS MB':>11} |"
    )
    print(f"|{'-' * 46}|{'-' * 12}|{'-' * 10}|{'-' * 12}|{'-' * 13}|")
    for name, n, seconds, rss in lines:
        rss_text = f"{rss:,.0f}" if rss is not None else ""
        print(
            f"| {name:<44} | {n:>10,} | {seconds:>8.1f} | {rate(n, seconds):>10} | {rss_text:>11} |"
        )

    loader_rate = first["rows_in"] / first["seconds"]
    print()
    print(f"loader first load / raw COPY (plain):  {loader_rate / (copy_rows / copy_s):.2f}x")
    print(f"loader first load / raw COPY (PK):     {loader_rate / (keyed_rows / keyed_s):.2f}x")
    print(f"loader first load / to_sql multi:      {loader_rate / (sql_rows / sql_s):.1f}x")
    extend_rate = extend["rows_in"] / extend["seconds"]
    print(
        f"loader new symbols (keyed table) / raw COPY (plain): {extend_rate / (copy_rows / copy_s):.2f}x, "
        f"/ raw COPY (PK): {extend_rate / (keyed_rows / keyed_s):.2f}x"
    )
    print(
        f"loader second load / first load:       {(again['rows_in'] / again['seconds']) / loader_rate:.2f}x"
    )
    growth = first["self_maxrss_mb"] - small["self_maxrss_mb"]
    print(
        f"peak RSS: {small['self_maxrss_mb']:,.0f} MB at {small['rows_in']:,} rows, "
        f"{first['self_maxrss_mb']:,.0f} MB at {first['rows_in']:,} rows "
        f"({growth:+,.0f} MB; provider alone {gen['self_maxrss_mb']:,.0f} MB); "
        f"RUSAGE_CHILDREN after the small run {small['children_maxrss_mb']:,.0f} MB, "
        f"after all {again['children_maxrss_mb']:,.0f} MB"
    )
    for label, run in (
        ("first", first),
        ("second", again),
        ("new-symbol", extend),
        ("small", small),
    ):
        counts = ", ".join(
            f"{k} {run[k]:,}" for k in ("inserted", "direct", "updated", "unchanged", "rejected")
        )
        parts = ", ".join(f"{k} {v:.1f}" for k, v in run.get("timings", {}).items())
        print(f"loader {label} load: {counts}; timings (s): {parts or 'n/a'}")
    print("load average at the end: " + " ".join(f"{x:.2f}" for x in results["load_avg_end"]))
    for problem in problems:
        print(f"WARNING: {problem}")


if __name__ == "__main__":
    main()
