"""The panel (every row of a date range, sorted by symbol and date, with its raw feature matrix
and the date each row's label is realised) and the Dataset (the panel cut into named segments
of row indices, features processed on `train`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import InitVar, dataclass, field
from datetime import date

import numpy as np
import pandas as pd

from ml.config import ProcessorSpec
from ml.data.processors import Processor, build_processors, fit_transform


@dataclass
class Panel:
    """All rows of a date range, sorted by (symbol, trade_date), with their raw feature matrix.

    `frame` holds the keys, labels and `in_universe`; the features live in `raw` (float32),
    row-aligned with `frame`. Pass `matrix` (as `ml.data.handler.read_panel` returns it) with
    a frame already sorted; without it the features are taken from `frame`'s columns.
    """

    frame: pd.DataFrame
    features: list[str]
    label: str
    horizon: int
    aux_labels: list[str] = field(default_factory=list)
    matrix: InitVar[np.ndarray | None] = None
    raw: np.ndarray = field(init=False)
    seq_start: np.ndarray = field(init=False)
    label_end: np.ndarray = field(init=False)
    calendar: np.ndarray = field(init=False)

    def __post_init__(self, matrix: np.ndarray | None) -> None:
        if matrix is None:
            frame = self.frame.sort_values(["symbol", "trade_date"]).reset_index(drop=True)
            self.raw = frame[self.features].to_numpy(dtype=np.float32)
        else:
            if matrix.shape != (len(self.frame), len(self.features)):
                raise ValueError(
                    f"matrix of shape {matrix.shape} does not match {len(self.frame)} rows"
                    f" x {len(self.features)} features"
                )
            frame = self.frame.reset_index(drop=True)
            self.raw = matrix if matrix.dtype == np.float32 else matrix.astype(np.float32)
        self.frame = frame
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

    def select(self, features: Sequence[str]) -> Panel:
        """The same rows with other feature columns (a subset of this panel's)."""
        missing = [f for f in features if f not in self.features]
        if missing:
            raise ValueError(f"features {missing} are not in the panel")
        index = [self.features.index(f) for f in features]
        return Panel(
            self.frame, list(features), self.label, self.horizon, self.aux_labels,
            self.raw[:, index],
        )  # fmt: skip

    def feature_frame(self, rows: np.ndarray) -> pd.DataFrame:
        """symbol, trade_date and the raw features of `rows`, in the scoring contract's shape
        (features as float64, as the look-back reader serves them)."""
        keys = self.frame.iloc[rows][["symbol", "trade_date"]].reset_index(drop=True)
        values = pd.DataFrame(self.raw[rows].astype(np.float64), columns=self.features)
        return pd.concat([keys, values], axis=1)

    @property
    def dates(self) -> np.ndarray:
        return self.frame["trade_date"].to_numpy()

    def position(self) -> np.ndarray:
        """Rows of history before each row in its symbol (0 on the symbol's first row)."""
        position: np.ndarray = np.arange(len(self.frame)) - self.seq_start
        return position

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
    X_all: np.ndarray  # processed features of every panel row
    processors: list[Processor]
    # The column models fit on, when not the panel's label (ml/data/labels.py).
    target: str | None = None

    @property
    def features(self) -> list[str]:
        return self.panel.features

    @property
    def label(self) -> str:
        """The training target's column: the panel's label, or it processed per day."""
        return self.target or self.panel.label

    def with_label_processor(self, processor: str | None) -> Dataset:
        """The same dataset with models fitting `processor`'s per-day recast of the label."""
        if processor is None:
            return self
        from ml.data.labels import processed_label

        target = processed_label(self.panel, processor)
        return Dataset(self.panel, self.segments, self.X_all, self.processors, target)

    def rows(self, segment: str) -> np.ndarray:
        return self.segments[segment]

    def X(self, segment: str) -> np.ndarray:  # the usual name
        rows: np.ndarray = self.X_all[self.segments[segment]]
        return rows

    def y(self, segment: str, label: str | None = None) -> np.ndarray:
        col = self.panel.frame[label or self.label].to_numpy(dtype=np.float64)
        return np.asarray(col[self.segments[segment]], dtype=np.float32)

    def keys(self, segment: str) -> pd.DataFrame:
        return self.panel.frame.iloc[self.segments[segment]][["symbol", "trade_date"]]

    def window(self, segment: str) -> tuple[date, date]:
        dates = self.panel.dates[self.segments[segment]]
        return dates.min(), dates.max()

    def subset(self, segments: dict[str, np.ndarray]) -> Dataset:
        """The same processed panel with other segments (processors are not refitted)."""
        return Dataset(self.panel, segments, self.X_all, self.processors, self.target)


def make_dataset(
    panel: Panel,
    segments: dict[str, np.ndarray],
    processors: Sequence[ProcessorSpec] | None = None,
    fit_segment: str = "train",
) -> Dataset:
    procs = build_processors(processors)
    X_all = fit_transform(procs, panel.raw, panel.dates, segments[fit_segment])
    return Dataset(panel, segments, X_all, procs)


def time_split(
    panel: Panel,
    test_fraction: float = 0.2,
    val_fraction: float = 0.15,
    gap_days: int | None = None,
    min_history: int = 1,
    processors: Sequence[ProcessorSpec] | None = None,
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
