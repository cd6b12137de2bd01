"""Load validated prices into raw.prices: new keys by COPY, the rest through a staged upsert.

A batch is one transaction: it lands whole or not at all, and re-running it leaves the
table identical (unchanged rows are not rewritten, so their batch_id stays put). Frames
stream through: each is validated and COPYed as it arrives, so memory does not grow with
the input.

Two paths, chosen per frame under the batch's writer lock:
- direct: none of the frame's (symbol, date range) spans holds a row in raw.prices or meets
  an earlier frame of the batch, so every key is new: COPY straight into raw.prices (what a
  first load or a new day looks like);
- staged: anything else (corrections, re-deliveries) is COPYed into a temporary table and
  merged at the end by one UPDATE of changed rows and one anti-join INSERT.
Duplicate keys across frames are found in SQL at the end of the batch, direct rows included.

An initial load (raw.prices empty when the batch starts) is a bulk load, as pg_restore does
it: the primary key is dropped inside the batch's transaction, every frame goes direct into
the unindexed table, and the key is built once, by a sort, before the merge. Readers wait
for that commit (they would find an empty table anyway); on failure the rollback restores
the key with the empty table.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
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

from core.db import connect
from ingest.providers.base import FetchFailure, FetchItem
from ingest.schema import COLUMNS
from ingest.validate import DUPLICATE, split_valid_for_copy

log = logging.getLogger(__name__)

_COLS = ", ".join(COLUMNS)
_VALUES = ", ".join(c for c in COLUMNS if c not in ("symbol", "trade_date"))

# Every COPY carries the batch's provider and id after the price columns, except in a bulk
# load, where they are the columns' defaults for the length of the batch (less to parse).
_COPY_COLS = f"{_COLS}, provider, batch_id"

_CREATE_STAGE = """
create temporary table _incoming (
    symbol text, trade_date date, open float8, high float8, low float8, close float8,
    adj_close float8, volume bigint, dividend float8, split_factor float8,
    provider text, batch_id uuid
) on commit drop
"""

# Does any span (symbol, first, last) of a frame already hold rows? (one index probe each)
_ANY_EXISTING = """
select exists (
    select 1 from unnest(%s::text[], %s::date[], %s::date[]) as s(symbol, lo, hi)
    where exists (
        select 1 from raw.prices as p
        where p.symbol = s.symbol and p.trade_date between s.lo and s.hi
    )
)
"""

_END_BULK_DEFAULTS = (
    "alter table raw.prices alter column provider drop default, alter column batch_id drop default"
)

_PRIMARY_KEY = """
select conname from pg_constraint where conrelid = 'raw.prices'::regclass and contype = 'p'
"""

# A staged key that an earlier direct frame of this batch also delivered: move the direct
# copy back to the stage, so that the duplicate rule below rejects every copy of it.
_RESTAGE_DIRECT_DUPLICATES = f"""
with moved as (
    delete from raw.prices as p
    using (select distinct symbol, trade_date from _incoming) as i
    where p.batch_id = %(batch)s and p.symbol = i.symbol and p.trade_date = i.trade_date
    returning {", ".join(f"p.{c}" for c in COLUMNS)}, p.provider, p.batch_id
)
insert into _incoming ({_COPY_COLS}) select * from moved
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
select %(batch)s, %(provider)s, symbol, trade_date::text,
       to_jsonb(removed) - 'provider' - 'batch_id', '{DUPLICATE}'
from removed
"""

# Writers take turns on raw.prices (readers never wait), from the start of a batch: with the
# lock, "no row in these spans" stays true until commit, so the direct COPY, the update and
# the anti-join insert cannot race another batch, and they avoid ON CONFLICT's per-row
# speculative insertion, which made the upsert 2x slower on large batches.
_LOCK = "lock table raw.prices in share row exclusive mode"

_UPDATE_CHANGED = f"""
update raw.prices as p set
    ({_VALUES}, provider, batch_id, ingested_at) =
    ({", ".join(f"i.{c}" for c in COLUMNS[2:])}, %(provider)s, %(batch)s, now())
from _incoming as i
where p.symbol = i.symbol and p.trade_date = i.trade_date
    and ({", ".join(f"p.{c}" for c in COLUMNS[2:])})
        is distinct from ({", ".join(f"i.{c}" for c in COLUMNS[2:])})
"""

_INSERT_NEW = f"""
insert into raw.prices ({_COLS}, provider, batch_id)
select {", ".join(f"i.{c}" for c in COLUMNS)}, %(provider)s, %(batch)s
from _incoming as i
where not exists (
    select 1 from raw.prices as p where p.symbol = i.symbol and p.trade_date = i.trade_date
)
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
    # Of rows_inserted, those COPYed straight into raw.prices (all keys new, nothing staged).
    rows_direct: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    failures: list[dict[str, str]] = field(default_factory=list)
    # Units delivered, when the provider names them (csv: files); symbols otherwise.
    units: set[str] = field(default_factory=set)
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
        delivered = len(self.units) if self.units else len(self.symbols)
        total = delivered + len(self.failures)
        return len(self.failures) / total if total else 0.0

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


def latest_trade_date(database_url: str) -> date | None:
    """The most recent bar in raw.prices (None when empty): where a catch-up starts."""
    with connect(database_url) as conn, conn.cursor() as cur:
        cur.execute("select max(trade_date) from raw.prices")
        row = cur.fetchone()
    return row[0] if row else None


def _fetch_one(cur: Any) -> tuple[Any, ...]:
    row = cur.fetchone()
    if row is None:
        raise RuntimeError("query returned no row")
    return tuple(row)


class _Timer:
    def __init__(self) -> None:
        self.totals: dict[str, float] = {}
        self._lock = threading.Lock()

    def add(self, name: str, started: float) -> None:
        with self._lock:
            self.totals[name] = self.totals.get(name, 0.0) + time.perf_counter() - started


def _to_csv(
    frame: pd.DataFrame, stamp: tuple[str, str] | None, exact: dict[str, Any] | None = None
) -> Any:
    """CSV bytes of a validated frame for COPY (`_COPY_COLS`, or `_COLS` without a `stamp`).
    Arrow writes it ~7x faster than pandas, with the same shortest round-trip float text, and
    releases the GIL while it does. `exact`: columns sent as the text received (plain
    decimals, see split_valid_for_copy): formatting floats was half the cost of this step."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    table = pa.Table.from_pandas(frame[COLUMNS], preserve_index=False)
    at = table.schema.get_field_index("trade_date")
    table = table.set_column(at, "trade_date", pc.cast(table["trade_date"], pa.date32()))
    for name, text in (exact or {}).items():
        table = table.set_column(table.schema.get_field_index(name), name, text)
    for name, value in zip(("provider", "batch_id"), stamp or (), strict=False):
        constant = pa.DictionaryArray.from_arrays(
            pa.array([0] * len(table), pa.int32()), pa.array([value])
        )
        table = table.append_column(name, pc.cast(constant, pa.string()))
    # Nothing needs quotes (validated symbols, ISO dates, numbers), and unquoted text is ~10%
    # less for COPY to parse; a stamp that would need them keeps Arrow's quoting.
    plain = all(value and not set(value) & set(',"\r\n') for value in stamp or ())
    out = pa.BufferOutputStream()
    options = pacsv.WriteOptions(include_header=False, quoting_style="none" if plain else "needed")
    pacsv.write_csv(table, out, options)
    return out.getvalue()


@dataclass
class _Prepared:
    """One provider frame, validated and serialised, ready for the database thread."""

    rows_in: int
    units: list[str] = field(default_factory=list)
    rows_valid: int = 0
    csv: Any = None
    symbols: Any = None
    # (symbol, first date, last date) per symbol in this frame: cross-frame duplicate check.
    spans: list[tuple[str, Any, Any]] = field(default_factory=list)
    first: date | None = None
    last: date | None = None
    rejected: pd.DataFrame | None = None


_DONE = object()


def _prepare(
    items: Iterable[FetchItem],
    today: date,
    stamp: tuple[str, str] | None,
    timer: _Timer,
    out: queue.Queue[Any],
    stop: threading.Event,
) -> None:
    """Producer thread: validation and CSV serialisation overlap the COPY of the previous
    frame (two cores: Python here, PostgreSQL there). The bounded queue keeps memory flat;
    `stop` ends the thread when the loading side gave up."""

    def put(obj: object) -> None:
        while not stop.is_set():
            try:
                out.put(obj, timeout=0.5)
                return
            except queue.Full:
                continue

    try:
        for item in items:
            if stop.is_set():
                return
            if isinstance(item, FetchFailure):
                put(item)
                continue
            t = time.perf_counter()
            valid, rejected, exact = split_valid_for_copy(item, today)
            timer.add("validate_s", t)
            prepared = _Prepared(
                rows_in=len(item),
                units=_units(item),
                rejected=rejected if len(rejected) else None,
            )
            if len(valid):
                t = time.perf_counter()
                prepared.rows_valid = len(valid)
                prepared.csv = _to_csv(valid, stamp, exact)
                timer.add("serialize_s", t)
                prepared.symbols = valid["symbol"].unique()
                by_symbol = valid.groupby("symbol", observed=True)["trade_date"].agg(["min", "max"])
                prepared.spans = list(by_symbol.itertuples(name=None))
                prepared.first = valid["trade_date"].min().date()
                prepared.last = valid["trade_date"].max().date()
            put(prepared)
        put(_DONE)
    except BaseException as exc:  # handed to the loading thread, re-raised there
        put(exc)


def _units(frame: pd.DataFrame) -> list[str]:
    """The units (csv: files) a frame's rows come from: `attrs["units"]`, or `attrs["unit"]`."""
    if "units" in frame.attrs:
        return list(frame.attrs["units"])
    return [frame.attrs["unit"]] if "unit" in frame.attrs else []


def storable(text: str) -> str:
    """`text` as PostgreSQL can store it: text and jsonb refuse NUL, so it is spelled out."""
    return text.replace("\x00", "\\x00")


class _Spans:
    """Date ranges seen per symbol across the frames of a batch."""

    def __init__(self) -> None:
        self.seen: dict[str, list[tuple[Any, Any]]] = {}

    def overlaps(self, spans: list[tuple[str, Any, Any]]) -> bool:
        hit = False
        for symbol, lo, hi in spans:
            ranges = self.seen.setdefault(symbol, [])
            hit = hit or any(lo <= b and a <= hi for a, b in ranges)
            ranges.append((lo, hi))
        return hit


def _begin_bulk_load(cur: Any, provider: str, batch_id: str) -> str:
    """Drop raw.prices' primary key for an initial load and make the batch's provider and id
    the columns' defaults; returns the key's name to re-create it."""
    cur.execute(_PRIMARY_KEY)
    name = _fetch_one(cur)[0]
    cur.execute(f'alter table raw.prices drop constraint "{name}"')
    # A new (empty) file for the table in this transaction lets COPY write frozen rows: no
    # hint-bit rewrite or anti-wraparound vacuum of 5M rows later. Rolled back with the rest.
    cur.execute("truncate raw.prices")
    cur.execute(
        "alter table raw.prices alter column provider set default "
        + _literal(cur, provider)
        + ", alter column batch_id set default "
        + _literal(cur, batch_id)
        + "::uuid"
    )
    # The key is built by one sort at the end: give it memory instead of temp files.
    cur.execute("set local maintenance_work_mem = '512MB'")
    log.info("raw.prices is empty: bulk load, primary key %s is rebuilt at the end", name)
    return f'"{name}"'


def _literal(cur: Any, value: str) -> str:
    return str(cur.mogrify("%s", (value,)).decode())


def _any_existing(cur: Any, spans: list[tuple[str, Any, Any]]) -> bool:
    symbols, lows, highs = zip(*spans, strict=True)
    cur.execute(
        _ANY_EXISTING,
        (
            list(symbols),
            [pd.Timestamp(d).date() for d in lows],
            [pd.Timestamp(d).date() for d in highs],
        ),
    )
    return bool(_fetch_one(cur)[0])


def _reader(buffer: Any) -> Any:
    import pyarrow as pa

    return pa.BufferReader(buffer)


def _rejected_rows(batch_id: str, provider: str, rejected: pd.DataFrame) -> list[tuple[Any, ...]]:
    received = rejected.drop(columns="reason")
    rows = []
    for record, why in zip(received.to_dict("records"), rejected["reason"], strict=True):
        as_text = {str(k): None if _is_missing(v) else storable(str(v)) for k, v in record.items()}
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
    stop = threading.Event()

    try:
        with connect(database_url) as conn, conn.cursor() as cur:
            cur.execute(
                "insert into raw.ingest_batches (batch_id, provider, status) "
                "values (%s, %s, 'running')",
                (result.batch_id, provider),
            )
            # Room for the anti-join and duplicate check to stay in memory on large batches.
            cur.execute("set local work_mem = '256MB'")
            cur.execute(_CREATE_STAGE)
            t = time.perf_counter()
            cur.execute(_LOCK)
            timer.add("lock_wait_s", t)
            cur.execute("select not exists (select 1 from raw.prices)")
            primary_key = (
                _begin_bulk_load(cur, provider, result.batch_id) if _fetch_one(cur)[0] else None
            )
            copy_cols = _COLS if primary_key is not None else _COPY_COLS
            spans = _Spans()
            overlap = False
            direct_rows = 0
            prepared: queue.Queue[Any] = queue.Queue(maxsize=2)
            producer = threading.Thread(
                target=_prepare,
                args=(
                    frames,
                    today,
                    None if primary_key is not None else (provider, result.batch_id),
                    timer,
                    prepared,
                    stop,
                ),
                daemon=True,
            )
            producer.start()
            while True:
                t = time.perf_counter()
                item = prepared.get()
                timer.add("wait_s", t)
                if item is _DONE:
                    break
                if isinstance(item, BaseException):
                    raise item
                if isinstance(item, FetchFailure):
                    unit, error = storable(item.unit), storable(item.error)
                    log.warning("could not fetch %s: %s", unit, error)
                    result.failures.append({"unit": unit, "error": error})
                    continue
                result.rows_in += item.rows_in
                result.units.update(item.units)
                if item.csv is not None:
                    t = time.perf_counter()
                    meets_batch = spans.overlaps(item.spans)
                    overlap = overlap or meets_batch
                    direct = not meets_batch and (
                        primary_key is not None or not _any_existing(cur, item.spans)
                    )
                    timer.add("route_s", t)
                    t = time.perf_counter()
                    target = "raw.prices" if direct else "_incoming"
                    freeze = ", freeze" if direct and primary_key is not None else ""
                    cur.copy_expert(
                        f"copy {target} ({copy_cols}) from stdin with (format csv{freeze})",
                        _reader(item.csv),
                        # One read for the whole frame: with psycopg2's default of 8 KB, this
                        # thread waited for the GIL (held by the producer) ~12,000 times per
                        # 100 MB and PostgreSQL sat idle; COPY took 2x as long as alone.
                        size=max(item.csv.size, 8192),
                    )
                    timer.add("copy_direct_s" if direct else "copy_s", t)
                    direct_rows += item.rows_valid if direct else 0
                    symbols.update(item.symbols)
                    result.start_date = min(result.start_date or item.first, item.first)
                    result.end_date = max(result.end_date or item.last, item.last)
                if item.rejected is not None:
                    reasons.update(item.rejected["reason"])
                    execute_values(
                        cur,
                        "insert into raw.rejected_prices "
                        "(batch_id, provider, symbol, trade_date, row_data, reason) values %s",
                        _rejected_rows(result.batch_id, provider, item.rejected),
                        template="(%s, %s, %s, %s, %s::jsonb, %s)",
                    )
                if on_progress:
                    on_progress(item.rows_in)
            if primary_key is not None:
                t = time.perf_counter()
                cur.execute(_END_BULK_DEFAULTS)
                # Direct frames never share a key (their spans do not meet), so this holds.
                cur.execute(
                    f"alter table raw.prices add constraint {primary_key} "
                    "primary key (symbol, trade_date)"
                )
                timer.add("index_s", t)
            t = time.perf_counter()
            if overlap:  # only then can two frames hold the same key
                keys = {"provider": provider, "batch": result.batch_id}
                cur.execute(_RESTAGE_DIRECT_DUPLICATES, keys)
                direct_rows -= cur.rowcount
                cur.execute(
                    _REJECT_CROSS_FRAME_DUPLICATES,
                    {"batch": result.batch_id, "provider": provider},
                )
                if cur.rowcount:
                    reasons[DUPLICATE] += cur.rowcount
            cur.execute("select count(*) from _incoming")
            staged = _fetch_one(cur)[0]
            if staged:
                cur.execute("analyze _incoming")
                keys = {"provider": provider, "batch": result.batch_id}
                cur.execute(_UPDATE_CHANGED, keys)
                result.rows_updated = cur.rowcount
                cur.execute(_INSERT_NEW, keys)
                result.rows_inserted = cur.rowcount
            result.rows_inserted += direct_rows
            result.rows_direct = direct_rows
            timer.add("upsert_s", t)
            result.rows_unchanged = (
                staged - (result.rows_inserted - direct_rows) - result.rows_updated
            )
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
        stop.set()
    log.info(result.summary())
    return result


def _record_failure(database_url: str, result: BatchResult, exc: Exception) -> None:
    """The batch's data rolled back; keep a trace of the attempt in the batch log."""
    try:
        with connect(database_url) as conn, conn.cursor() as cur:
            cur.execute(
                "insert into raw.ingest_batches (batch_id, provider, rows_in, status, error, "
                "finished_at) values (%s, %s, %s, 'failed', %s, now())",
                (
                    result.batch_id,
                    result.provider,
                    result.rows_in,
                    storable(f"{type(exc).__name__}: {exc}"),
                ),
            )
    except (psycopg2.Error, ValueError) as record_exc:  # ValueError: a NUL in a value
        # The load's own error is raised to the caller; this one is a line (a traceback with
        # debug logging): on a database without our schema, both would be the same story.
        log.error("could not record failed batch %s: %s", result.batch_id,
                  str(record_exc).strip(), exc_info=log.isEnabledFor(logging.DEBUG))  # fmt: skip


def ingest(
    database_url: str,
    provider_name: str,
    symbols: Sequence[str] | None = None,
    start: date | None = None,
    end: date | None = None,
    provider_options: dict[str, Any] | None = None,
    on_progress: Callable[[int], None] | None = None,
    plan: Sequence[tuple[Sequence[str], date | None]] | None = None,
) -> BatchResult:
    """Fetch from a provider and load it as one batch (what the DAG and CLI call).

    `plan` (a universe's `ingest.universe.fetch_plan`) replaces `symbols`/`start` with groups
    of symbols, each fetched from its own first day; still one batch."""
    import itertools

    from ingest.providers import get_provider

    provider = get_provider(provider_name, **(provider_options or {}))
    if plan is None:
        items: Iterable[FetchItem] = provider.fetch(symbols, start, end)
    else:
        items = itertools.chain.from_iterable(
            provider.fetch(list(group), first, end) for group, first in plan
        )
    return load_prices(database_url, items, provider.name, on_progress=on_progress)


def announce_pending(database_url: str) -> list[str]:
    """Mark every batch not yet announced downstream as announced; return the ids of those
    that changed rows (empty: nothing for the raw_prices Asset to announce). One UPDATE, so
    two runs announcing at once split the batches between them, never both claim one."""
    with connect(database_url) as conn, conn.cursor() as cur:
        cur.execute(
            "update raw.ingest_batches set announced_at = now() where announced_at is null"
            " and status <> 'running' returning batch_id::text, rows_inserted + rows_updated"
        )
        return sorted(batch for batch, changed in cur.fetchall() if changed > 0)
