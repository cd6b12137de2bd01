{#-
    The first trade_date an incremental run must (re)write: the earliest bar of
    int_prices_adjusted that `relation` has not seen, i.e. missing from it or ingested after
    the newest bar it was built from (ingest bumps `ingested_at` when it corrects a row).
    NULL when nothing is new ('infinity' once recorded in monitoring.dbt_rebuilds). Every
    row from that date on is rebuilt, for every symbol, so per-day cross-sectional ranks and
    history counts stay exact even after a back-fill.
    Two separate minimums (least() skips NULLs): an OR of both conditions would defeat the
    anti-join and probe the built table once per bar.
-#}
{% macro incremental_first_date(relation) -%}
least(
    (
        select min(corrected.trade_date)
        from {{ ref('int_prices_adjusted') }} as corrected
        where corrected.ingested_at > (
            select coalesce(max(built.source_ingested_at), '-infinity'::timestamptz)
            from {{ relation }} as built
        )
    ),
    (
        select min(missing.trade_date)
        from {{ ref('int_prices_adjusted') }} as missing
        left join {{ relation }} as built
            on missing.symbol = built.symbol
            and missing.trade_date = built.trade_date
        where built.symbol is null
    )
)
{%- endmacro %}


{#-
    The two CTEs that scope an incremental build of `relation` (the built table of the mart:
    `this` in the mart itself, incremental_target() in the ephemeral models compiled into
    it): `first_new_day` (see above; read from monitoring.dbt_rebuilds when the mart's
    pre-hook recorded it there) and `symbols_to_update`, the symbols with a bar on or after
    it. The day is compared as a scalar, not joined, so the scan of the prices is a plain
    filter.
-#}
{% macro incremental_update_scope(relation) -%}
first_new_day as (

    select {{ recorded_rebuild_start(relation) }} as first_date

),

symbols_to_update as (

    select distinct
        all_prices.symbol
    from {{ ref('int_prices_adjusted') }} as all_prices
    where all_prices.trade_date >= (select first_new_day.first_date from first_new_day)

),
{%- endmacro %}
