{#-
    The features that compare today's close, high or low with each of the last N bars
    (macros/window_lags.sql): ret_5d, ret_20d, and for every window of `feature_windows` the
    rate of change, the percentile rank of the close and the days since the high and the
    low. The last bars are lag columns, one per row back: constant-offset lags cost O(1) a
    row, far less than sorting every window. In an incremental build the lags read
    `longest` rows before a rebuilt day, and only the rebuilt days come out.
-#}
{%- set windows = var('feature_windows') -%}
{%- set longest = windows | max -%}
{%- set incremental = incremental_target('features_daily') is not none -%}

with

bar_lags as (

    -- The last {{ longest }} bars as columns (k = 1..{{ longest - 1 }} rows back; the close
    -- also {{ longest }} back, for roc_{{ longest }}d).
    select
        bars.symbol,
        bars.trade_date,
        bars.history_days,
        bars.adj_close,
        bars.adj_high,
        bars.adj_low,
        {%- if incremental %}
        bars.rows_before_rebuild,
        {%- endif %}
        {{ lag_columns('bars.adj_high', 'high', longest - 1, 'by_symbol') }},
        {{ lag_columns('bars.adj_low', 'low', longest - 1, 'by_symbol') }},
        {{ lag_columns('bars.adj_close', 'close', longest, 'by_symbol') }}
    from {{ ref('int_prices_sequenced') }} as bars
    {%- if incremental %}
    where bars.rows_before_rebuild <= {{ longest }}
    {%- endif %}
    window by_symbol as (partition by bars.symbol order by bars.trade_date)

),

positions as (

    select
        bar_lags.symbol,
        bar_lags.trade_date,
        {%- for d in windows %}
        bar_lags.close_lag_{{ d }} / bar_lags.adj_close as roc_{{ d }}d,
        case
            when bar_lags.history_days >= {{ d }}
                then (
                    {{ count_lags('close', 'bar_lags', d, '<') }}
                    + ({{ count_lags('close', 'bar_lags', d, '=') }} + 1) / 2.0
                )::double precision / {{ d }}
        end as rank_{{ d }}d,
        case
            when bar_lags.history_days >= {{ d }}
                then {{ rows_since('high', 'bar_lags', d, 'greatest') }}::double precision
        end as imax_{{ d }}d,
        case
            when bar_lags.history_days >= {{ d }}
                then {{ rows_since('low', 'bar_lags', d, 'least') }}::double precision
        end as imin_{{ d }}d,
        {%- endfor %}
        bar_lags.adj_close / bar_lags.close_lag_5 - 1 as ret_5d,
        bar_lags.adj_close / bar_lags.close_lag_20 - 1 as ret_20d
    from bar_lags
    {%- if incremental %}
    where bar_lags.rows_before_rebuild = 0
    {%- endif %}

)

select * from positions
