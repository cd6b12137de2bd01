"""The suites hold the expectations the pipeline relies on, each gating the table it names."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from core.catalogue import feature_catalogue
from expectations.suites import (
    SUITES,
    features_daily,
    labels_daily,
    raw_prices,
    universe_daily,
)

if TYPE_CHECKING:
    from great_expectations import ExpectationSuite


def described(suite: ExpectationSuite) -> set[tuple]:
    rows = set()
    for expectation in suite.expectations:
        kwargs = expectation.configuration.kwargs
        column = kwargs.get("column") or tuple(
            kwargs.get("column_list") or (kwargs.get("column_A"), kwargs.get("column_B"))
        )
        rows.add((expectation.expectation_type, column))
    return rows


def test_suites_are_registered_with_their_tables() -> None:
    assert {name: (schema, table) for name, (schema, table, _) in SUITES.items()} == {
        "raw_prices": ("raw", "prices"),
        "features_daily": ("marts", "features_daily"),
        "labels_daily": ("marts", "labels_daily"),
        "universe_daily": ("marts", "universe_daily"),
    }
    for name, (_, _, build) in SUITES.items():
        assert build().name == name


@pytest.mark.parametrize("build", [raw_prices, features_daily, labels_daily, universe_daily])
def test_each_call_builds_a_fresh_suite(build: Callable[[], ExpectationSuite]) -> None:
    first, second = build(), build()
    assert first is not second
    assert len(first.expectations) == len(second.expectations) >= 5


def test_raw_prices_covers_the_price_contract() -> None:
    assert described(raw_prices()) >= {
        ("expect_table_row_count_to_be_between", (None, None)),
        *(
            ("expect_column_values_to_not_be_null", c)
            for c in ("symbol", "trade_date", "close", "adj_close")
        ),
        *(
            ("expect_column_values_to_be_between", c)
            for c in ("open", "high", "low", "close", "adj_close", "volume")
        ),
        ("expect_compound_columns_to_be_unique", ("symbol", "trade_date")),
        ("expect_column_pair_values_a_to_be_greater_than_b", ("high", "low")),
    }


def test_features_daily_bounds_the_features() -> None:
    suite = features_daily()
    bounds: dict[str, list] = {}
    for e in suite.expectations:
        if e.expectation_type == "expect_column_values_to_be_between":
            bounds.setdefault(e.column, []).append((e.min_value, e.max_value))
    assert bounds["rsi_14"] == [(pytest.approx(0, abs=1e-8), pytest.approx(100))]
    assert (-0.9, 10) in bounds["ret_1d"]  # a split mistaken for a crash
    assert bounds["vol_20d"] == [(pytest.approx(0, abs=1e-8), None)]
    assert bounds["rank_60d"] == [(pytest.approx(0, abs=1e-8), pytest.approx(1))]
    assert bounds["imax_20d"] == [(pytest.approx(0, abs=1e-8), pytest.approx(19))]
    assert ("expect_compound_columns_to_be_unique", ("symbol", "trade_date")) in described(suite)
    sql = [
        e.unexpected_rows_query for e in suite.expectations if hasattr(e, "unexpected_rows_query")
    ]
    assert any("raw.prices" in q for q in sql)  # no dates beyond the raw data
    assert any("macd_signal_9 is null" in q and "history_days >= 79" in q for q in sql)


def test_the_catalogue_lists_the_features_not_the_metadata() -> None:
    catalogue = feature_catalogue()
    assert len(catalogue) >= 60
    assert not {"symbol", "trade_date", "adj_close", "history_days"} & set(catalogue)
    assert {"ret_1d", "rsi_14", "qtlu_60d", "cs_rank_ret_5d", "macd_hist"} <= set(catalogue)
