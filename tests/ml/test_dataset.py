"""ml/dataset.py: label horizons, the walk-forward split's gap, and reading the marts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import numpy as np
import pandas as pd
import psycopg2
import pytest

from ml.dataset import FEATURES, label_horizon, load_frame, read_sql, time_split

SYMBOLS = ["AAA", "BBB", "CCC"]


def make_frame(n_dates: int, label: str = "fwd_ret_5d", seed: int = 0) -> pd.DataFrame:
    """Random features and label for SYMBOLS on `n_dates` business days, rows in random order."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2020-01-01", periods=n_dates).date
    index = pd.MultiIndex.from_product([dates, SYMBOLS], names=["trade_date", "symbol"])
    frame = pd.DataFrame(
        rng.normal(size=(len(index), len(FEATURES))), columns=FEATURES, index=index
    )
    frame[label] = rng.normal(0, 0.02, len(index))
    return frame.reset_index().sample(frac=1.0, random_state=seed).reset_index(drop=True)


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


# --- time_split ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "gap_days", "test_fraction", "expected_gap"),
    [
        ("fwd_ret_5d", None, 0.2, 5),
        ("fwd_ret_5d", 8, 0.2, 8),
        ("fwd_ret_1d", None, 0.3, 1),
        ("fwd_ret_20d", None, 0.25, 20),
    ],
)
def test_time_split_leaves_the_gap_between_train_and_test(
    label: str, gap_days: int | None, test_fraction: float, expected_gap: int
) -> None:
    frame = make_frame(200, label)
    dataset = time_split(frame, label, test_fraction=test_fraction, gap_days=gap_days)

    train, test = dataset.segments["train"], dataset.segments["test"]
    dates = sorted(frame["trade_date"].unique())
    train_end, test_start = train["trade_date"].max(), test["trade_date"].min()
    assert train_end < test_start  # so every train date is before every test date
    between = [d for d in dates if train_end < d < test_start]
    assert len(between) == expected_gap >= label_horizon(label)
    # The last training label is realised `horizon` trading dates after train_end: before the test.
    assert dates[dates.index(train_end) + label_horizon(label)] < test_start

    assert test["trade_date"].nunique() == int(len(dates) * test_fraction)
    assert dataset.window("test") == (test_start, dates[-1])
    assert dataset.window("train") == (dates[0], train_end)
    # Every row on a train (test) date is in train (test); only the gap's rows are left out.
    assert len(train) == (frame["trade_date"] <= train_end).sum()
    assert len(test) == (frame["trade_date"] >= test_start).sum()
    assert len(train) + len(test) + len(between) * len(SYMBOLS) == len(frame)


def test_time_split_exposes_features_and_label_per_segment() -> None:
    frame = make_frame(100)
    dataset = time_split(frame, "fwd_ret_5d")

    assert list(dataset.X("train").columns) == FEATURES
    assert dataset.y("test").name == "fwd_ret_5d"
    assert len(dataset.X("test")) == len(dataset.y("test")) == len(dataset.segments["test"])
    assert "fwd_ret_5d" not in dataset.X("train").columns


@pytest.mark.parametrize("gap_days", [0, 4])
def test_time_split_refuses_a_gap_shorter_than_the_label_horizon(gap_days: int) -> None:
    with pytest.raises(
        ValueError, match=rf"gap of {gap_days} days is shorter than the label horizon \(5\)"
    ):
        time_split(make_frame(200), "fwd_ret_5d", gap_days=gap_days)


def test_time_split_needs_twenty_train_dates_after_the_gap() -> None:
    # 31 dates, 20 % test: 6 test dates, 5 gap dates, 20 train dates: just enough.
    dataset = time_split(make_frame(31), "fwd_ret_5d", test_fraction=0.2)
    assert dataset.segments["train"]["trade_date"].nunique() == 20

    # 30 dates would leave 19 train dates.
    with pytest.raises(ValueError, match="only 30 dates: too few to train with a 5-day gap"):
        time_split(make_frame(30), "fwd_ret_5d", test_fraction=0.2)


def test_time_split_rejects_an_unknown_label_horizon() -> None:
    frame = make_frame(100).rename(columns={"fwd_ret_5d": "next_week"})
    with pytest.raises(ValueError, match="cannot tell the horizon"):
        time_split(frame, "next_week")


# --- load_frame / read_sql against hand-made marts -----------------------------------------

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
