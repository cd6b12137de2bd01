"""Label processors: the training label recast per day across symbols.

A top-k book only ranks symbols against each other on the same day, yet a model fitted on raw
returns also learns the market's daily move, common to every symbol: trees spend their splits
on it. A label processor (a model spec's `label_processor`) replaces the training target by
its cross-section on each day, as the reference platforms do (Qlib's CSZScoreNorm and
CSRankNorm on the label):

- `cs_zscore`: (y - mean of the day) / std of the day;
- `cs_rank`: the day's percentile rank, centred and scaled to unit variance, (pct - 0.5) * sqrt(12).

Each day's statistics come from that day's labelled rows in the universe only, so a training
row's target uses nothing from other days and no test-window label reaches a training row.
A day with a single labelled symbol has no cross-section: its target is 0. Metrics and the
backtest always use the raw label (`Dataset.panel.label`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from ml.data.dataset import Panel

LABEL_PROCESSORS = ("cs_zscore", "cs_rank")


def process_label(frame: pd.DataFrame, label: str, processor: str) -> pd.Series:
    """`label` of `frame` (trade_date, in_universe, the label) processed per day."""
    if processor not in LABEL_PROCESSORS:
        raise ValueError(f"unknown label processor {processor!r}; known: {LABEL_PROCESSORS}")
    y = frame[label].where(frame["in_universe"].astype(bool))
    by_day = y.groupby(frame["trade_date"])
    if processor == "cs_zscore":
        std = by_day.transform("std", ddof=0)
        out = (y - by_day.transform("mean")) / std.where(std > 0)
    else:
        count = by_day.transform("count")
        rank = by_day.rank(method="average")
        out = ((rank - 0.5) / count - 0.5) * np.sqrt(12.0)
    return out.where(y.isna(), out.fillna(0.0))


def processed_label(panel: Panel, processor: str) -> str:
    """The column of `panel.frame` holding its label processed by `processor` (added once)."""
    column = f"{panel.label}__{processor}"
    if column not in panel.frame.columns:
        panel.frame[column] = process_label(panel.frame, panel.label, processor).to_numpy()
    return column
