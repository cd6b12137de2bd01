"""Expectation suites, defined in code: one function per suite, each returning a fresh suite.

`SUITES` maps a suite's name to the table it gates and the function that builds it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from expectations._gx import load_gx

if TYPE_CHECKING:
    from great_expectations import ExpectationSuite

KEY_COLUMNS = ("symbol", "trade_date")
PRICE_COLUMNS = ("open", "high", "low", "close", "adj_close")


def raw_prices() -> ExpectationSuite:
    """What ingest promises about `raw.prices`, beyond the NOT NULLs the table enforces."""
    gx = load_gx()
    gxe = gx.expectations
    return gx.ExpectationSuite(
        name="raw_prices",
        expectations=[
            gxe.ExpectTableRowCountToBeBetween(min_value=1),
            *(
                gxe.ExpectColumnValuesToNotBeNull(column=column)
                for column in (*KEY_COLUMNS, "close", "adj_close")
            ),
            *(
                gxe.ExpectColumnMinToBeBetween(column=column, min_value=0, strict_min=True)
                for column in PRICE_COLUMNS
            ),
            gxe.ExpectColumnMinToBeBetween(column="volume", min_value=0),
            gxe.ExpectCompoundColumnsToBeUnique(column_list=list(KEY_COLUMNS)),
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A="high", column_B="low", or_equal=True
            ),
        ],
    )


def features_daily() -> ExpectationSuite:
    """Sanity bounds on the feature mart.

    Window features are NULL until their window is full; value expectations skip NULLs, so
    only the values that exist are bounded.
    """
    gx = load_gx()
    gxe = gx.expectations
    return gx.ExpectationSuite(
        name="features_daily",
        expectations=[
            gxe.ExpectTableRowCountToBeBetween(min_value=1),
            *(gxe.ExpectColumnValuesToNotBeNull(column=column) for column in KEY_COLUMNS),
            gxe.ExpectCompoundColumnsToBeUnique(column_list=list(KEY_COLUMNS)),
            gxe.ExpectColumnValuesToBeBetween(column="history_days", min_value=1),
            gxe.ExpectColumnValuesToBeBetween(column="adj_close", min_value=0, strict_min=True),
            gxe.ExpectColumnValuesToBeBetween(
                column="rsi_14", min_value=0, max_value=100, mostly=1.0
            ),
            gxe.ExpectColumnValuesToBeBetween(column="vol_20d", min_value=0),
            # Below -90% or above +1000% in a day is far likelier an unadjusted split than a move.
            gxe.ExpectColumnValuesToBeBetween(column="ret_1d", min_value=-0.9, max_value=10),
        ],
    )


SUITES: dict[str, tuple[str, str, Callable[[], ExpectationSuite]]] = {
    "raw_prices": ("raw", "prices", raw_prices),
    "features_daily": ("marts", "features_daily", features_daily),
}
