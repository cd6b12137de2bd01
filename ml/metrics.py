"""Signal metrics: error metrics beside the ones that matter for ranking (IC, RankIC)."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd


def daily_ic(
    frame: pd.DataFrame, pred: str, label: str, method: Literal["pearson", "spearman"] = "pearson"
) -> pd.Series:
    """Cross-sectional correlation between prediction and label, one value per date."""

    def corr(day: pd.DataFrame) -> float:
        if len(day) < 3 or day[pred].nunique() < 2 or day[label].nunique() < 2:
            return np.nan
        return float(day[pred].corr(day[label], method=method))

    return frame.groupby("trade_date")[[pred, label]].apply(corr).dropna()


def signal_metrics(
    frame: pd.DataFrame, pred: str = "pred", label: str = "label"
) -> dict[str, float]:
    """MAE, RMSE, directional accuracy, IC, RankIC and ICIR of predictions on one segment."""
    err = frame[pred] - frame[label]
    ic = daily_ic(frame, pred, label)
    rank_ic = daily_ic(frame, pred, label, method="spearman")
    nonzero = frame[label] != 0
    return {
        "mae": float(err.abs().mean()),
        "rmse": float(np.sqrt((err**2).mean())),
        "directional_accuracy": float(
            (np.sign(frame.loc[nonzero, pred]) == np.sign(frame.loc[nonzero, label])).mean()
        ),
        "ic": float(ic.mean()) if len(ic) else float("nan"),
        "rank_ic": float(rank_ic.mean()) if len(rank_ic) else float("nan"),
        "icir": float(ic.mean() / ic.std()) if len(ic) > 1 and ic.std() > 0 else float("nan"),
        "n_rows": float(len(frame)),
        "n_days": float(frame["trade_date"].nunique()),
    }
