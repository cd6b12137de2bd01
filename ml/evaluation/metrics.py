"""Prediction metrics: error metrics beside the ones that matter for ranking (IC, RankIC)."""

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


def rank_ic_of(dates: np.ndarray, pred: np.ndarray, label: np.ndarray) -> float:
    """Mean daily RankIC of arrays (NaN-safe: 0 when no day has a cross-section)."""
    frame = pd.DataFrame({"trade_date": dates, "pred": pred, "label": label})
    ic = daily_ic(frame, "pred", "label", method="spearman")
    return float(ic.mean()) if len(ic) else 0.0


def signal_metrics(
    frame: pd.DataFrame, pred: str = "pred", label: str = "label"
) -> dict[str, float]:
    """MAE, RMSE, MAPE, directional accuracy, IC, RankIC, ICIR and the IC t-statistic.

    MAPE is on the implied price: predicting return r for an actual return a means a predicted
    price p0 (1 + r) for an actual p0 (1 + a), an error of |r - a| / |1 + a|; defined wherever
    the actual price is not zero. Directional accuracy skips labels of exactly zero.
    """
    err = frame[pred] - frame[label]
    ic = daily_ic(frame, pred, label)
    rank_ic = daily_ic(frame, pred, label, method="spearman")
    nonzero = frame[label] != 0
    priced = (1 + frame[label]).abs() > 1e-12
    ic_std = float(ic.std()) if len(ic) > 1 else float("nan")
    icir = float(ic.mean() / ic_std) if len(ic) > 1 and ic_std > 0 else float("nan")
    return {
        "mae": float(err.abs().mean()),
        "rmse": float(np.sqrt((err**2).mean())),
        "mape": float((err[priced].abs() / (1 + frame.loc[priced, label]).abs()).mean()),
        "directional_accuracy": float(
            (np.sign(frame.loc[nonzero, pred]) == np.sign(frame.loc[nonzero, label])).mean()
        ),
        "ic": float(ic.mean()) if len(ic) else float("nan"),
        "rank_ic": float(rank_ic.mean()) if len(rank_ic) else float("nan"),
        "icir": icir,
        "rank_icir": float(rank_ic.mean() / rank_ic.std())
        if len(rank_ic) > 1 and rank_ic.std() > 0
        else float("nan"),
        "ic_tstat": icir * float(np.sqrt(len(ic))) if len(ic) > 1 else float("nan"),
        "n_rows": float(len(frame)),
        "n_days": float(frame["trade_date"].nunique()),
    }
