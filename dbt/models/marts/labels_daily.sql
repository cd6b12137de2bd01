{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['symbol', 'trade_date'],
        on_schema_change='fail',
        pre_hook=["{{ record_rebuild(incremental_first_date(this)) }}"],
        post_hook=["{{ analyze_if_new() }}", "{{ ensure_index('source_ingested_at') }}"],
    )
}}
{#-
    Forward returns: the only model in the project allowed to look ahead, and only into its
    own label columns. lead() is NULL where the future row is not loaded yet. Horizons are
    recorded in the label_catalog seed (training leaves that many rows of gap).

    The index on source_ingested_at serves incremental runs, which start looking for
    corrected bars after its newest value (macros/incremental_first_date.sql).

    Incremental runs rebuild, for each symbol with new or corrected bars, every label from
    `longest_horizon` rows before the first new day on: those were the labels still waiting
    for (or computed from) the rows that changed. The pre-hook records the first new day in
    monitoring.dbt_rebuilds; the labels_daily checkpoint validates from `longest_horizon`
    rows before it (expectations/scope.py, LABEL_REACH).
-#}
{%- set longest_horizon = 20 -%}

with

{% if is_incremental() %}
{{ incremental_update_scope(this) }}

rebuild_starts as (

    select
        symbols_to_update.symbol,
        coalesce(waiting.start_date, '-infinity'::date) as start_date
    from symbols_to_update
    cross join first_new_day
    -- A subquery per symbol (LATERAL, with its LIMIT): no CTE can say that.
    cross join lateral (  -- noqa: ST05
        select min(recent.trade_date) as start_date
        from (
            select built.trade_date
            from {{ this }} as built
            where built.symbol = symbols_to_update.symbol
                and built.trade_date < first_new_day.first_date
            order by built.trade_date desc
            limit {{ longest_horizon }}
        ) as recent
    ) as waiting

),
{% endif %}

prices as (

    select
        adjusted.symbol,
        adjusted.trade_date,
        adjusted.adj_close,
        adjusted.ingested_at
    {%- if is_incremental() %}
    from {{ ref('int_prices_adjusted') }} as adjusted
    inner join rebuild_starts
        on adjusted.symbol = rebuild_starts.symbol
    where adjusted.trade_date >= rebuild_starts.start_date
    {%- else %}
    from {{ ref('int_prices_adjusted') }} as adjusted
    {%- endif %}

),

future_prices as (

    select
        prices.symbol,
        prices.trade_date,
        prices.adj_close,
        prices.ingested_at,
        lead(prices.adj_close, 1) over by_symbol as adj_close_1d_ahead,
        lead(prices.adj_close, 2) over by_symbol as adj_close_2d_ahead,
        lead(prices.adj_close, 5) over by_symbol as adj_close_5d_ahead,
        lead(prices.adj_close, 20) over by_symbol as adj_close_20d_ahead
    from prices
    window by_symbol as (partition by prices.symbol order by prices.trade_date)

),

labels as (

    select
        future_prices.symbol,
        future_prices.trade_date,
        future_prices.adj_close_1d_ahead / future_prices.adj_close - 1 as fwd_ret_1d,
        future_prices.adj_close_5d_ahead / future_prices.adj_close - 1 as fwd_ret_5d,
        future_prices.adj_close_20d_ahead / future_prices.adj_close - 1 as fwd_ret_20d,
        -- Tradeable: decide at the close of t, buy at the next close, sell one day later.
        future_prices.adj_close_2d_ahead / future_prices.adj_close_1d_ahead - 1 as trade_ret_1d,
        future_prices.ingested_at as source_ingested_at
    from future_prices

)

select * from labels
