"""The data handler: what training reads from the dbt marts.

A feature row at `t` only uses data up to the close of `t` (dbt guarantees it); a label is an
explicit forward return over the symbol's next `h` rows. The handler:

- discovers the feature columns of `marts.features_daily` (every numeric column except the keys
  and a few bookkeeping columns, minus those the dbt catalogue marks `feature: false`), unless
  the config names them;
- reads the label horizon from `marts.label_catalog` when it exists, else from the name;
- joins the universe flag of `marts.universe_daily` when that table exists.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from core.catalogue import non_feature_columns
from core.columnar import read_table, record_batches
from core.db import connect

# The features of the first feature store; monitoring falls back to this list.
FEATURES = ["ret_1d", "ret_5d", "ret_20d", "vol_20d", "rsi_14", "volume_z_20d"]
DEFAULT_LABEL = "fwd_ret_5d"
NOT_FEATURES = {"symbol", "trade_date", "adj_close", "history_days"}
NUMERIC_TYPES = {"double precision", "real", "numeric", "integer", "bigint", "smallint"}


def read_sql(database_url: str, query: str, args: Sequence[Any] = ()) -> pd.DataFrame:
    """Run a query and return a DataFrame (plain psycopg2; no SQLAlchemy engine needed)."""
    with connect(database_url) as conn, conn.cursor() as cur:
        cur.execute(query, tuple(args))
        columns = [d.name for d in cur.description or ()]
        rows = cur.fetchall()
    frame = pd.DataFrame(rows, columns=columns)
    for col in columns:
        # numeric columns arrive as Decimal objects; convert those, never text or dates
        values = frame[col].dropna()
        if frame[col].dtype == object and len(values) and isinstance(values.iloc[0], Decimal):
            frame[col] = pd.to_numeric(frame[col])
    return frame


def table_exists(database_url: str, table: str) -> bool:
    frame = read_sql(database_url, "select to_regclass(%s) is not null as present", (table,))
    return bool(frame["present"].iloc[0])


def label_horizon(label: str, database_url: str | None = None) -> int:
    """Trading days a label looks ahead: `marts.label_catalog` when present, else its name."""
    if database_url is not None and table_exists(database_url, "marts.label_catalog"):
        frame = read_sql(
            database_url,
            "select horizon_days from marts.label_catalog where label = %s",
            (label,),
        )
        if len(frame):
            return int(frame["horizon_days"].iloc[0])
    match = re.fullmatch(r"fwd_ret_(\d+)d", label)
    if not match:
        raise ValueError(f"cannot tell the horizon of label {label!r}; expected fwd_ret_<N>d")
    return int(match.group(1))


def label_columns(database_url: str) -> set[str]:
    frame = read_sql(
        database_url,
        "select column_name from information_schema.columns"
        " where table_schema = 'marts' and table_name = 'labels_daily'",
    )
    return set(frame["column_name"])


def has_labelled_features(database_url: str) -> bool:
    """Whether the marts exist and hold rows: a weekly tick before the first features build
    has nothing to train on and is skipped, not failed."""
    frame = read_sql(
        database_url,
        "select to_regclass('marts.features_daily') is not null"
        " and to_regclass('marts.labels_daily') is not null as built",
    )
    if not bool(frame["built"].iloc[0]):
        return False
    frame = read_sql(database_url, "select exists (select 1 from marts.labels_daily) as rows")
    return bool(frame["rows"].iloc[0])


def discover_features(database_url: str, *, dbt_target: Path | None = None) -> list[str]:
    """Every numeric column of marts.features_daily that is a feature, in table order
    (`dbt_target`: where the dbt manifest is, default the settings' dbt target)."""
    columns = read_sql(
        database_url,
        """
        select column_name, data_type from information_schema.columns
        where table_schema = 'marts' and table_name = 'features_daily'
        order by ordinal_position
        """,
    )
    excluded = NOT_FEATURES | non_feature_columns(target=dbt_target)
    features = [
        name
        for name, kind in zip(columns["column_name"], columns["data_type"], strict=True)
        if kind in NUMERIC_TYPES and name not in excluded
    ]
    if not features:
        raise ValueError("marts.features_daily has no numeric feature columns: build dbt first")
    return features


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def panel_query(
    features: Sequence[str],
    labels: Sequence[str],
    *,
    universe: bool,
    start: date | None = None,
    end: date | None = None,
) -> tuple[str, list[Any]]:
    """(query, $-parameters): symbol, trade_date, the features as `real`, the labels, the
    universe flag; every feature row of `start..end` in (symbol, trade_date) order."""
    cols = "".join(f", f.{_ident(c)}::real as {_ident(c)}" for c in features)
    label_cols = "".join(f", l.{_ident(c)}::double precision as {_ident(c)}" for c in labels)
    flag = "coalesce(u.in_universe, false)" if universe else "true"
    query = f"select f.symbol, f.trade_date{cols}{label_cols}, {flag} as in_universe"
    query += " from marts.features_daily f"
    if labels:
        query += " left join marts.labels_daily l using (symbol, trade_date)"
    if universe:
        query += " left join marts.universe_daily u using (symbol, trade_date)"
    where, params = _date_range("f.trade_date", start, end)
    return query + where + " order by f.symbol, f.trade_date", params


def _date_range(column: str, start: date | None, end: date | None) -> tuple[str, list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    for op, day in ((">=", start), ("<=", end)):
        if day is not None:
            params.append(day)
            where.append(f"{column} {op} ${len(params)}")
    return (" where " + " and ".join(where) if where else ""), params


def read_panel(
    database_url: str,
    features: Sequence[str] | None = None,
    labels: Sequence[str] = (DEFAULT_LABEL,),
    start: date | None = None,
    end: date | None = None,
    *,
    dbt_target: Path | None = None,
) -> tuple[pd.DataFrame, np.ndarray, list[str]]:
    """(keys, matrix, features): the panel read column by column from Arrow batches.

    `keys` holds symbol, trade_date, the labels (float64) and `in_universe`, sorted by symbol
    then date; `matrix` is the float32 features of the same rows, filled batch by batch into
    one preallocated array (no per-value Python objects, no second copy). Every feature row is
    kept (sequence windows need the history); rows outside the universe have
    `in_universe = False` and are never samples.
    """
    features = (
        list(features) if features else discover_features(database_url, dbt_target=dbt_target)
    )
    labels = list(labels)
    universe = table_exists(database_url, "marts.universe_daily")
    query, params = panel_query(features, labels, universe=universe, start=start, end=end)
    where, _ = _date_range("trade_date", start, end)
    expected = int(
        read_table(database_url, "select count(*) as n from marts.features_daily" + where, params)
        .column("n")[0]
        .as_py()
    )
    matrix = np.empty((expected, len(features)), dtype=np.float32)
    # Everything is copied out of each batch at once: a column imported from a batch keeps the
    # whole batch's memory alive (Arrow's C data interface releases a batch as one piece).
    codes: list[np.ndarray] = []
    days: list[np.ndarray] = []
    values: dict[str, list[np.ndarray]] = {name: [] for name in (*labels, "in_universe")}
    symbols: dict[str, int] = {}
    filled = 0
    with record_batches(database_url, query, params) as reader:
        for batch in reader:
            rows = batch.num_rows
            if filled + rows > len(matrix):  # rows written since the count: grow once more
                matrix = np.resize(matrix, (max(filled + rows, 2 * len(matrix)), len(features)))
            block = matrix[filled : filled + rows]
            for j, name in enumerate(features):
                block[:, j] = batch.column(name).to_numpy(zero_copy_only=False)
            encoded = batch.column("symbol").dictionary_encode()
            local = [symbols.setdefault(s, len(symbols)) for s in encoded.dictionary.to_pylist()]
            codes.append(np.asarray(local, dtype=np.int32)[encoded.indices.to_numpy()])
            day = batch.column("trade_date").cast(pa.int32())
            days.append(np.array(day.to_numpy(zero_copy_only=False), dtype=np.int32))
            for name, parts in values.items():
                parts.append(np.array(batch.column(name).to_numpy(zero_copy_only=False)))
            filled += rows
    matrix = matrix[:filled]
    frame = _keys_frame(symbols, codes, days, values)
    order = _sort_order(frame)
    if order is not None:  # a server collation other than code-point order: sort here
        frame, matrix = frame.iloc[order].reset_index(drop=True), matrix[order]
    return frame, matrix, features


def _keys_frame(
    symbols: dict[str, int],
    codes: list[np.ndarray],
    days: list[np.ndarray],
    values: dict[str, list[np.ndarray]],
) -> pd.DataFrame:
    """symbol (str), trade_date (datetime.date), labels (float64) and in_universe (bool); the
    same str and date objects are shared by every row that holds them."""
    names = np.array(list(symbols), dtype=object)
    day = np.concatenate(days) if days else np.zeros(0, np.int32)
    calendar = np.unique(day)
    dates = calendar.astype("datetime64[D]").astype(object)
    frame = pd.DataFrame(
        {
            "symbol": names[np.concatenate(codes)] if codes else names,
            "trade_date": dates[np.searchsorted(calendar, day)],
        }
    )
    for name, parts in values.items():
        kind = bool if name == "in_universe" else np.float64
        frame[name] = np.concatenate(parts).astype(kind) if parts else np.zeros(0, kind)
    return frame


def _sort_order(frame: pd.DataFrame) -> np.ndarray | None:
    """None when `frame` is already sorted by (symbol, trade_date) in Python's order."""
    if frame.empty:
        return None
    codes = pd.factorize(frame["symbol"], sort=True)[0].astype(np.int64)
    days = pd.to_datetime(frame["trade_date"]).to_numpy().astype("datetime64[D]").astype(np.int64)
    key = codes * 1_000_000 + (days - days.min())
    if bool(np.all(np.diff(key) > 0)):
        return None
    order: np.ndarray = np.argsort(key, kind="stable")
    return order


def load_panel(
    database_url: str,
    features: Sequence[str] | None = None,
    labels: Sequence[str] = (DEFAULT_LABEL,),
    start: date | None = None,
    end: date | None = None,
    *,
    dbt_target: Path | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    """(frame, features): `read_panel` as one DataFrame, the features as float32 columns
    (small reads: tests, the scoring contract; training keeps the matrix apart)."""
    keys, matrix, names = read_panel(
        database_url, features, labels, start, end, dbt_target=dbt_target
    )
    values = pd.DataFrame(matrix, columns=names, index=keys.index)
    frame = pd.concat(
        [keys[["symbol", "trade_date"]], values, keys.drop(columns=["symbol", "trade_date"])],
        axis=1,
    )
    return frame, names


def load_frame(
    database_url: str,
    features: Sequence[str] | None = FEATURES,
    label: str = DEFAULT_LABEL,
    with_label: bool = True,
) -> pd.DataFrame:
    """Features joined to the label, one row per (symbol, date) with every value known."""
    frame, names = load_panel(database_url, features, [label] if with_label else [])
    frame = frame.dropna(subset=list(names) + ([label] if with_label else []))
    frame = frame[frame["in_universe"]].drop(columns=["in_universe"])
    return frame.sort_values(["trade_date", "symbol"]).reset_index(drop=True)
