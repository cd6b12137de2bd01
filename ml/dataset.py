"""Datasets for training and scoring, read from the dbt marts.

A feature row at `t` only uses data up to the close of `t` (dbt guarantees it); the label is
an explicit forward return whose horizon decides the gap between train and test.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

import pandas as pd
import psycopg2

FEATURES = ["ret_1d", "ret_5d", "ret_20d", "vol_20d", "rsi_14", "volume_z_20d"]
DEFAULT_LABEL = "fwd_ret_5d"


def label_horizon(label: str) -> int:
    """Trading days a label looks ahead, read from its name (`fwd_ret_5d` -> 5)."""
    match = re.fullmatch(r"fwd_ret_(\d+)d", label)
    if not match:
        raise ValueError(f"cannot tell the horizon of label {label!r}; expected fwd_ret_<N>d")
    return int(match.group(1))


@dataclass
class Dataset:
    """Rows of (symbol, trade_date, features..., label) split into named segments."""

    features: list[str]
    label: str
    segments: dict[str, pd.DataFrame] = field(default_factory=dict)

    def X(self, segment: str) -> pd.DataFrame:  # noqa: N802 - the usual name
        return self.segments[segment][self.features]

    def y(self, segment: str) -> pd.Series:
        return self.segments[segment][self.label]

    def window(self, segment: str) -> tuple[date, date]:
        dates = self.segments[segment]["trade_date"]
        return dates.min(), dates.max()


def load_frame(
    database_url: str,
    features: list[str] = FEATURES,
    label: str = DEFAULT_LABEL,
    with_label: bool = True,
) -> pd.DataFrame:
    """Features joined to labels; rows with an unknown feature (or label) are dropped."""
    cols = ", ".join(f"f.{c}" for c in features)
    query = f"select f.symbol, f.trade_date, {cols}"
    if with_label:
        query += f", l.{label} from marts.features_daily f join marts.labels_daily l using (symbol, trade_date)"
    else:
        query += " from marts.features_daily f"
    frame = read_sql(database_url, query)
    frame = frame.dropna(subset=features + ([label] if with_label else []))
    return frame.sort_values(["trade_date", "symbol"]).reset_index(drop=True)


def read_sql(database_url: str, query: str, args: tuple = ()) -> pd.DataFrame:
    """Run a query and return a DataFrame (plain psycopg2; no SQLAlchemy engine needed)."""
    with psycopg2.connect(database_url) as conn, conn.cursor() as cur:
        cur.execute(query, args)
        columns = [d.name for d in cur.description or ()]
        rows = cur.fetchall()
    conn.close()
    frame = pd.DataFrame(rows, columns=columns)
    for col in columns:
        if frame[col].dtype == object and col not in ("symbol", "trade_date"):
            frame[col] = pd.to_numeric(frame[col])
    return frame


def time_split(
    frame: pd.DataFrame,
    label: str,
    test_fraction: float = 0.2,
    gap_days: int | None = None,
    features: list[str] = FEATURES,
) -> Dataset:
    """Train on the past, test on the most recent dates, with `gap_days` trading days between.

    The gap is at least the label horizon: the last training label must be fully realised
    before the first test date, or the model would have seen part of the test period.
    """
    horizon = label_horizon(label)
    gap = horizon if gap_days is None else gap_days
    if gap < horizon:
        raise ValueError(f"gap of {gap} days is shorter than the label horizon ({horizon})")
    dates = pd.Index(sorted(frame["trade_date"].unique()))
    n_test = max(1, int(len(dates) * test_fraction))
    if len(dates) < n_test + gap + 20:
        raise ValueError(f"only {len(dates)} dates: too few to train with a {gap}-day gap")
    test_start = dates[-n_test]
    train_end = dates[-n_test - gap - 1]
    return Dataset(
        features=list(features),
        label=label,
        segments={
            "train": frame[frame["trade_date"] <= train_end].reset_index(drop=True),
            "test": frame[frame["trade_date"] >= test_start].reset_index(drop=True),
        },
    )
