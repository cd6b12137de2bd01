"""The suites hold the expectations the pipeline relies on, each gating the table it names."""

from __future__ import annotations

import pytest

from expectations.suites import SUITES, features_daily, raw_prices


def described(suite) -> set[tuple]:  # noqa: ANN001 - a gx.ExpectationSuite
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
    }
    for name, (_, _, build) in SUITES.items():
        assert build().name == name


@pytest.mark.parametrize("build", [raw_prices, features_daily])
def test_each_call_builds_a_fresh_suite(build) -> None:  # noqa: ANN001
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
            ("expect_column_min_to_be_between", c)
            for c in ("open", "high", "low", "close", "adj_close", "volume")
        ),
        ("expect_compound_columns_to_be_unique", ("symbol", "trade_date")),
        ("expect_column_pair_values_a_to_be_greater_than_b", ("high", "low")),
    }


def test_features_daily_bounds_the_features() -> None:
    suite = features_daily()
    by_column = {e.column: e for e in suite.expectations if hasattr(e, "column")}
    assert (by_column["rsi_14"].min_value, by_column["rsi_14"].max_value) == (0, 100)
    assert by_column["rsi_14"].mostly == 1.0
    assert (by_column["ret_1d"].min_value, by_column["ret_1d"].max_value) == (-0.9, 10)
    assert by_column["vol_20d"].min_value == 0
    assert ("expect_compound_columns_to_be_unique", ("symbol", "trade_date")) in described(suite)
