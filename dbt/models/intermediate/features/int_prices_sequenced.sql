{#-
    One narrow row per bar this build reads (int_prices_rebuild_scoped): its history count,
    the day's move (NULL on a symbol's first row) and the few columns every window family of
    features_daily reads. Window frames re-read their input rows, so a narrow input keeps
    them fast; the families all read this one CTE (PostgreSQL materializes a CTE read more
    than once).
-#}
{%- set incremental = incremental_target('features_daily') is not none -%}

with

prices as (

    select * from {{ ref('int_prices_rebuild_scoped') }}

),

lagged_prices as (

    select
        prices.symbol,
        prices.trade_date,
        prices.adj_open,
        prices.adj_high,
        prices.adj_low,
        prices.adj_close,
        prices.adj_volume,
        prices.close_price,
        prices.volume,
        prices.ingested_at,
        {%- if incremental %}
        prices.is_rebuilt,
        prices.history_offset + row_number() over by_symbol as history_days,
        {%- else %}
        row_number() over by_symbol as history_days,
        {%- endif %}
        lag(prices.adj_close, 1) over by_symbol as adj_close_1d_ago,
        lag(prices.adj_volume, 1) over by_symbol as adj_volume_1d_ago,
        ln(prices.adj_volume + 1) as log_volume,
        ln(lag(prices.adj_volume, 1) over by_symbol + 1) as log_volume_1d_ago
    from prices
    window by_symbol as (partition by prices.symbol order by prices.trade_date)

),

bars as (

    select
        lagged_prices.symbol,
        lagged_prices.trade_date,
        lagged_prices.adj_open,
        lagged_prices.adj_high,
        lagged_prices.adj_low,
        lagged_prices.adj_close,
        lagged_prices.adj_volume,
        lagged_prices.close_price,
        lagged_prices.ingested_at,
        lagged_prices.history_days,
        {%- if incremental %}
        -- Rows between this bar and its symbol's first rebuilt day (0 from that day on). Each
        -- window family reads only the rows its frames reach from a rebuilt day: the same
        -- rows in the same order, so the same values, for a fraction of the work.
        greatest(
            min(lagged_prices.history_days) filter (
                where lagged_prices.is_rebuilt
            ) over (partition by lagged_prices.symbol)
            - lagged_prices.history_days,
            0
        ) as rows_before_rebuild,
        {%- endif %}
        lagged_prices.adj_close / lagged_prices.adj_close_1d_ago - 1 as ret_1d,
        -- greatest() skips NULLs, so the first row would count as a 0 move without the case.
        case
            when lagged_prices.adj_close_1d_ago is not null
                then greatest(lagged_prices.adj_close - lagged_prices.adj_close_1d_ago, 0)
        end as gain_1d,
        case
            when lagged_prices.adj_close_1d_ago is not null
                then greatest(lagged_prices.adj_close_1d_ago - lagged_prices.adj_close, 0)
        end as loss_1d,
        -- Integers: their moving sums cost O(1) a row (float ones recompute the frame).
        (lagged_prices.adj_close > lagged_prices.adj_close_1d_ago)::integer as is_up_day,
        (lagged_prices.adj_close < lagged_prices.adj_close_1d_ago)::integer as is_down_day,
        (lagged_prices.adj_close <> lagged_prices.adj_close_1d_ago)::integer as close_moved,
        (lagged_prices.log_volume <> lagged_prices.log_volume_1d_ago)::integer
            as log_volume_moved,
        case
            when lagged_prices.adj_volume_1d_ago is not null
                then greatest(lagged_prices.adj_volume - lagged_prices.adj_volume_1d_ago, 0)
        end as volume_gain_1d,
        abs(lagged_prices.adj_volume - lagged_prices.adj_volume_1d_ago) as abs_volume_change,
        abs(lagged_prices.adj_close / lagged_prices.adj_close_1d_ago - 1)
        * lagged_prices.adj_volume as abs_ret_volume,
        -- True range: today's range widened to include a gap from yesterday's close.
        case
            when lagged_prices.adj_close_1d_ago is not null
                then greatest(
                    lagged_prices.adj_high - lagged_prices.adj_low,
                    abs(lagged_prices.adj_high - lagged_prices.adj_close_1d_ago),
                    abs(lagged_prices.adj_low - lagged_prices.adj_close_1d_ago)
                )
        end as true_range,
        lagged_prices.log_volume,
        lagged_prices.close_price * lagged_prices.volume as dollar_volume
    from lagged_prices

)

select * from bars
