"""Load validated prices into raw.prices: COPY into a temporary table, then one upsert.

A batch is one transaction: it lands whole or not at all, and re-running it leaves the
table identical (unchanged rows are not rewritten, so their batch_id stays put).
"""

from __future__ import annotations

import io
import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import pandas as pd
import psycopg2

from ingest.validate import split_valid

log = logging.getLogger(__name__)

_UPSERT = """
with upserted as (
    insert into raw.prices as p
        (symbol, trade_date, open, high, low, close, adj_close, volume, provider, batch_id)
    select symbol, trade_date, open, high, low, close, adj_close, volume, %(provider)s, %(batch)s
    from _incoming
    on conflict (symbol, trade_date) do update set
        open = excluded.open, high = excluded.high, low = excluded.low,
        close = excluded.close, adj_close = excluded.adj_close, volume = excluded.volume,
        provider = excluded.provider, batch_id = excluded.batch_id, ingested_at = now()
    where (p.open, p.high, p.low, p.close, p.adj_close, p.volume)
        is distinct from
        (excluded.open, excluded.high, excluded.low, excluded.close, excluded.adj_close,
         excluded.volume)
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
    seconds: float = 0.0

    @property
    def rows_loaded(self) -> int:
        return self.rows_inserted + self.rows_updated + self.rows_unchanged

    @property
    def changed(self) -> bool:
        return self.rows_inserted + self.rows_updated > 0

    def summary(self) -> str:
        rejected = ", ".join(f"{why}: {n}" for why, n in self.rejected_by_reason.items())
        return (
            f"batch {self.batch_id} ({self.provider}): {self.rows_in} rows in, "
            f"{self.rows_inserted} inserted, {self.rows_updated} updated, "
            f"{self.rows_unchanged} unchanged, {self.rows_rejected} rejected"
            + (f" ({rejected})" if rejected else "")
            + f" in {self.seconds:.2f}s"
        )


def _copy_frame(cur, frame: pd.DataFrame) -> None:
    buf = io.StringIO()
    frame.to_csv(buf, index=False, header=False)
    buf.seek(0)
    cur.copy_expert(
        "copy _incoming (symbol, trade_date, open, high, low, close, adj_close, volume) "
        "from stdin with (format csv)",
        buf,
    )


def _fetch_one(cur) -> tuple:  # noqa: ANN001 - psycopg2 cursor
    row = cur.fetchone()
    if row is None:
        raise RuntimeError("query returned no row")
    return row


def _json_safe(row: dict) -> dict:
    return {k: (None if pd.isna(v) else str(v)) for k, v in row.items()}


def load_prices(
    database_url: str,
    frames: Iterable[pd.DataFrame],
    provider: str,
    today: date | None = None,
) -> BatchResult:
    """Validate and load `frames` as one batch. Returns the batch counts."""
    started = time.perf_counter()
    today = today or datetime.now(UTC).date()
    result = BatchResult(batch_id=str(uuid.uuid4()), provider=provider)
    reasons: Counter[str] = Counter()
    symbols: set[str] = set()

    conn = psycopg2.connect(database_url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(
                "insert into raw.ingest_batches (batch_id, provider, status) values (%s, %s, 'running')",
                (result.batch_id, provider),
            )
            cur.execute(
                "create temporary table _incoming (symbol text, trade_date date, open float8, "
                "high float8, low float8, close float8, adj_close float8, volume bigint) "
                "on commit drop"
            )
            seen_keys: set[tuple[str, date]] = set()
            for raw in frames:
                result.rows_in += len(raw)
                valid, rejected = split_valid(raw, today)
                # A key delivered twice across frames of one batch is a duplicate too.
                keys = list(zip(valid["symbol"], valid["trade_date"], strict=True))
                dup = pd.Series([k in seen_keys for k in keys], index=valid.index, dtype=bool)
                if dup.any():
                    extra = (
                        valid[dup]
                        .astype(str)
                        .assign(reason="duplicate (symbol, trade_date) in batch")
                    )
                    rejected = pd.concat([rejected, extra], ignore_index=True)
                    valid = valid[~dup]
                seen_keys.update(keys)
                if len(valid):
                    _copy_frame(cur, valid)
                    symbols.update(valid["symbol"].unique())
                    lo, hi = min(valid["trade_date"]), max(valid["trade_date"])
                    result.start_date = min(filter(None, [result.start_date, lo]))
                    result.end_date = max(filter(None, [result.end_date, hi]))
                if len(rejected):
                    reasons.update(rejected["reason"])
                    rows = rejected.drop(columns="reason").to_dict("records")
                    cur.executemany(
                        "insert into raw.rejected_prices "
                        "(batch_id, provider, symbol, trade_date, row_data, reason) "
                        "values (%s, %s, %s, %s, %s, %s)",
                        [
                            (
                                result.batch_id,
                                provider,
                                None if pd.isna(r.get("symbol")) else str(r.get("symbol")),
                                None if pd.isna(r.get("trade_date")) else str(r.get("trade_date")),
                                json.dumps(_json_safe(r)),
                                why,
                            )
                            for r, why in zip(rows, rejected["reason"], strict=True)
                        ],
                    )
            cur.execute("select count(*) from _incoming")
            staged = _fetch_one(cur)[0]
            cur.execute(_UPSERT, {"provider": provider, "batch": result.batch_id})
            result.rows_inserted, result.rows_updated = _fetch_one(cur)
            result.rows_unchanged = staged - result.rows_inserted - result.rows_updated
            result.rows_rejected = sum(reasons.values())
            result.rejected_by_reason = dict(reasons.most_common())
            result.symbols = sorted(symbols)
            result.seconds = time.perf_counter() - started
            cur.execute(
                """
                update raw.ingest_batches set
                    symbols = %s, start_date = %s, end_date = %s, rows_in = %s,
                    rows_loaded = %s, rows_inserted = %s, rows_updated = %s,
                    rows_unchanged = %s, rows_rejected = %s, status = 'succeeded',
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
) -> BatchResult:
    """Fetch from a provider and load it as one batch (what the DAG and CLI call)."""
    from ingest.providers import get_provider

    provider = get_provider(provider_name)
    return load_prices(database_url, provider.fetch(symbols, start, end), provider.name)
