"""ml/data/handler.py: labels and horizons, feature discovery, reading the marts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import numpy as np
import psycopg2
import pytest

from ml.data.handler import (
    FEATURES,
    discover_features,
    label_horizon,
    load_frame,
    load_panel,
    read_sql,
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
