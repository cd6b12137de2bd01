"""ml/dataset.py: labels and horizons, feature discovery, processors fitted on train only,
the purge of labels realised late, and sequence windows that index into one tensor."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import numpy as np
import psycopg2
import pytest
import torch

from ml.dataset import (
    FEATURES,
    CSRankNorm,
    FillNA,
    Panel,
    RobustZScore,
    SequenceWindows,
    collate_batch,
    discover_features,
    fit_transform,
    label_horizon,
    load_frame,
    load_panel,
    read_sql,
    time_split,
)

# --- label_horizon -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "horizon"), [("fwd_ret_1d", 1), ("fwd_ret_5d", 5), ("fwd_ret_20d", 20)]
)
def test_label_horizon_reads_the_days_from_the_name(label: str, horizon: int) -> None:
    assert label_horizon(label) == horizon


@pytest.mark.parametrize(
    "label",
    ["ret_5d", "fwd_ret_5", "fwd_ret_d", "fwd_ret_5d_clipped", "fwd_ret_-5d", "FWD_RET_5D", ""],
)
def test_label_horizon_rejects_names_without_a_horizon(label: str) -> None:
    with pytest.raises(ValueError, match=r"cannot tell the horizon .* expected fwd_ret_<N>d"):
        label_horizon(label)


# --- marts ---------------------------------------------------------------------------


D1, D2, D3 = date(2024, 1, 2), date(2024, 1, 3), date(2024, 1, 4)


@pytest.fixture
def marts_url(make_database: Callable[[], str]) -> str:
    """Tiny marts tables: a warm-up row with a NULL feature, and a last day without labels."""
    url = make_database()
    columns = ", ".join(f"{name} double precision" for name in FEATURES)
    features = [
        # (symbol, trade_date, feature value or None for vol_20d)
        ("BBB", D2, 0.2),
        ("AAA", D2, 0.1),
        ("AAA", D1, None),  # vol_20d unknown: the window is not full yet
        ("BBB", D1, 0.3),
        ("AAA", D3, 0.4),
        ("BBB", D3, 0.5),
    ]
    labels = [("AAA", D1, 0.01), ("AAA", D2, -0.02), ("BBB", D1, 0.03), ("BBB", D2, 0.04)]
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(f"create table marts.features_daily (symbol text, trade_date date, {columns})")
        cur.execute(
            "create table marts.labels_daily (symbol text, trade_date date, fwd_ret_5d numeric)"
        )
        for symbol, day, value in features:
            values = [value if name == "vol_20d" else 1.0 for name in FEATURES]
            cur.execute(
                "insert into marts.features_daily values (%s, %s" + ", %s" * len(FEATURES) + ")",
                (symbol, day, *values),
            )
        cur.executemany("insert into marts.labels_daily values (%s, %s, %s)", labels)
    conn.close()
    return url


def test_load_frame_joins_labels_and_drops_incomplete_rows(marts_url: str) -> None:
    frame = load_frame(marts_url)

    assert list(frame.columns) == ["symbol", "trade_date", *FEATURES, "fwd_ret_5d"]
    # AAA on D1 has no vol_20d; D3 has no labels yet; the rest comes sorted by date, then symbol.
    assert list(zip(frame["trade_date"], frame["symbol"], strict=True)) == [
        (D1, "BBB"),
        (D2, "AAA"),
        (D2, "BBB"),
    ]
    assert frame["fwd_ret_5d"].dtype == np.float64  # numeric comes back as float, not Decimal
    assert frame["fwd_ret_5d"].tolist() == [0.03, -0.02, 0.04]
    assert frame["vol_20d"].tolist() == [0.3, 0.1, 0.2]
    assert frame.index.tolist() == [0, 1, 2]


def test_load_frame_without_labels_keeps_the_latest_day(marts_url: str) -> None:
    frame = load_frame(marts_url, with_label=False)

    assert "fwd_ret_5d" not in frame.columns
    assert frame["trade_date"].max() == D3
    assert len(frame) == 5  # only the row with an unknown feature is dropped


def test_read_sql_passes_arguments_and_converts_numerics(marts_url: str) -> None:
    frame = read_sql(
        marts_url,
        "select symbol, trade_date, fwd_ret_5d from marts.labels_daily"
        " where symbol = %s order by trade_date",
        ("BBB",),
    )

    assert frame["symbol"].tolist() == ["BBB", "BBB"]
    assert frame["trade_date"].tolist() == [D1, D2]
    assert frame["fwd_ret_5d"].dtype == np.float64


def test_features_are_discovered_from_the_table_minus_keys_and_bookkeeping(
    marts_url: str,
) -> None:
    with psycopg2.connect(marts_url) as conn, conn.cursor() as cur:
        cur.execute(
            "alter table marts.features_daily add column adj_close double precision,"
            " add column history_days bigint, add column sector text,"
            " add column mom_60d double precision, add column close_price double precision"
        )
    conn.close()

    # close_price is numeric but dbt's YAML marks it `meta: {feature: false}`.
    assert discover_features(marts_url) == [*FEATURES, "mom_60d"]


def test_label_catalog_and_universe_are_used_when_they_exist(marts_url: str) -> None:
    with psycopg2.connect(marts_url) as conn, conn.cursor() as cur:
        cur.execute(
            "create table marts.label_catalog (label text, horizon_days int, description text)"
        )
        cur.execute("insert into marts.label_catalog values ('fwd_ret_5d', 7, 'seven days')")
        cur.execute(
            "create table marts.universe_daily"
            " (symbol text, trade_date date, in_universe boolean, reason text)"
        )
        cur.execute(
            "insert into marts.universe_daily values (%s, %s, true, null), (%s, %s, false, 'x')",
            ("AAA", D2, "BBB", D2),
        )
    conn.close()

    assert label_horizon("fwd_ret_5d", marts_url) == 7
    assert label_horizon("fwd_ret_1d", marts_url) == 1  # not in the catalog: from the name
    frame, _ = load_panel(marts_url, FEATURES, ["fwd_ret_5d"])
    flagged = frame.set_index(["symbol", "trade_date"])["in_universe"]
    assert flagged[("AAA", D2)] and not flagged[("BBB", D2)] and not flagged[("AAA", D1)]
    assert list(
        zip(*[load_frame(marts_url)[c] for c in ("symbol", "trade_date")], strict=True)
    ) == [("AAA", D2)]


# --- processors: statistics of the training rows only ---------------------------------------


def test_robust_zscore_uses_the_fitted_rows_only_and_clips() -> None:
    X = np.array([[1.0], [2.0], [3.0], [1000.0]], dtype=np.float32)  # noqa: N806
    dates = np.array([D1, D1, D2, D2])

    out = fit_transform([RobustZScore(clip=3.0)], X, dates, fit_rows=np.array([0, 1, 2]))

    # median 2, MAD 1 -> scale 1.4826, from the first three rows; the outlier is clipped.
    assert out[:3, 0] == pytest.approx([-1 / 1.4826, 0.0, 1 / 1.4826], rel=1e-5)
    assert out[3, 0] == 3.0


def test_cross_sectional_rank_is_per_day_and_fill_replaces_missing() -> None:
    X = np.array([[5.0], [1.0], [3.0], [np.nan], [7.0]], dtype=np.float32)  # noqa: N806
    dates = np.array([D1, D1, D1, D2, D3])

    ranked = CSRankNorm().transform(X, dates)
    filled = FillNA().transform(ranked, dates)

    assert ranked[:3, 0] == pytest.approx([3.46 / 3, -3.46 / 3, 0.0], abs=1e-5)
    assert filled[3, 0] == 0.0 and filled[4, 0] == 0.0  # missing, and a lone symbol on D3


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


# --- sequence windows ---------------------------------------------------------------------


def test_windows_are_views_into_one_tensor_and_batch_through_a_dataloader(
    synthetic_panel,
) -> None:
    panel = synthetic_panel(n_days=40, symbols=("AAA", "BBB"))
    X = torch.as_tensor(panel.raw)  # noqa: N806
    y = torch.as_tensor(panel.frame[["fwd_ret_5d"]].to_numpy(np.float32))
    rows = np.flatnonzero(panel.position() >= 9)
    windows = SequenceWindows(X, y, rows, lookback=10)

    x0, y0 = windows[0]
    assert x0.shape == (10, 3)
    assert x0.untyped_storage().data_ptr() == X.untyped_storage().data_ptr()  # a view, no copy
    assert torch.equal(x0, X[rows[0] - 9 : rows[0] + 1]) and torch.equal(y0, y[rows[0]])

    loader = torch.utils.data.DataLoader(windows, batch_size=16, collate_fn=collate_batch)
    batches = list(loader)
    assert sum(len(b[1]) for b in batches) == len(rows)
    xb, yb = batches[1]
    assert xb.shape == (16, 10, 3)
    for i, row in enumerate(rows[16:32]):
        assert torch.equal(xb[i], X[row - 9 : row + 1])
        # Every window stays inside its symbol.
        assert panel.seq_start[row - 9] == panel.seq_start[row]
