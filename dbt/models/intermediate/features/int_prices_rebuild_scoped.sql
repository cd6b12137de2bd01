{#-
    The adjusted bars this build of features_daily reads. A full build reads every bar. An
    incremental one (macros/incremental_first_date.sql) reads the symbols with a bar on or
    after the first rebuilt day, each from `feature_lookback_rows` built rows before that
    day on, with the `history_offset` that continues the history_days of the built table;
    `is_rebuilt` marks the days it rewrites.
    The only model that reads the built mart: incremental_target() is {{ this }} of
    features_daily, which this ephemeral model is compiled into.
-#}
{%- set mart = incremental_target('features_daily') -%}
{%- set lookback = var('feature_lookback_rows') -%}

with

{% if mart is not none %}
{{ incremental_update_scope(mart) }}

context_starts as (

    -- The built rows that feed the windows of the first rebuilt day, per symbol; NULL for a
    -- symbol with nothing built before that day (all of its history is then read).
    select
        symbols_to_update.symbol,
        context.start_date,
        context.start_history_days
    from symbols_to_update
    cross join first_new_day
    -- A subquery per symbol (LATERAL, with its LIMIT): no CTE can say that.
    cross join lateral (  -- noqa: ST05
        select
            min(recent.trade_date) as start_date,
            min(recent.history_days) as start_history_days
        from (
            select
                built.trade_date,
                built.history_days
            from {{ mart }} as built
            where built.symbol = symbols_to_update.symbol
                and built.trade_date < first_new_day.first_date
            order by built.trade_date desc
            limit {{ lookback }}
        ) as recent
    ) as context

),
{% endif %}

prices as (

    select
        adjusted.symbol,
        adjusted.trade_date,
        adjusted.adj_open,
        adjusted.adj_high,
        adjusted.adj_low,
        adjusted.adj_close,
        adjusted.adj_volume,
        adjusted.close_price,
        adjusted.volume,
        {%- if mart is not none %}
        coalesce(context_starts.start_history_days - 1, 0) as history_offset,
        adjusted.trade_date >= (select first_new_day.first_date from first_new_day) as is_rebuilt,
        {%- endif %}
        adjusted.ingested_at
    {%- if mart is not none %}
    from {{ ref('int_prices_adjusted') }} as adjusted
    inner join context_starts
        on adjusted.symbol = context_starts.symbol
    where adjusted.trade_date >= coalesce(context_starts.start_date, '-infinity'::date)
        and {{ in_symbol_slice('adjusted.symbol') }}
    {%- else %}
    from {{ ref('int_prices_adjusted') }} as adjusted
    where {{ in_symbol_slice('adjusted.symbol') }}
    {%- endif %}

)

select * from prices
