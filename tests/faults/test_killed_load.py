"""A load killed with SIGKILL mid-batch (a real separate process) leaves the previous state."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from datetime import date

import psycopg2

from ingest.loader import ingest

CHILD = textwrap.dedent(
    """
    import sys, time
    from datetime import date
    from ingest.loader import load_prices
    from ingest.providers import get_provider

    url = sys.argv[1]
    provider = get_provider("sample")

    def frames():
        for i, frame in enumerate(provider.fetch(["AAPL", "MSFT", "IBM"], date(2011, 1, 1), date(2012, 12, 31))):
            # Corrections: every close moves, so a committed batch would change the table.
            frame["close"] = frame["close"] * 1.01
            frame["high"] = frame[["high", "close"]].max(axis=1)
            yield frame
            if i == 1:
                print("two frames staged", flush=True)
                time.sleep(600)

    load_prices(url, frames(), "sample")
    """
)


def _state(url: str) -> tuple:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            "select count(*), md5(string_agg(p::text, '|' order by symbol, trade_date)) from raw.prices p"
        )
        prices = cur.fetchone()
        cur.execute("select count(*) from raw.ingest_batches")
        batches = cur.fetchone()[0]
        cur.execute("select count(*) from raw.rejected_prices")
        rejected = cur.fetchone()[0]
    conn.close()
    return prices, batches, rejected


def test_sigkill_mid_batch_leaves_previous_state(make_database):
    url = make_database()
    ingest(url, "sample", ["AAPL", "MSFT", "IBM"], date(2011, 1, 1), date(2012, 12, 31))
    before = _state(url)

    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = child.stdout.readline()
        assert line.strip() == "two frames staged", child.stderr.read()
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()

    # The server notices the dropped connection and rolls the transaction back.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with psycopg2.connect(url) as conn, conn.cursor() as cur:
            cur.execute(
                "select count(*) from pg_stat_activity where datname = current_database() "
                "and pid <> pg_backend_pid()"
            )
            others = cur.fetchone()[0]
        conn.close()
        if others == 0:
            break
        time.sleep(0.2)
    assert _state(url) == before
