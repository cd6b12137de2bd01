"""Datasets for training and scoring, read from the dbt marts.

A feature row at `t` only uses data up to the close of `t` (dbt guarantees it); a label is an
explicit forward return over the symbol's next `h` rows. The data handler here:

- discovers the feature columns of `marts.features_daily` (every numeric column except the keys
  and a few bookkeeping columns, minus those the dbt manifest marks `feature: false`), unless the
  config names them;
- reads the label horizon from `marts.label_catalog` when it exists, else from the name;
- keeps only rows in `marts.universe_daily` (`in_universe`) as samples when that table exists;
- holds one panel sorted by (symbol, trade_date): a float32 feature matrix, the labels, and for
  every row the date its label is realised, which is what the purge between segments checks.

Processors (robust z-score, per-day cross-sectional rank, fill of missing values) are fitted on
a segment (the training window) and then applied to every row. Sequence models read windows of
the last `lookback` rows of a symbol by indexing into the one feature tensor, never by copying
a window per sample.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg2

log = logging.getLogger(__name__)

# The features of the first feature store; monitoring still reads this list.
FEATURES = ["ret_1d", "ret_5d", "ret_20d", "vol_20d", "rsi_14", "volume_z_20d"]
DEFAULT_LABEL = "fwd_ret_5d"
NOT_FEATURES = {"symbol", "trade_date", "adj_close", "history_days"}
NUMERIC_TYPES = {"double precision", "real", "numeric", "integer", "bigint", "smallint"}


def label_horizon(label: str, database_url: str | None = None) -> int:
    """Trading days a label looks ahead: `marts.label_catalog` when present, else its name."""
    if database_url is not None and _table_exists(database_url, "marts.label_catalog"):
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


def read_sql(database_url: str, query: str, args: tuple = ()) -> pd.DataFrame:
    """Run a query and return a DataFrame (plain psycopg2; no SQLAlchemy engine needed)."""
    with psycopg2.connect(database_url) as conn, conn.cursor() as cur:
        cur.execute(query, args)
        columns = [d.name for d in cur.description or ()]
        rows = cur.fetchall()
    conn.close()
    frame = pd.DataFrame(rows, columns=columns)
    for col in columns:
        # numeric columns arrive as Decimal objects; convert those, never text or dates
        values = frame[col].dropna()
        if frame[col].dtype == object and len(values) and isinstance(values.iloc[0], Decimal):
            frame[col] = pd.to_numeric(frame[col])
    return frame


def _table_exists(database_url: str, table: str) -> bool:
    frame = read_sql(database_url, "select to_regclass(%s) is not null as present", (table,))
    return bool(frame["present"].iloc[0])


def _meta_says_not_a_feature(column: dict[str, Any]) -> bool:
    meta = {**(column.get("meta") or {}), **((column.get("config") or {}).get("meta") or {})}
    return meta.get("feature") is False


def _non_feature_columns() -> set[str]:
    """Columns of features_daily that dbt marks `meta: {feature: false}`: from the model's
    YAML in the repository (always there) and from the built manifest when there is one."""
    import yaml

    root = Path(__file__).resolve().parent.parent / "dbt"
    out: set[str] = set()
    for path in sorted((root / "models" / "marts").glob("*.yml")):
        try:
            doc = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError):
            continue
        for model in doc.get("models") or []:
            if model.get("name") == "features_daily":
                for column in model.get("columns") or []:
                    if _meta_says_not_a_feature(column):
                        out.add(column["name"])
    target = os.environ.get("MARKETFLOW_DBT_TARGET_PATH") or str(root / "target")
    manifest = Path(target) / "manifest.json"
    if manifest.exists():
        try:
            nodes = json.loads(manifest.read_text()).get("nodes", {})
        except (OSError, ValueError):
            nodes = {}
        for node in nodes.values():
            if node.get("resource_type") == "model" and node.get("name") == "features_daily":
                for name, column in node.get("columns", {}).items():
                    if _meta_says_not_a_feature(column):
                        out.add(name)
    return out


def discover_features(database_url: str) -> list[str]:
    """Every numeric column of marts.features_daily that is a feature, in table order."""
    columns = read_sql(
        database_url,
        """
        select column_name, data_type from information_schema.columns
        where table_schema = 'marts' and table_name = 'features_daily'
        order by ordinal_position
        """,
    )
    excluded = NOT_FEATURES | _non_feature_columns()
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
) -> tuple[pd.DataFrame, list[str]]:
    """(frame, features): features joined to `labels` and the universe flag, by symbol and date.

    Every feature row is kept (sequence windows need the history); rows outside the universe get
    `in_universe = False` and are never samples.
    """
    features = list(features) if features else discover_features(database_url)
    cols = ", ".join(f"f.{c}" for c in features)
    label_cols = "".join(f", l.{c}" for c in labels)
    universe = _table_exists(database_url, "marts.universe_daily")
    query = f"select f.symbol, f.trade_date, {cols}{label_cols}"
    query += (
        ", coalesce(u.in_universe, false) as in_universe" if universe else ", true as in_universe"
    )
    query += " from marts.features_daily f"
    if labels:
        query += " left join marts.labels_daily l using (symbol, trade_date)"
    if universe:
        query += " left join marts.universe_daily u using (symbol, trade_date)"
    where, args = [], []
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
    frame, features = load_panel(database_url, features, [label] if with_label else [])
    frame = frame.dropna(subset=list(features) + ([label] if with_label else []))
    frame = frame[frame["in_universe"]].drop(columns=["in_universe"])
    return frame.sort_values(["trade_date", "symbol"]).reset_index(drop=True)


# --- processors: fitted on the training rows, applied to every row ------------------------------


class Processor:
    """fit on the training rows of a panel, transform any rows (numpy in, numpy out)."""

    def fit(self, X: np.ndarray, dates: np.ndarray) -> Processor:  # noqa: N803
        return self

    def transform(self, X: np.ndarray, dates: np.ndarray) -> np.ndarray:  # noqa: N803
        raise NotImplementedError


class RobustZScore(Processor):
    """(x - median) / (1.4826 * MAD) with the train window's statistics, clipped to +-clip."""

    def __init__(self, clip: float = 5.0) -> None:
        self.clip = clip
        self.median: np.ndarray | None = None
        self.scale: np.ndarray | None = None

    def fit(self, X: np.ndarray, dates: np.ndarray) -> RobustZScore:  # noqa: N803
        with np.errstate(all="ignore"):
            median = np.nanmedian(X, axis=0)
            mad = np.nanmedian(np.abs(X - median), axis=0) * 1.4826
        self.median = np.nan_to_num(median).astype(np.float32)
        std = np.nanstd(X, axis=0) if len(X) else np.ones(X.shape[1])
        scale = np.where(np.isfinite(mad) & (mad > 1e-12), mad, np.nan_to_num(std))
        self.scale = np.where(scale > 1e-12, scale, 1.0).astype(np.float32)
        return self

    def transform(self, X: np.ndarray, dates: np.ndarray) -> np.ndarray:  # noqa: N803
        if self.median is None or self.scale is None:
            raise RuntimeError("RobustZScore.transform before fit")
        return np.clip((X - self.median) / self.scale, -self.clip, self.clip)


class CSRankNorm(Processor):
    """Each day's cross-sectional rank of every feature, centred and scaled to about unit variance."""

    def transform(self, X: np.ndarray, dates: np.ndarray) -> np.ndarray:  # noqa: N803
        frame = pd.DataFrame(X)
        groups = frame.groupby(pd.Series(dates), sort=False)
        ranked = groups.rank().to_numpy()
        present = groups.transform("count").to_numpy()
        counts = groups[0].transform("size").to_numpy()
        # Centred: n names map to (i - 0.5) / n - 0.5, symmetric around 0 (missing stay NaN).
        with np.errstate(invalid="ignore", divide="ignore"):
            out = ((ranked - 0.5) / present - 0.5) * 3.46
        # A lone symbol on a day has no cross-section: it sits at the middle.
        out[counts <= 1] = 0.0
        return out.astype(np.float32)


class FillNA(Processor):
    """Missing values (warm-up windows, absent features) become `value` (0: the median)."""

    def __init__(self, value: float = 0.0) -> None:
        self.value = value

    def transform(self, X: np.ndarray, dates: np.ndarray) -> np.ndarray:  # noqa: N803
        return np.where(np.isfinite(X), X, self.value).astype(np.float32)


PROCESSORS: dict[str, type[Processor]] = {
    "robust_zscore": RobustZScore,
    "cs_rank": CSRankNorm,
    "fillna": FillNA,
}
DEFAULT_PROCESSORS: list[Any] = ["robust_zscore", "fillna"]


def build_processors(specs: Sequence[Any] | None) -> list[Processor]:
    """`["robust_zscore", {"fillna": {"value": 0}}]` -> processors, applied in that order."""
    out: list[Processor] = []
    for spec in DEFAULT_PROCESSORS if specs is None else specs:
        name, kwargs = (spec, {}) if isinstance(spec, str) else next(iter(spec.items()))
        out.append(PROCESSORS[name](**(kwargs or {})))
    return out


def fit_transform(
    processors: list[Processor], X: np.ndarray, dates: np.ndarray, fit_rows: np.ndarray
) -> np.ndarray:
    """Fit each processor on `fit_rows` of the running output, then transform all rows."""
    out = X.astype(np.float32)
    for proc in processors:
        proc.fit(out[fit_rows], dates[fit_rows])
        out = proc.transform(out, dates).astype(np.float32)
    return out


def transform(processors: list[Processor], X: np.ndarray, dates: np.ndarray) -> np.ndarray:
    out = X.astype(np.float32)
    for proc in processors:
        out = proc.transform(out, dates).astype(np.float32)
    return out


# --- the panel and its segments ---------------------------------------------------------------


@dataclass
class Panel:
    """All rows of a date range, sorted by (symbol, trade_date), with their raw feature matrix."""

    frame: pd.DataFrame
    features: list[str]
    label: str
    horizon: int
    aux_labels: list[str] = field(default_factory=list)
    raw: np.ndarray = field(init=False)
    seq_start: np.ndarray = field(init=False)
    label_end: np.ndarray = field(init=False)
    calendar: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        frame = self.frame.sort_values(["symbol", "trade_date"]).reset_index(drop=True)
        self.frame = frame
        self.raw = frame[self.features].to_numpy(dtype=np.float64).astype(np.float32)
        codes = pd.factorize(frame["symbol"])[0]
        first = np.r_[0, np.flatnonzero(np.diff(codes) != 0) + 1]
        starts = np.zeros(len(frame), dtype=np.int64)
        starts[first] = first
        self.seq_start = np.maximum.accumulate(starts) if len(frame) else starts
        self.calendar = np.array(sorted(frame["trade_date"].unique()))
        # The date a row's label is realised: the symbol's row `horizon` rows later. A symbol
        # with missing days realises it later than `horizon` calendar dates; the purge uses this.
        dates = pd.Series(pd.to_datetime(frame["trade_date"]))
        later = dates.groupby(codes).shift(-self.horizon)
        self.label_end = later.fillna(pd.Timestamp.max.normalize()).dt.date.to_numpy()

    @property
    def dates(self) -> np.ndarray:
        return self.frame["trade_date"].to_numpy()

    def position(self) -> np.ndarray:
        """Rows of history before each row in its symbol (0 on the symbol's first row)."""
        return np.arange(len(self.frame)) - self.seq_start

    def samples(self, start: date, end: date, min_history: int, before: date | None) -> np.ndarray:
        """Rows dated start..end in the universe with a label and `min_history` rows behind
        them, whose label is realised before `before` (the next segment's first date)."""
        frame = self.frame
        mask = (
            (frame["trade_date"] >= start)
            & (frame["trade_date"] <= end)
            & frame["in_universe"].to_numpy()
            & frame[self.label].notna()
            & (self.position() >= min_history - 1)
        ).to_numpy()
        if before is not None:
            mask &= self.label_end < before
        return np.flatnonzero(mask)


@dataclass
class Dataset:
    """A panel split into named segments of row indices, with features processed on `train`."""

    panel: Panel
    segments: dict[str, np.ndarray]
    X_all: np.ndarray  # noqa: N815 - processed features of every panel row
    processors: list[Processor]

    @property
    def features(self) -> list[str]:
        return self.panel.features

    @property
    def label(self) -> str:
        return self.panel.label

    def rows(self, segment: str) -> np.ndarray:
        return self.segments[segment]

    def X(self, segment: str) -> np.ndarray:  # noqa: N802 - the usual name
        return self.X_all[self.segments[segment]]

    def y(self, segment: str, label: str | None = None) -> np.ndarray:
        col = self.panel.frame[label or self.panel.label].to_numpy(dtype=np.float64)
        return col[self.segments[segment]].astype(np.float32)

    def keys(self, segment: str) -> pd.DataFrame:
        return self.panel.frame.iloc[self.segments[segment]][["symbol", "trade_date"]]

    def window(self, segment: str) -> tuple[date, date]:
        dates = self.panel.dates[self.segments[segment]]
        return dates.min(), dates.max()

    def subset(self, segments: dict[str, np.ndarray]) -> Dataset:
        """The same processed panel with other segments (processors are not refitted)."""
        return Dataset(self.panel, segments, self.X_all, self.processors)


def make_dataset(
    panel: Panel,
    segments: dict[str, np.ndarray],
    processors: Sequence[Any] | None = None,
    fit_segment: str = "train",
) -> Dataset:
    procs = build_processors(processors)
    X_all = fit_transform(procs, panel.raw, panel.dates, segments[fit_segment])  # noqa: N806
    return Dataset(panel, segments, X_all, procs)


def time_split(
    panel: Panel,
    test_fraction: float = 0.2,
    val_fraction: float = 0.15,
    gap_days: int | None = None,
    min_history: int = 1,
    processors: Sequence[Any] | None = None,
) -> Dataset:
    """train | gap | valid | gap | test on the trading calendar, gaps of >= the label horizon."""
    gap = panel.horizon if gap_days is None else gap_days
    if gap < panel.horizon:
        raise ValueError(f"gap of {gap} days is shorter than the label horizon ({panel.horizon})")
    cal = panel.calendar
    n = len(cal)
    n_test = max(1, int(n * test_fraction))
    n_val = max(1, int(n * val_fraction))
    if n < n_test + n_val + 2 * gap + 20:
        raise ValueError(f"only {n} dates: too few to split with a {gap}-day gap")
    test_start = n - n_test
    val_end = test_start - gap - 1
    val_start = val_end - n_val + 1
    train_end = val_start - gap - 1
    segments = {
        "train": panel.samples(cal[0], cal[train_end], min_history, cal[val_start]),
        "valid": panel.samples(cal[val_start], cal[val_end], min_history, cal[test_start]),
        "test": panel.samples(cal[test_start], cal[-1], min_history, None),
    }
    return make_dataset(panel, segments, processors)


# --- sequence windows ---------------------------------------------------------------------------


class SequenceWindows:
    """Samples `rows` of one feature tensor as windows of the last `lookback` rows per symbol.

    Nothing is copied per sample: `__getitem__` returns a view `X[i - L + 1 : i + 1]`, and a batch
    is one gather `X[rows[:, None] + offsets]`. Rows need `lookback - 1` rows of history in their
    symbol (Panel.samples' `min_history`). Works with `torch.utils.data.DataLoader` (batched
    through `__getitems__`) and with the trainer's own batching.
    """

    def __init__(self, X: Any, y: Any, rows: Any, lookback: int) -> None:  # noqa: N803
        import torch

        self.X = torch.as_tensor(X)
        self.y = torch.as_tensor(y)
        self.rows = torch.as_tensor(np.asarray(rows), dtype=torch.long)
        self.lookback = int(lookback)
        self.offsets = torch.arange(-self.lookback + 1, 1, dtype=torch.long)

    def to(self, device: Any) -> SequenceWindows:
        out = SequenceWindows.__new__(SequenceWindows)
        out.X, out.y = self.X.to(device), self.y.to(device)
        out.rows, out.offsets = self.rows.to(device), self.offsets.to(device)
        out.lookback = self.lookback
        return out

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        row = int(self.rows[i])
        return self.X[row - self.lookback + 1 : row + 1], self.y[row]

    def __getitems__(self, items: list[int]) -> tuple[Any, Any]:
        import torch

        return self.batch(torch.as_tensor(items, dtype=torch.long, device=self.rows.device))

    def batch(self, positions: Any) -> tuple[Any, Any]:
        rows = self.rows[positions]
        return self.X[rows[:, None] + self.offsets], self.y[rows]


def collate_batch(batch: Any) -> Any:
    """DataLoader collate for SequenceWindows: the batch is already gathered."""
    return batch
