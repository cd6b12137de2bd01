"""P3: the panel read for walk-forward, and walk-forward itself, on the dev universe.

    .venv/bin/python bench/bench_panel.py                     # builds mf_bench_panel first (~15 min)
    .venv/bin/python bench/bench_panel.py --database mf_dev   # a database already built (read only)
    .venv/bin/python bench/bench_panel.py --with-row-reader   # also the psycopg2 reader it replaced
    .venv/bin/python bench/bench_panel.py --models ridge      # walk-forward of other models

Without --database it creates its own database, mf_bench_panel (dropped at the end unless
--keep), loads ../shared/data/dev-universe with `marketflow ingest --provider csv` and builds the
marts with dbt (setup, not timed). Every measured stage runs in a fresh child process that
reports its own wall time and peak RSS (`getrusage`), so no stage inherits another's memory:

| stage        | what runs |
|--------------|-----------|
| arrow        | the baseline: the panel's query (`ml.data.handler.panel_query`, features cast to `real`) read whole through the ADBC PostgreSQL driver into one Arrow table |
| columnar     | `ml.data.handler.read_panel`: the same query, Arrow batches written into one float32 matrix |
| rows         | (--with-row-reader) the reader it replaced: psycopg2 `fetchall()` then pandas, sorted |
| walk-forward | `marketflow walk-forward --models ridge,xgboost`, the command a user runs (its child's peak RSS) |

Targets (issue 12, P3): columnar / arrow <= 1.2 in time and <= 2 in peak RSS; walk-forward
under 4 GB peak RSS.
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
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEV_UNIVERSE = REPO.parent / "shared" / "data" / "dev-universe"
ADMIN_URL = os.environ.get("MARKETFLOW_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
LABELS = ["fwd_ret_5d", "fwd_ret_1d", "trade_ret_1d"]


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def stage(name: str, url: str) -> dict[str, float]:
    """Run in the child: one read, timed; report seconds, rows and this process's peak RSS."""
    from core.columnar import read_table
    from ml.data.handler import discover_features, panel_query, read_panel, read_sql

    features = discover_features(url)
    query, params = panel_query(features, LABELS, universe=True)
    started = time.perf_counter()
    if name == "arrow":
        rows = read_table(url, query, params).num_rows
    elif name == "columnar":
        rows = len(read_panel(url, features, LABELS)[0])
    elif name == "rows":
        cols = ", ".join(f"f.{c}" for c in features)
        labels = "".join(f", l.{c}" for c in LABELS)
        frame = read_sql(
            url,
            f"select f.symbol, f.trade_date, {cols}{labels}, coalesce(u.in_universe, false)"
            " as in_universe from marts.features_daily f"
            " left join marts.labels_daily l using (symbol, trade_date)"
            " left join marts.universe_daily u using (symbol, trade_date)",
        )
        rows = len(frame.sort_values(["symbol", "trade_date"]))
    else:
        raise ValueError(name)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "rows": rows, "features": len(features), "peak_mb": peak}


def run_stage(name: str, url: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--stage", name, "--url", url],
        check=True, capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def run_walk_forward(url: str, models: str) -> tuple[float, float, str]:
    """`marketflow walk-forward` in a child; (seconds, its peak RSS MB, its output)."""
    wrapper = (
        "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], capture_output=True,"
        " text=True); print(r.stdout + r.stderr[-3000:]); print(resource.getrusage("
        "resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)"
    )
    cli = str(Path(sys.executable).parent / "marketflow")
    env = {**os.environ, "MARKETFLOW_DATABASE_URL": url}
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", wrapper, cli, "walk-forward", "--models", models],
        capture_output=True, text=True, env=env, cwd=REPO,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    if out.returncode:
        raise SystemExit(f"walk-forward failed:\n{out.stdout}\n{out.stderr}")
    lines = out.stdout.strip().splitlines()
    return seconds, int(lines[-1]) / 1024, "\n".join(lines[:-1])


def build_database(url: str) -> None:
    """Setup, not timed: the dev universe loaded and the marts built, as a user would."""
    from core.db import drop_database, init_database
    from core.dbt import build

    drop_database(ADMIN_URL, url.rsplit("/", 1)[1])
    init_database(url, ADMIN_URL)
    env = {**os.environ, "MARKETFLOW_DATABASE_URL": url}
    cli = str(Path(sys.executable).parent / "marketflow")
    say(f"loading {DEV_UNIVERSE}")
    subprocess.run([cli, "ingest", "--provider", "csv", "--path", str(DEV_UNIVERSE)],
                   check=True, env=env, cwd=REPO, stdout=subprocess.DEVNULL)  # fmt: skip
    say("building the marts (dbt build)")
    os.environ["MARKETFLOW_DBT_TARGET_PATH"] = str(Path(tempfile.mkdtemp()) / "target")
    build(url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", help="an existing built database (default: build one)")
    parser.add_argument("--models", default="ridge,xgboost")
    parser.add_argument("--with-row-reader", action="store_true")
    parser.add_argument("--skip-walk-forward", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the database it built")
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        print(json.dumps(stage(args.stage, args.url)))
        return

    from core.db import drop_database
    from core.urls import with_database

    owner_url = with_database(ADMIN_URL, "x").replace("://postgres@", "://marketflow@", 1)
    url = with_database(owner_url, args.database or "mf_bench_panel")
    if not args.database:
        build_database(url)
    load = os.getloadavg()[0]
    try:
        results = {}
        for name in ("arrow", "columnar", *(["rows"] if args.with_row_reader else [])):
            say(f"{name} read")
            results[name] = run_stage(name, url)
        if not args.skip_walk_forward:
            say(f"marketflow walk-forward --models {args.models}")
            wf_s, wf_mb, wf_out = run_walk_forward(url, args.models)
    finally:
        if not args.database and not args.keep:
            drop_database(ADMIN_URL, "mf_bench_panel")

    arrow, columnar = results["arrow"], results["columnar"]
    print()
    print(
        f"machine   {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    print(f"load avg  {load:.2f} at the start, {os.getloadavg()[0]:.2f} at the end")
    print(f"input     dev universe: {arrow['rows']:,.0f} rows x {arrow['features']:.0f} features"
          f" + {len(LABELS)} labels ({url.rsplit('/', 1)[1]})")  # fmt: skip
    print(f"{'stage':<14}{'seconds':>10}{'peak RSS MB':>14}")
    for name, r in results.items():
        print(f"{name:<14}{r['seconds']:>10.1f}{r['peak_mb']:>14,.0f}")
    print(f"columnar / arrow: time {columnar['seconds'] / arrow['seconds']:.2f} (target <= 1.2),"
          f" peak RSS {columnar['peak_mb'] / arrow['peak_mb']:.2f} (target <= 2)")  # fmt: skip
    if not args.skip_walk_forward:
        print(wf_out)
        print(f"walk-forward --models {args.models}: {wf_s:.0f} s, peak RSS {wf_mb / 1024:.2f} GB"
              " (target < 4 GB)")  # fmt: skip


if __name__ == "__main__":
    main()
