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

import pandas as pd

from core.catalogue import non_feature_columns
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


def load_panel(
    database_url: str,
    features: Sequence[str] | None = None,
    labels: Sequence[str] = (DEFAULT_LABEL,),
    start: date | None = None,
    end: date | None = None,
    *,
    dbt_target: Path | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    """(frame, features): features joined to `labels` and the universe flag, by symbol and date.

    Every feature row is kept (sequence windows need the history); rows outside the universe get
    `in_universe = False` and are never samples.
    """
    features = (
        list(features) if features else discover_features(database_url, dbt_target=dbt_target)
    )
    cols = ", ".join(f"f.{c}" for c in features)
    label_cols = "".join(f", l.{c}" for c in labels)
    universe = table_exists(database_url, "marts.universe_daily")
    query = f"select f.symbol, f.trade_date, {cols}{label_cols}"
    query += (
        ", coalesce(u.in_universe, false) as in_universe" if universe else ", true as in_universe"
    )
    query += " from marts.features_daily f"
    if labels:
        query += " left join marts.labels_daily l using (symbol, trade_date)"
    if universe:
        query += " left join marts.universe_daily u using (symbol, trade_date)"
    where: list[str] = []
    args: list[Any] = []
    if start is not None:
        where.append("f.trade_date >= %s")
        args.append(start)
    if end is not None:
        where.append("f.trade_date <= %s")
        args.append(end)
    if where:
        query += " where " + " and ".join(where)
    frame = read_sql(database_url, query, tuple(args))
    frame["in_universe"] = frame["in_universe"].astype(bool)
    return frame.sort_values(["symbol", "trade_date"]).reset_index(drop=True), features


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
