"""ml/data/dataset.py: processors fitted on train only, and the purge of labels realised late."""

from __future__ import annotations

import numpy as np

from ml.data.dataset import Panel, time_split
from ml.data.processors import RobustZScore


def test_processors_of_time_split_never_see_test_rows(synthetic_panel) -> None:
    panel = synthetic_panel()
    panel.raw[:, 2] += np.where(panel.dates >= panel.calendar[-50], 1e6, 0).astype(np.float32)

    dataset = time_split(panel, test_fraction=0.2)

    zscore = dataset.processors[0]
    assert isinstance(zscore, RobustZScore)
    assert zscore.median is not None and zscore.median[2] < 100  # the shifted test rows unseen
    assert dataset.X("test")[:, 2].max() == zscore.clip


# --- purge: a label realised after the next segment starts never trains ---------------------


def test_samples_purge_rows_whose_label_is_realised_late(synthetic_panel) -> None:
    frame = synthetic_panel().frame
    # CCC misses ten days before the cut: its 5-row label reaches 15 trading dates ahead.
    dates = sorted(frame["trade_date"].unique())
    cut = dates[200]
    missing = (frame["symbol"] == "CCC") & frame["trade_date"].isin(dates[190:200])
    panel = Panel(frame[~missing], ["f_signal", "f_noise", "f_scale"], "fwd_ret_5d", 5)

    rows = panel.samples(dates[0], dates[200 - 5 - 1], 1, before=cut)

    kept = panel.frame.iloc[rows]
    assert (panel.label_end[rows] < cut).all()
    assert kept[kept["symbol"] == "AAA"]["trade_date"].max() == dates[194]
    # CCC's last kept row is 5 of *its* rows before the cut, i.e. before the hole.
    assert kept[kept["symbol"] == "CCC"]["trade_date"].max() == dates[184]
