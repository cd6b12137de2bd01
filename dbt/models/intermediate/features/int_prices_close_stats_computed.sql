{#-
    The features of the sorted and exponentially weighted last closes: the 0.2 and 0.8
    quantiles of every window of `feature_windows` (qtld, qtlu) and MACD, from one call a
    row of intermediate.mf_close_stats() over the last `longest` closes
    (macros/feature_functions.sql), then the MACD signal line over 20 rows of MACD. In an
    incremental build the (costly) stats are computed only for the rows the rebuilt days'
    signal line reads, and only the rebuilt days come out.
-#}
{%- set windows = var('feature_windows') -%}
{%- set longest = windows | max -%}
{%- set incremental = incremental_target('features_daily') is not none -%}

with

close_arrays as (

    select
        bars.symbol,
        bars.trade_date,
        bars.history_days,
        bars.adj_close,
        {%- if incremental %}
        bars.rows_before_rebuild,
        {%- endif %}
        array_agg(bars.adj_close) over (
            partition by bars.symbol
            order by bars.trade_date
            rows between {{ longest - 1 }} preceding and current row
        ) as closes
    from {{ ref('int_prices_sequenced') }} as bars

),

quantiles as materialized (

    -- Materialized: inlined, the function would run once per array element read below.
    select
        close_arrays.symbol,
        close_arrays.trade_date,
        close_arrays.history_days,
        close_arrays.adj_close,
        {%- if incremental %}
        close_arrays.rows_before_rebuild,
        {%- endif %}
        intermediate.mf_close_stats(close_arrays.closes) as close_stats
    from close_arrays
    {%- if incremental %}
    -- Only the rows the rebuilt days' 20-row MACD signal reads need the (costly) stats.
    where close_arrays.rows_before_rebuild <= 19
    {%- endif %}

),

quantiles_and_macd as (

    -- close_stats: [q0.2, q0.8] per window in feature_windows order, then EMA12, EMA26.
    select
        quantiles.symbol,
        quantiles.trade_date,
        quantiles.history_days,
        quantiles.adj_close,
        {%- if incremental %}
        quantiles.rows_before_rebuild,
        {%- endif %}
        {%- for d in windows %}
        case
            when quantiles.history_days >= {{ d }}
                then quantiles.close_stats[{{ 2 * loop.index0 + 1 }}]
        end as quantile_20_{{ d }}d,
        case
            when quantiles.history_days >= {{ d }}
                then quantiles.close_stats[{{ 2 * loop.index0 + 2 }}]
        end as quantile_80_{{ d }}d,
        {%- endfor %}
        case
            when quantiles.history_days >= {{ longest }}
                then (
                    quantiles.close_stats[{{ 2 * windows | length + 1 }}]
                    - quantiles.close_stats[{{ 2 * windows | length + 2 }}]
                ) / quantiles.adj_close
        end as macd_12_26
    from quantiles

),

macd_signals as (

    select
        quantiles_and_macd.symbol,
        quantiles_and_macd.trade_date,
        quantiles_and_macd.adj_close,
        {%- if incremental %}
        quantiles_and_macd.rows_before_rebuild,
        {%- endif %}
        {%- for d in windows %}
        quantiles_and_macd.quantile_20_{{ d }}d,
        quantiles_and_macd.quantile_80_{{ d }}d,
        {%- endfor %}
        quantiles_and_macd.macd_12_26,
        case
            when quantiles_and_macd.history_days >= {{ longest + 19 }}
                then intermediate.mf_ewm(
                    array_agg(quantiles_and_macd.macd_12_26) over (
                        partition by quantiles_and_macd.symbol
                        order by quantiles_and_macd.trade_date
                        rows between 19 preceding and current row
                    ),
                    2.0 / 10
                )
        end as macd_signal_9
    from quantiles_and_macd

),

close_stats_features as (

    select
        macd_signals.symbol,
        macd_signals.trade_date,
        {%- for d in windows %}
        macd_signals.quantile_80_{{ d }}d / macd_signals.adj_close as qtlu_{{ d }}d,
        macd_signals.quantile_20_{{ d }}d / macd_signals.adj_close as qtld_{{ d }}d,
        {%- endfor %}
        macd_signals.macd_12_26,
        macd_signals.macd_signal_9,
        macd_signals.macd_12_26 - macd_signals.macd_signal_9 as macd_hist
    from macd_signals
    {%- if incremental %}
    where macd_signals.rows_before_rebuild = 0
    {%- endif %}

)

select * from close_stats_features
