"""ml/data/processors.py: statistics of the training rows only."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from ml.data.processors import CSRankNorm, FillNA, RobustZScore, fit_transform

D1, D2, D3 = date(2024, 1, 2), date(2024, 1, 3), date(2024, 1, 4)


def test_robust_zscore_uses_the_fitted_rows_only_and_clips() -> None:
    X = np.array([[1.0], [2.0], [3.0], [1000.0]], dtype=np.float32)
    dates = np.array([D1, D1, D2, D2])

    out = fit_transform([RobustZScore(clip=3.0)], X, dates, fit_rows=np.array([0, 1, 2]))

    # median 2, MAD 1 -> scale 1.4826, from the first three rows; the outlier is clipped.
    assert out[:3, 0] == pytest.approx([-1 / 1.4826, 0.0, 1 / 1.4826], rel=1e-5)
    assert out[3, 0] == 3.0


def test_cross_sectional_rank_is_per_day_and_fill_replaces_missing() -> None:
    X = np.array([[5.0], [1.0], [3.0], [np.nan], [7.0]], dtype=np.float32)
    dates = np.array([D1, D1, D1, D2, D3])

    ranked = CSRankNorm().transform(X, dates)
    filled = FillNA().transform(ranked, dates)

    assert ranked[:3, 0] == pytest.approx([3.46 / 3, -3.46 / 3, 0.0], abs=1e-5)
    assert filled[3, 0] == 0.0 and filled[4, 0] == 0.0  # missing, and a lone symbol on D3
