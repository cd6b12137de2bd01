"""The `marketflow` CLI as a user runs it: a real subprocess against a test database."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import psycopg2

CLI = str(Path(sys.executable).parent / "marketflow")


def _cli(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MARKETFLOW_DATABASE_URL": url}
    return subprocess.run([CLI, *args], capture_output=True, text=True, env=env, timeout=300)


def test_ingest_command_loads_and_summarises(make_database):
    url = make_database()
    proc = _cli(
        "ingest",
        "--provider",
        "sample",
        "--symbols",
        "IBM",
        "--start",
        "2012-01-01",
        "--end",
        "2012-03-31",
        url=url,
    )
    assert proc.returncode == 0, proc.stderr
    counts = dict(re.findall(r"^  (inserted|rejected|unchanged)\s+([\d,]+)$", proc.stdout, re.M))
    assert counts["rejected"] == "0" and counts["unchanged"] == "0"
    assert int(counts["inserted"].replace(",", "")) > 55
    assert "rows/s" in proc.stderr  # the progress bar
    # Log lines are written above the bar (tqdm clears it first), never glued onto it: on each
    # log line, what the terminal shows after the last carriage return is the record alone.
    logged = [line for line in proc.stderr.split("\n") if " INFO " in line]
    assert logged, proc.stderr
    for line in logged:
        assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ INFO ", line.rsplit("\r", 1)[-1]), line
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            "select count(*), min(trade_date), max(trade_date) from raw.prices where symbol='IBM'"
        )
        n, first, last = cur.fetchone()
    conn.close()
    assert n > 55 and str(first) >= "2012-01-01" and str(last) <= "2012-03-31"


def test_bad_arguments_fail_with_one_readable_line(make_database):
    url = make_database()
    proc = _cli("ingest", "--provider", "sample", "--start", "2012-13-01", url=url)
    assert proc.returncode == 2
    assert "not a date" in proc.stderr
    proc = _cli("ingest", "--provider", "nope", url=url)
    assert proc.returncode == 1
    assert (
        proc.stderr.strip()
        .splitlines()[-1]
        .startswith("marketflow ingest: ValueError: unknown data provider")
    )
    assert "Traceback" not in proc.stderr


def test_first_mistakes_get_a_clear_message_and_no_empty_batch(make_database, admin_url):
    url = make_database()
    proc = _cli("ingest", "--provider", "csv", url=url)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "marketflow ingest: the csv provider needs --path (a file, or a folder of .csv"
        " / .csv.gz files)"
    )
    proc = _cli("ingest", "--provider", "sample", "--start", "2012-03-01", "--end", "2012-01-01",
                url=url)  # fmt: skip
    assert proc.returncode == 2
    assert "--end 2012-01-01 is before --start 2012-03-01" in proc.stderr
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("select count(*) from raw.ingest_batches")
        assert cur.fetchone() == (0,)  # nothing was recorded for either
    conn.close()

    # A database nobody initialised: one line, and what to do.
    from core.db import drop_database, ensure_database
    from core.urls import database_name

    bare = database_name(url) + "_bare"
    ensure_database(admin_url, bare, "marketflow")
    try:
        bare_url = url.rsplit("/", 1)[0] + "/" + bare
        proc = _cli("ingest", "--provider", "sample", "--symbols", "IBM", url=bare_url)
    finally:
        drop_database(admin_url, bare)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        "  hint: run `marketflow db init` first (creates the roles, databases and schemas)"
    ), proc.stderr


def test_marketflow_airflow_runs_the_airflow_cli_with_the_stacks_environment(tmp_path):
    env = {**os.environ, "MARKETFLOW_DATA_DIR": str(tmp_path), "MARKETFLOW_AIRFLOW_PORT": "18093"}
    env.pop("AIRFLOW_HOME", None)
    proc = subprocess.run([CLI, "airflow", "config", "get-value", "api", "port"],
                          capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "18093"
    proc = subprocess.run([CLI, "airflow", "config", "get-value", "core", "dags_folder"],
                          capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
    assert proc.stdout.strip() == str(Path(__file__).resolve().parents[2] / "dags")


def test_every_subcommand_says_what_it_does_and_the_date_format() -> None:
    from marketflow.cli import build_parser

    parser = build_parser()
    [commands] = [a for a in parser._actions if a.choices and a.dest == "command"]
    for name, sub in commands.choices.items():
        assert sub.description and len(sub.description) > 10, name
        usage = sub.format_help()
        for option in ("--start", "--end"):
            if option in usage:
                assert f"{option} YYYY-MM-DD" in usage, (name, usage)
    backfill = subprocess.run([CLI, "backfill", "--help"], capture_output=True, text=True)
    assert "--start YYYY-MM-DD" in backfill.stdout
    assert "instead of `airflow backfill`'s one run per day" in backfill.stdout
