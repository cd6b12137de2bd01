"""ml/metrics.py on hand-made frames whose answers are known."""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import pandas as pd
import pytest

from ml.evaluation.metrics import daily_ic, signal_metrics

D1, D2, D3 = date(2024, 1, 2), date(2024, 1, 3), date(2024, 1, 4)


def frame(rows: list[tuple[date, float, float]]) -> pd.DataFrame:
    """(trade_date, pred, label) rows; symbols are only there to look like the real thing."""
    out = pd.DataFrame(rows, columns=["trade_date", "pred", "label"])
    out.insert(1, "symbol", [f"S{i}" for i in range(len(out))])
    return out


LABELS = {D1: [0.03, -0.01, 0.02, -0.04], D2: [0.01, 0.05, -0.02, 0.0]}


def from_labels(transform) -> pd.DataFrame:  # label -> prediction
    return frame([(day, transform(y), y) for day, ys in LABELS.items() for y in ys])


def test_perfect_predictions() -> None:
    metrics = signal_metrics(from_labels(lambda y: y))

    assert metrics["ic"] == pytest.approx(1.0)
    assert metrics["rank_ic"] == pytest.approx(1.0)
    assert metrics["directional_accuracy"] == 1.0
    assert metrics["mae"] == 0.0
    assert metrics["rmse"] == 0.0
    assert metrics["n_rows"] == 8.0
    assert metrics["n_days"] == 2.0


def test_reversed_predictions() -> None:
    metrics = signal_metrics(from_labels(lambda y: -y))

    assert metrics["ic"] == pytest.approx(-1.0)
    assert metrics["rank_ic"] == pytest.approx(-1.0)
    # The zero label on D2 is left out of directional accuracy: every other sign is wrong.
    assert metrics["directional_accuracy"] == 0.0


def test_monotone_but_nonlinear_predictions_rank_perfectly() -> None:
    metrics = signal_metrics(from_labels(lambda y: y**3))

    assert metrics["rank_ic"] == pytest.approx(1.0)
    assert 0.5 < metrics["ic"] < 0.999


def test_error_metrics_have_their_exact_values() -> None:
    # Errors 0.01, -0.03, 0.02, 0.0: MAE 0.015, RMSE sqrt(0.0014 / 4).
    data = frame([(D1, 0.02, 0.01), (D1, -0.01, 0.02), (D1, 0.05, 0.03), (D1, -0.04, -0.04)])
    metrics = signal_metrics(data)

    assert metrics["mae"] == pytest.approx(0.015)
    assert metrics["rmse"] == pytest.approx(math.sqrt(0.0014 / 4))
    # Signs: right, wrong, right, right.
    assert metrics["directional_accuracy"] == pytest.approx(0.75)


def test_ic_is_the_mean_of_daily_correlations_and_icir_their_ratio_to_spread() -> None:
    # D1: perfect (IC 1). D2: deviations (-1, 0, 1) against (-1, 1, 0): IC = 1 / 2.
    data = frame(
        [
            (D1, 1.0, 10.0),
            (D1, 2.0, 20.0),
            (D1, 3.0, 30.0),
            (D2, 1.0, 1.0),
            (D2, 2.0, 3.0),
            (D2, 3.0, 2.0),
        ]
    )

    ic = daily_ic(data, "pred", "label")
    assert ic.index.tolist() == [D1, D2]
    assert ic.tolist() == pytest.approx([1.0, 0.5])
    assert daily_ic(data, "pred", "label", method="spearman").tolist() == pytest.approx([1.0, 0.5])

    metrics = signal_metrics(data)
    assert metrics["ic"] == pytest.approx(0.75)
    assert metrics["rank_ic"] == pytest.approx(0.75)
    assert metrics["icir"] == pytest.approx(0.75 / np.std([1.0, 0.5], ddof=1))


def test_days_with_fewer_than_three_names_or_no_spread_are_skipped() -> None:
    data = frame(
        [
            # D1 counts: IC 1.
            (D1, 1.0, 1.0),
            (D1, 2.0, 2.0),
            (D1, 3.0, 3.0),
            # D2 has two names only: a perfectly wrong day that must not count.
            (D2, 1.0, 2.0),
            (D2, 2.0, 1.0),
            # D3: the model says the same thing for every name: no correlation to speak of.
            (D3, 0.5, 1.0),
            (D3, 0.5, 3.0),
            (D3, 0.5, 2.0),
        ]
    )

    ic = daily_ic(data, "pred", "label")
    assert ic.index.tolist() == [D1]
    assert signal_metrics(data)["ic"] == pytest.approx(1.0)
    assert signal_metrics(data)["n_days"] == 3.0  # the error metrics still see every row


def test_constant_labels_on_a_day_are_skipped_too() -> None:
    data = frame(
        [
            (D1, 1.0, 0.0),
            (D1, 2.0, 0.0),
            (D1, 3.0, 0.0),
            (D2, 1.0, 1.0),
            (D2, 2.0, 2.0),
            (D2, 3.0, 3.0),
        ]
    )

    assert daily_ic(data, "pred", "label").index.tolist() == [D2]


def test_no_usable_day_gives_nan_ic_not_an_error() -> None:
    data = frame([(D1, 1.0, 2.0), (D1, 2.0, 1.0), (D2, 1.0, 1.0), (D2, 1.0, 2.0), (D2, 1.0, 3.0)])

    metrics = signal_metrics(data)
    assert math.isnan(metrics["ic"])
    assert math.isnan(metrics["rank_ic"])
    assert math.isnan(metrics["icir"])
    assert metrics["mae"] == pytest.approx((1 + 1 + 0 + 1 + 2) / 5)
