"""Leakage guard: before training, stop a run whose features know the future label.

Honest daily features correlate with a forward return at a few hundredths. A feature whose
pooled Spearman correlation with the label on the training rows passes `max_abs_corr` (0.3 by
default, ten times what is plausible) is computed from the future, or the label is in it; the
run stops with the feature's name and its correlation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml.data.dataset import Panel

DEFAULT_MAX_ABS_CORR = 0.3


class LeakageError(RuntimeError):
    pass


def suspicious_features(
    panel: Panel, rows: np.ndarray, max_abs_corr: float = DEFAULT_MAX_ABS_CORR
) -> dict[str, float]:
    """{feature: Spearman correlation with the label} for every feature beyond the bound."""
    label = panel.frame[panel.label].to_numpy(dtype=float)[rows]
    label_rank = pd.Series(label).rank().to_numpy()
    out = {}
    for j, feature in enumerate(panel.features):
        values = panel.raw[rows, j].astype(float)
        ok = np.isfinite(values) & np.isfinite(label)
        if ok.sum() < 30 or np.nanstd(values[ok]) == 0:
            continue
        corr = float(np.corrcoef(pd.Series(values[ok]).rank(), label_rank[ok])[0, 1])
        if abs(corr) > max_abs_corr:
            out[feature] = corr
    return out


def check_leakage(
    panel: Panel, rows: np.ndarray, max_abs_corr: float = DEFAULT_MAX_ABS_CORR
) -> None:
    """Raise LeakageError naming every feature that correlates implausibly with the label."""
    flagged = suspicious_features(panel, rows, max_abs_corr)
    if flagged:
        detail = ", ".join(f"{name} (Spearman {corr:+.2f})" for name, corr in flagged.items())
        raise LeakageError(
            f"leakage guard: {len(flagged)} feature(s) correlate with the future label "
            f"{panel.label} far beyond what is plausible (|corr| > {max_abs_corr}): {detail}. "
            "A feature at t must use only data up to the close of t; training stopped."
        )
