"""Expectation suites, defined in code: one function per suite, each returning a fresh suite.

`SUITES` maps a suite's name to the table it gates and the function that builds it.

The feature suite is driven by the dbt feature catalogue (dbt/models/marts/_marts__models.yml):
every column whose `meta.feature` is true gets its documented value range and a NULL-share
limit once its window is full (`meta.first_history_days`), so a new feature is gated as soon
as it is documented. Cross-table checks (dates beyond raw.prices, rows per day against
features_daily) are SQL `UnexpectedRowsExpectation`s over the batch. GX substitutes `{batch}`
with an aliased subquery unless the query has a JOIN, where the query must alias it itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from core.catalogue import feature_catalogue
from expectations._gx import load_gx
from expectations.scope import WHOLE_TABLE, Scope
from ingest.schema import KEY_COLUMNS
from ingest.schema import PRICES as PRICE_COLUMNS

if TYPE_CHECKING:
    from great_expectations import ExpectationSuite

# After its warm-up a feature may still be NULL where its formula divides by zero (a flat
# window, a zero-volume day); more than this share of NULLs means a broken formula or feed.
MAX_NULL_SHARE_AFTER_WARM_UP = 0.05
# Documented bounds are mathematical; float arithmetic may overshoot them by rounding.
BOUND_SLACK = 1e-9
# Share of rows whose one-day return must look like a move (see features_daily()).
RET_1D_MOSTLY = 0.9999
LABELS = ("fwd_ret_1d", "fwd_ret_5d", "fwd_ret_20d", "trade_ret_1d")
UNIVERSE_REASONS = (
    "eligible",
    "insufficient_history",
    "price_below_minimum",
    "dollar_volume_below_minimum",
    "not_index_member",
)
NO_DATES_BEYOND_RAW = (
    "select symbol, trade_date from {batch}"
    " where trade_date > (select max(trade_date) from raw.prices)"
)


def _table_checks(schema: str, table: str, scope: Scope, keyed: bool = True) -> list[Any]:
    """Row count and key checks. On the whole table, GX's own; on a scope (the rows changed
    since the last pass, expectations/scope.py), the key's uniqueness within the scope plus
    two invariants of the whole table that cost an index lookup, not a scan: it has a row,
    and (for a table) its key is enforced by a valid unique index, so no duplicate can land
    anywhere in it. `keyed=False` for a view, whose key follows from its table's."""
    gx = load_gx()
    gxe = gx.expectations
    unique = gxe.ExpectCompoundColumnsToBeUnique(column_list=list(KEY_COLUMNS))
    if scope.full:
        return [gxe.ExpectTableRowCountToBeBetween(min_value=1), unique]
    relation = f"{schema}.{table}"
    # A query that reads no batch still names it, in a comment, as GX asks of every query.
    checks = [
        unique,
        gxe.UnexpectedRowsExpectation(
            description=f"{relation} has at least one row (whole table)",
            unexpected_rows_query=(
                f"select '{relation} is empty' as problem"
                f" where not exists (select from {relation}) /* {{batch}} */"
            ),
        ),
    ]
    if keyed:
        key = ", ".join(KEY_COLUMNS)
        checks.append(
            gxe.UnexpectedRowsExpectation(
                description=f"A valid unique index enforces ({key}) on {relation} (whole table)",
                unexpected_rows_query=(
                    f"select 'no unique index on ({key})' as problem where not exists ("
                    " select from pg_index as i where i.indrelid ="
                    f" '{relation}'::regclass and i.indisunique and i.indisvalid"
                    " and (select array_agg(a.attname::text order by a.attname)"
                    " from pg_attribute as a where a.attrelid = i.indrelid"
                    " and a.attnum = any(i.indkey))"
                    f" = array[{', '.join(repr(c) for c in sorted(KEY_COLUMNS))}]"
                    ") /* {batch} */"
                ),
            )
        )
    return checks


def _from_scope(scope: Scope) -> str:
    """A cross-table check's filter on the other table: the scope's days (marts only)."""
    if scope.full or scope.since is None:
        return ""
    return f" where trade_date >= '{scope.since.isoformat()}'::date"


def _null_share_query(catalogue: dict[str, dict[str, Any]]) -> str:
    """One row per feature whose NULL share after its own warm-up is above the limit (one
    pass over the table: a share per feature, then unnested into rows)."""
    names = ", ".join(f"'{name}'" for name in catalogue)
    shares = ", ".join(
        f"avg(case when history_days >= {meta.get('first_history_days', 1)}"
        f" then ({name} is null)::int end)"
        for name, meta in catalogue.items()
    )
    return (
        "select feature, null_share from (select unnest(array["
        + names
        + "]) as feature, unnest(array["
        + shares
        + "]) as null_share from {batch}) as shares"
        + f" where null_share > {MAX_NULL_SHARE_AFTER_WARM_UP}"
    )


def raw_prices(scope: Scope = WHOLE_TABLE) -> ExpectationSuite:
    """What ingest promises about `raw.prices`, beyond the NOT NULLs the table enforces."""
    gx = load_gx()
    gxe = gx.expectations
    return gx.ExpectationSuite(
        name="raw_prices",
        expectations=[
            *_table_checks("raw", "prices", scope),
            *(
                gxe.ExpectColumnValuesToNotBeNull(column=column)
                for column in (*KEY_COLUMNS, "close", "adj_close")
            ),
            # Row by row (not the column's minimum): names the bad rows, holds on no rows.
            *(
                gxe.ExpectColumnValuesToBeBetween(column=column, min_value=0, strict_min=True)
                for column in PRICE_COLUMNS
            ),
            gxe.ExpectColumnValuesToBeBetween(column="volume", min_value=0),
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A="high", column_B="low", or_equal=True
            ),
            gxe.UnexpectedRowsExpectation(
                description="No bar dated after today (a provider or time-zone bug)",
                unexpected_rows_query=(
                    "select symbol, trade_date from {batch} where trade_date > current_date"
                ),
            ),
        ],
    )


def features_daily(scope: Scope = WHOLE_TABLE) -> ExpectationSuite:
    """The feature mart: keys, every documented range, NULLs only during warm-up, no dates
    beyond the raw data.

    Window features are NULL until their window is full; value expectations skip NULLs, so
    only the values that exist are bounded.
    """
    gx = load_gx()
    gxe = gx.expectations
    catalogue = feature_catalogue()
    ranges = []
    for name, meta in catalogue.items():
        if "min_value" not in meta and "max_value" not in meta:
            continue
        low, high = meta.get("min_value"), meta.get("max_value")
        strict = bool(meta.get("strict"))
        ranges.append(
            gxe.ExpectColumnValuesToBeBetween(
                column=name,
                min_value=None if low is None else float(low) - (0 if strict else BOUND_SLACK),
                max_value=None if high is None else float(high) + (0 if strict else BOUND_SLACK),
                strict_min=strict and low is not None,
                strict_max=strict and high is not None,
            )
        )
    return gx.ExpectationSuite(
        name="features_daily",
        expectations=[
            *_table_checks("marts", "features_daily", scope),
            *(gxe.ExpectColumnValuesToNotBeNull(column=column) for column in KEY_COLUMNS),
            gxe.ExpectColumnValuesToBeBetween(column="history_days", min_value=1),
            gxe.ExpectColumnValuesToBeBetween(column="adj_close", min_value=0, strict_min=True),
            # Below -90% or above +1000% in a day is far likelier an unadjusted split or a
            # vendor glitch than a move. Real history has a few (the dev universe: four
            # one-day decimal shifts, -90% then +900%, and one +1,500% penny-stock day in
            # 1.4M bars), so a whole table may hold 1 in 10,000; a daily scope of a few
            # hundred new rows holds none, so a new one stops the pipeline.
            gxe.ExpectColumnValuesToBeBetween(
                column="ret_1d", min_value=-0.9, max_value=10, mostly=RET_1D_MOSTLY
            ),
            *ranges,
            gxe.UnexpectedRowsExpectation(
                description="No feature is NULL in more than 5% of the rows after its warm-up",
                unexpected_rows_query=_null_share_query(catalogue),
            ),
            gxe.UnexpectedRowsExpectation(
                description="No trade_date beyond the last day of raw.prices",
                unexpected_rows_query=NO_DATES_BEYOND_RAW,
            ),
        ],
    )


def labels_daily(scope: Scope = WHOLE_TABLE) -> ExpectationSuite:
    """Forward returns: keys, the same keys as features_daily, NULL exactly where the
    future is not loaded yet (the last `horizon` rows of each symbol)."""
    gx = load_gx()
    gxe = gx.expectations
    horizons = {"fwd_ret_1d": 1, "fwd_ret_5d": 5, "fwd_ret_20d": 20, "trade_ret_1d": 2}
    null_rule = " or ".join(
        f"(({label} is null) <> (rows_after < {horizon}))" for label, horizon in horizons.items()
    )
    return gx.ExpectationSuite(
        name="labels_daily",
        expectations=[
            *_table_checks("marts", "labels_daily", scope),
            *(gxe.ExpectColumnValuesToNotBeNull(column=column) for column in KEY_COLUMNS),
            *(
                gxe.ExpectColumnValuesToBeBetween(column=label, min_value=-1, strict_min=True)
                for label in LABELS
            ),
            gxe.UnexpectedRowsExpectation(
                description="A label is NULL exactly on the last `horizon` rows of its symbol",
                unexpected_rows_query=(
                    "select symbol, trade_date from (select *, count(*) over (partition by"
                    " symbol order by trade_date desc) - 1 as rows_after from {batch})"
                    " as labels"
                    f" where {null_rule}"
                ),
            ),
            gxe.UnexpectedRowsExpectation(
                description="The same (symbol, trade_date) keys as features_daily",
                unexpected_rows_query=(
                    "(select symbol, trade_date from {batch}"
                    " except select symbol, trade_date from marts.features_daily"
                    f"{_from_scope(scope)})"
                    " union all (select symbol, trade_date from marts.features_daily"
                    f"{_from_scope(scope)}"
                    " except select symbol, trade_date from {batch})"
                ),
            ),
            gxe.UnexpectedRowsExpectation(
                description="No trade_date beyond the last day of raw.prices",
                unexpected_rows_query=NO_DATES_BEYOND_RAW,
            ),
        ],
    )


def universe_daily(scope: Scope = WHOLE_TABLE) -> ExpectationSuite:
    """The tradeable universe: one row per feature row, every day, a known reason."""
    gx = load_gx()
    gxe = gx.expectations
    return gx.ExpectationSuite(
        name="universe_daily",
        expectations=[
            *_table_checks("marts", "universe_daily", scope, keyed=False),
            *(
                gxe.ExpectColumnValuesToNotBeNull(column=column)
                for column in (*KEY_COLUMNS, "in_universe", "reason")
            ),
            gxe.ExpectColumnValuesToBeInSet(column="reason", value_set=list(UNIVERSE_REASONS)),
            gxe.UnexpectedRowsExpectation(
                description="in_universe exactly when the reason is 'eligible'",
                unexpected_rows_query=(
                    "select symbol, trade_date from {batch}"
                    " where in_universe <> (reason = 'eligible')"
                ),
            ),
            gxe.UnexpectedRowsExpectation(
                description="Each day has as many rows as features_daily has that day",
                unexpected_rows_query=(
                    "select trade_date, universe.n_rows, features.n_rows as n_feature_rows"
                    " from (select trade_date, count(*) as n_rows from {batch} as batch_rows"
                    " group by trade_date) as universe"
                    " full join (select trade_date, count(*) as n_rows"
                    f" from marts.features_daily{_from_scope(scope)}"
                    " group by trade_date) as features"
                    " using (trade_date)"
                    " where universe.n_rows is distinct from features.n_rows"
                ),
            ),
            gxe.UnexpectedRowsExpectation(
                description="No trade_date beyond the last day of raw.prices",
                unexpected_rows_query=NO_DATES_BEYOND_RAW,
            ),
        ],
    )


SUITES: dict[str, tuple[str, str, Callable[[Scope], ExpectationSuite]]] = {
    "raw_prices": ("raw", "prices", raw_prices),
    "features_daily": ("marts", "features_daily", features_daily),
    "labels_daily": ("marts", "labels_daily", labels_daily),
    "universe_daily": ("marts", "universe_daily", universe_daily),
}
# The marts, in the order the features DAG validates them after dbt.
MART_SUITES = ("features_daily", "labels_daily", "universe_daily")
