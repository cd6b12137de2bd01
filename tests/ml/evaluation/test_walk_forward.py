"""ml/walk_forward.py: folds on the trading calendar with purge gaps, and the walk-forward run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.evaluation.walk_forward import (
    WalkForwardConfig,
    fold_segments,
    folds_fingerprint,
    make_folds,
    run_walk_forward,
)

CALENDAR = np.array(pd.bdate_range("2020-01-01", periods=400).date)


def position(day) -> int:
    return int(np.searchsorted(CALENDAR, day))


@pytest.mark.parametrize("mode", ["expanding", "rolling"])
def test_folds_leave_a_purge_gap_of_the_horizon_and_advance_by_the_step(mode: str) -> None:
    config = WalkForwardConfig(mode=mode, train_days=100, valid_days=30, test_days=50, step_days=50)

    folds = make_folds(CALENDAR, horizon=5, config=config)

    assert len(folds) == 5  # first test starts at 100 + 5 + 30 + 5 = 140
    for k, fold in enumerate(folds):
        assert position(fold.test_start) == 140 + 50 * k
        assert position(fold.valid_start) - position(fold.train_end) - 1 == 5
        assert position(fold.test_start) - position(fold.valid_end) - 1 == 5
        assert position(fold.valid_end) - position(fold.valid_start) + 1 == 30
        if mode == "rolling":
            assert position(fold.train_end) - position(fold.train_start) + 1 == 100
        else:
            assert fold.train_start == CALENDAR[0]
    # Back-to-back test windows: no overlap, no hole.
    for before, after in zip(folds, folds[1:], strict=False):
        assert position(after.test_start) == position(before.test_end) + 1


def test_a_wider_gap_is_allowed_but_never_one_shorter_than_the_horizon() -> None:
    wide = make_folds(CALENDAR, 5, WalkForwardConfig(train_days=100, valid_days=30, gap_days=10))
    assert position(wide[0].valid_start) - position(wide[0].train_end) - 1 == 10
    with pytest.raises(ValueError, match="shorter than the label horizon"):
        make_folds(CALENDAR, 5, WalkForwardConfig(gap_days=4))


def test_max_folds_keeps_the_latest_and_fingerprint_tells_folds_apart() -> None:
    config = WalkForwardConfig(train_days=100, valid_days=30, test_days=50, max_folds=2)
    folds = make_folds(CALENDAR, 5, config)
    assert [f.index for f in folds] == [0, 1]
    # The latest fold ends where fewer than 20 dates (too short a test window) are left.
    assert len(CALENDAR) - 20 <= position(folds[-1].test_end) < len(CALENDAR)
    assert folds_fingerprint(folds, "fwd_ret_5d") == folds_fingerprint(list(folds), "fwd_ret_5d")
    assert folds_fingerprint(folds, "fwd_ret_5d") != folds_fingerprint(folds[:1], "fwd_ret_5d")
    assert folds_fingerprint(folds, "fwd_ret_5d") != folds_fingerprint(folds, "fwd_ret_1d")


def test_too_short_a_calendar_says_so() -> None:
    with pytest.raises(ValueError, match="too few for one fold"):
        make_folds(CALENDAR[:100], 5, WalkForwardConfig(train_days=100))


def test_fold_segments_never_train_on_a_label_that_reaches_the_next_segment(
    synthetic_panel,
) -> None:
    panel = synthetic_panel(n_days=400)
    folds = make_folds(panel.calendar, 5, WalkForwardConfig(train_days=150, valid_days=40,
                                                            test_days=60))  # fmt: skip
    for fold in folds:
        seg = fold_segments(panel, fold, min_history=10)
        dates = {name: panel.dates[rows] for name, rows in seg.items()}
        assert dates["train"].max() <= fold.train_end < fold.valid_start <= dates["valid"].min()
        assert (panel.label_end[seg["train"]] < fold.valid_start).all()
        assert (panel.label_end[seg["valid"]] < fold.test_start).all()
        assert dates["test"].min() >= fold.test_start and dates["test"].max() <= fold.test_end
        assert (panel.position()[seg["train"]] >= 9).all()


def test_walk_forward_scores_every_test_row_once_and_finds_a_real_signal(
    synthetic_panel,
) -> None:
    panel = synthetic_panel(n_days=400, symbols=("A", "B", "C", "D", "E", "F"))
    folds = make_folds(panel.calendar, 5, WalkForwardConfig(train_days=150, valid_days=40,
                                                            test_days=60))  # fmt: skip

    result = run_walk_forward("ridge", {"class": "ridge", "kwargs": {"alpha": 1.0}}, panel, folds)

    scored = result.scored
    assert not scored.duplicated(["trade_date", "symbol"]).any()
    assert set(scored["fold"]) == {f.index for f in folds}
    assert result.coverage == 1.0
    assert len(result.fold_metrics) == len(folds)
    assert result.metrics["rank_ic"] > 0.5  # the label is mostly the feature here
    for key in ("sharpe", "benchmark_sharpe", "max_drawdown", "turnover", "ic_tstat", "mape"):
        assert key in result.metrics


def test_checkpointed_walk_forward_gives_the_same_scores_and_cleans_up(
    synthetic_panel, tmp_path
) -> None:
    panel = synthetic_panel(n_days=300)
    folds = make_folds(panel.calendar, 5, WalkForwardConfig(train_days=150, valid_days=30,
                                                            test_days=50, max_folds=2))  # fmt: skip
    spec = {"class": "mlp", "kwargs": {"hidden": [8], "epochs": 2, "batch_size": 128}}

    plain = run_walk_forward("mlp", spec, panel, folds, seed=1)
    checkpointed = run_walk_forward("mlp", spec, panel, folds, seed=1, checkpoint_root=tmp_path)

    pd.testing.assert_frame_equal(plain.scored, checkpointed.scored)
    folders = sorted(p.relative_to(tmp_path).parts[-1] for p in tmp_path.glob("mlp_*/fold_*"))
    assert folders == ["fold_0", "fold_1"]
    assert not list(tmp_path.rglob("*.pt"))  # finished fits leave no checkpoint behind
