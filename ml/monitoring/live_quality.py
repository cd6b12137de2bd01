"""Live quality of the signals that were actually published, as their labels arrive.

Reads `signals.daily_signals` (every version of the model: what apps received) joined to the
realised label in `marts.labels_daily`, over the last `window_days` trading days whose label is
known, and measures per day, then averages:
- IC: Spearman rank correlation of score and realised label;
- hit rate: share of `long` rows with a positive label and `short` rows with a negative one;
- top-k return: mean realised label of the `top_k` best-ranked symbols.
The outcome is one row of `monitoring.live_quality` per run date and model (replaced on re-run).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import date

import pandas as pd

from ml.monitoring.store import published_with_labels, record_live_quality

log = logging.getLogger(__name__)

DEFAULT_LABEL = "fwd_ret_1d"


@dataclass(frozen=True)
class LiveQuality:
    run_date: date
    model_name: str
    model_version: str
    label: str
    window_start: date | None
    window_end: date | None
    n_days: int
    ic: float | None
    hit_rate: float | None
    top_k: int
    top_k_return: float | None

    def summary(self) -> str:
        def fmt(value: float | None) -> str:
            return "n/a" if value is None else f"{value:.4f}"

        return (
            f"live quality of {self.model_name} over {self.n_days} labelled days "
            f"({self.window_start}..{self.window_end}, {self.label}): IC {fmt(self.ic)}, "
            f"hit rate {fmt(self.hit_rate)}, top-{self.top_k} return {fmt(self.top_k_return)}"
        )


def _mean(values: list[float]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return sum(finite) / len(finite) if finite else None


def measure(frame: pd.DataFrame, top_k: int) -> tuple[float | None, float | None, float | None]:
    """(mean daily IC, hit rate, mean daily top-k return) of published rows with labels."""
    ics: list[float] = []
    top: list[float] = []
    for _, day in frame.groupby("trade_date"):
        if len(day) >= 3 and day["score"].nunique() > 1 and day["realised"].nunique() > 1:
            ics.append(float(day["score"].rank().corr(day["realised"].rank())))
        top.append(float(day.nsmallest(top_k, "rank")["realised"].mean()))
    sided = frame[frame["signal"] != "neutral"]
    hits = ((sided["signal"] == "long") & (sided["realised"] > 0)) | (
        (sided["signal"] == "short") & (sided["realised"] < 0)
    )
    hit_rate = float(hits.mean()) if len(sided) else None
    return _mean(ics), hit_rate, _mean(top)


def live_quality(
    database_url: str,
    model_name: str,
    model_version: str,
    label: str = DEFAULT_LABEL,
    window_days: int = 20,
    top_k: int = 10,
    run_date: date | None = None,
) -> LiveQuality:
    """Measure and record the live quality up to `run_date` (default: the last labelled day)."""
    frame = published_with_labels(database_url, model_name, label, window_days, run_date)
    days = sorted(frame["trade_date"].unique()) if not frame.empty else []
    ic, hit_rate, top_return = measure(frame, top_k) if days else (None, None, None)
    result = LiveQuality(
        run_date=run_date or (days[-1] if days else date.today()),
        model_name=model_name,
        model_version=model_version,
        label=label,
        window_start=days[0] if days else None,
        window_end=days[-1] if days else None,
        n_days=len(days),
        ic=ic,
        hit_rate=hit_rate,
        top_k=top_k,
        top_k_return=top_return,
    )
    record_live_quality(database_url, result)
    log.info(result.summary())
    return result
