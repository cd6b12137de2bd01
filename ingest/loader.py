"""Load validated prices into raw.prices: COPY into a temporary table, then one upsert.

A batch is one transaction: it lands whole or not at all, and re-running it leaves the
table identical (unchanged rows are not rewritten, so their batch_id stays put). Frames
stream through: each is validated and COPYed as it arrives, so memory does not grow with
the input. Duplicate keys across frames are found in SQL at the end of the batch.
"""

from __future__ import annotations

import io
import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import pandas as pd
import psycopg2
from psycopg2.extras import execute_values

from ingest.providers.base import FetchFailure, FetchItem
from ingest.validate import DUPLICATE, OPTIONAL, split_valid

log = logging.getLogger(__name__)

COLUMNS = ["symbol", "trade_date", "open", "high", "low", "close", "adj_close", "volume", *OPTIONAL]
_COLS = ", ".join(COLUMNS)
_VALUES = ", ".join(c for c in COLUMNS if c not in ("symbol", "trade_date"))
_EXCLUDED = ", ".join(f"excluded.{c}" for c in COLUMNS if c not in ("symbol", "trade_date"))

_CREATE_STAGE = """
create temporary table _incoming (
    symbol text, trade_date date, open float8, high float8, low float8, close float8,
    adj_close float8, volume bigint, dividend float8, split_factor float8
) on commit drop
"""

# Keys delivered more than once in a batch (in different frames) are rejected, all copies.
_REJECT_CROSS_FRAME_DUPLICATES = f"""
with dup_keys as (
    select symbol, trade_date from _incoming group by symbol, trade_date having count(*) > 1
), removed as (
    delete from _incoming i using dup_keys d
    where i.symbol = d.symbol and i.trade_date = d.trade_date
    returning i.*
)
insert into raw.rejected_prices (batch_id, provider, symbol, trade_date, row_data, reason)
select %(batch)s, %(provider)s, symbol, trade_date::text, to_jsonb(removed), '{DUPLICATE}'
from removed
"""

_UPSERT = f"""
with upserted as (
    insert into raw.prices as p ({_COLS}, provider, batch_id)
    select {_COLS}, %(provider)s, %(batch)s from _incoming
    on conflict (symbol, trade_date) do update set
        ({_VALUES}, provider, batch_id, ingested_at) =
        ({_EXCLUDED}, excluded.provider, excluded.batch_id, now())
    where ({", ".join(f"p.{c}" for c in COLUMNS[2:])})
        is distinct from ({_EXCLUDED})
    returning (xmax = 0) as inserted
)
select count(*) filter (where inserted), count(*) filter (where not inserted) from upserted
"""


@dataclass
class BatchResult:
    batch_id: str
    provider: str
    symbols: list[str] = field(default_factory=list)
    start_date: date | None = None
    end_date: date | None = None
    rows_in: int = 0
    rows_inserted: int = 0
    rows_updated: int = 0
    rows_unchanged: int = 0
    rows_rejected: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    failures: list[dict[str, str]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def rows_loaded(self) -> int:
        return self.rows_inserted + self.rows_updated + self.rows_unchanged

    @property
    def changed(self) -> bool:
        return self.rows_inserted + self.rows_updated > 0

    @property
    def failed_share(self) -> float:
        """Share of the delivered units (symbols or files) that failed to arrive."""
        units = len(self.symbols) + len(self.failures)
        return len(self.failures) / units if units else 0.0

    def summary(self) -> str:
        rejected = ", ".join(f"{why}: {n}" for why, n in self.rejected_by_reason.items())
        failed = ", ".join(f["unit"] for f in self.failures)
        return (
            f"batch {self.batch_id} ({self.provider}): {self.rows_in} rows in, "
            f"{self.rows_inserted} inserted, {self.rows_updated} updated, "
            f"{self.rows_unchanged} unchanged, {self.rows_rejected} rejected"
            + (f" ({rejected})" if rejected else "")
            + (f"; {len(self.failures)} failed to fetch: {failed}" if self.failures else "")
            + f" in {self.seconds:.2f}s"
        )


def _fetch_one(cur: Any) -> tuple:
    row = cur.fetchone()
    if row is None:
        raise RuntimeError("query returned no row")
    return row


def _copy_frame(cur: Any, frame: pd.DataFrame) -> None:
    buf = io.StringIO()
    frame[COLUMNS].to_csv(buf, index=False, header=False, date_format="%Y-%m-%d")
    buf.seek(0)
    cur.copy_expert(f"copy _incoming ({_COLS}) from stdin with (format csv)", buf)


def _rejected_rows(batch_id: str, provider: str, rejected: pd.DataFrame) -> list[tuple]:
    received = rejected.drop(columns="reason")
    rows = []
    for record, why in zip(received.to_dict("records"), rejected["reason"], strict=True):
        as_text = {str(k): None if _is_missing(v) else str(v) for k, v in record.items()}
        rows.append(
            (
                batch_id,
                provider,
                as_text.get("symbol"),
                as_text.get("trade_date"),
                json.dumps(as_text),
                why,
            )
        )
    return rows


def _is_missing(value: Any) -> bool:
    return value is None or value is pd.NA or value is pd.NaT or value != value


class _Timer:
    def __init__(self) -> None:
        self.totals: dict[str, float] = {}

    def add(self, name: str, started: float) -> None:
        self.totals[name] = self.totals.get(name, 0.0) + time.perf_counter() - started


def load_prices(
    database_url: str,
    frames: Iterable[FetchItem],
    provider: str,
    today: date | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> BatchResult:
    """Validate and load `frames` as one batch. Returns the batch counts.

    `frames` may contain FetchFailure items: the unit is logged as failed and the rest of
    the batch loads. `on_progress(rows)` is called after each frame with the rows it had.
    """
    started = time.perf_counter()
    today = today or datetime.now(UTC).date()
    result = BatchResult(batch_id=str(uuid.uuid4()), provider=provider)
    reasons: Counter[str] = Counter()
    symbols: set[str] = set()
    timer = _Timer()

    conn = psycopg2.connect(database_url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(
                "insert into raw.ingest_batches (batch_id, provider, status) "
                "values (%s, %s, 'running')",
                (result.batch_id, provider),
            )
            cur.execute(_CREATE_STAGE)
            items = iter(frames)
            while True:
                t = time.perf_counter()
                item = next(items, None)
                timer.add("fetch_s", t)
                if item is None:
                    break
                if isinstance(item, FetchFailure):
                    log.warning("could not fetch %s: %s", item.unit, item.error)
                    result.failures.append({"unit": item.unit, "error": item.error})
                    continue
                result.rows_in += len(item)
                t = time.perf_counter()
                valid, rejected = split_valid(item, today)
                timer.add("validate_s", t)
                if len(valid):
                    t = time.perf_counter()
                    _copy_frame(cur, valid)
                    timer.add("copy_s", t)
                    symbols.update(valid["symbol"].unique())
                    lo, hi = valid["trade_date"].min().date(), valid["trade_date"].max().date()
                    result.start_date = min(result.start_date or lo, lo)
                    result.end_date = max(result.end_date or hi, hi)
                if len(rejected):
                    reasons.update(rejected["reason"])
                    execute_values(
                        cur,
                        "insert into raw.rejected_prices "
                        "(batch_id, provider, symbol, trade_date, row_data, reason) values %s",
                        _rejected_rows(result.batch_id, provider, rejected),
                        template="(%s, %s, %s, %s, %s::jsonb, %s)",
                    )
                if on_progress:
                    on_progress(len(item))
            t = time.perf_counter()
            cur.execute(
                _REJECT_CROSS_FRAME_DUPLICATES, {"batch": result.batch_id, "provider": provider}
            )
            if cur.rowcount:
                reasons[DUPLICATE] += cur.rowcount
            cur.execute("select count(*) from _incoming")
            staged = _fetch_one(cur)[0]
            cur.execute(_UPSERT, {"provider": provider, "batch": result.batch_id})
            result.rows_inserted, result.rows_updated = _fetch_one(cur)
            timer.add("upsert_s", t)
            result.rows_unchanged = staged - result.rows_inserted - result.rows_updated
            result.rows_rejected = sum(reasons.values())
            result.rejected_by_reason = dict(reasons.most_common())
            result.symbols = sorted(symbols)
            result.seconds = time.perf_counter() - started
            result.timings = {k: round(v, 3) for k, v in timer.totals.items()}
            cur.execute(
                """
                update raw.ingest_batches set
                    symbols = %s, start_date = %s, end_date = %s, rows_in = %s,
                    rows_loaded = %s, rows_inserted = %s, rows_updated = %s,
                    rows_unchanged = %s, rows_rejected = %s, units_failed = %s,
                    failures = %s::jsonb, timings = %s::jsonb, status = 'succeeded',
                    finished_at = now()
                where batch_id = %s
                """,
                (
                    result.symbols,
                    result.start_date,
                    result.end_date,
                    result.rows_in,
                    result.rows_loaded,
                    result.rows_inserted,
                    result.rows_updated,
                    result.rows_unchanged,
                    result.rows_rejected,
                    len(result.failures),
                    json.dumps(result.failures),
                    json.dumps(result.timings),
                    result.batch_id,
                ),
            )
    except Exception as exc:
        _record_failure(database_url, result, exc)
        raise
    finally:
        conn.close()
    log.info(result.summary())
    return result


def _record_failure(database_url: str, result: BatchResult, exc: Exception) -> None:
    """The batch's data rolled back; keep a trace of the attempt in the batch log."""
    try:
        with psycopg2.connect(database_url) as conn, conn.cursor() as cur:
            cur.execute(
                "insert into raw.ingest_batches (batch_id, provider, rows_in, status, error, "
                "finished_at) values (%s, %s, %s, 'failed', %s, now())",
                (result.batch_id, result.provider, result.rows_in, f"{type(exc).__name__}: {exc}"),
            )
        conn.close()
    except psycopg2.Error:
        log.exception("could not record failed batch %s", result.batch_id)


def ingest(
    database_url: str,
    provider_name: str,
    symbols: Sequence[str] | None = None,
    start: date | None = None,
    end: date | None = None,
    provider_options: dict[str, Any] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> BatchResult:
    """Fetch from a provider and load it as one batch (what the DAG and CLI call)."""
    from ingest.providers import get_provider

    provider = get_provider(provider_name, **(provider_options or {}))
    return load_prices(
        database_url, provider.fetch(symbols, start, end), provider.name, on_progress=on_progress
    )
