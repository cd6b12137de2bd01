{#-
    The features made of aggregates over rolling frames of the last N rows (t included) of
    the volume columns and the daily moves, which no other family has as lag columns: for
    every window of `feature_windows` the price-volume correlation, the shares of up and
    down days, and the volume features (vsump, vma, vstd, wvma); and the classic 14- and
    20-row indicators (RSI, ATR, volatility, volume z-score, dollar volume). One window
    clause per frame length over the same order: a single sort. The up and down days and
    the "did it move" flags are integers, whose moving sums PostgreSQL updates in O(1) a row
    (a float aggregate recomputes its whole frame on each row). In an incremental build the
    frames read the rows they reach from a rebuilt day (the longest: `longest` - 1 rows
    before it), and only the rebuilt days come out.
-#}
{%- set windows = var('feature_windows') -%}
{%- set longest = windows | max -%}
{%- set incremental = incremental_target('features_daily') is not none -%}

with

rolling as (

    select
        bars.symbol,
        bars.trade_date,
        bars.history_days,
        bars.adj_volume,
        {%- if incremental %}
        bars.rows_before_rebuild,
        {%- endif %}
        {%- for d in windows %}
        corr(bars.adj_close, bars.log_volume) over last_{{ d }}_rows as close_volume_corr_{{ d }}d,
        -- Moves within the window (its d - 1 newest): none means a constant series.
        sum(bars.close_moved) over last_{{ d - 1 }}_moves as close_moves_{{ d }}d,
        sum(bars.log_volume_moved) over last_{{ d - 1 }}_moves as log_volume_moves_{{ d }}d,
        sum(bars.is_up_day) over last_{{ d }}_rows as up_days_{{ d }}d,
        sum(bars.is_down_day) over last_{{ d }}_rows as down_days_{{ d }}d,
        sum(bars.volume_gain_1d) over last_{{ d }}_rows as sum_volume_gain_{{ d }}d,
        sum(bars.abs_volume_change) over last_{{ d }}_rows as sum_abs_volume_change_{{ d }}d,
        avg(bars.adj_volume) over last_{{ d }}_rows as avg_volume_{{ d }}d,
        stddev_samp(bars.adj_volume) over last_{{ d }}_rows as stddev_volume_{{ d }}d,
        avg(bars.abs_ret_volume) over last_{{ d }}_rows as avg_abs_ret_volume_{{ d }}d,
        stddev_samp(bars.abs_ret_volume) over last_{{ d }}_rows as stddev_abs_ret_volume_{{ d }}d,
        {%- endfor %}
        avg(bars.gain_1d) over last_14_rows as avg_gain_14d,
        avg(bars.loss_1d) over last_14_rows as avg_loss_14d,
        avg(bars.true_range) over last_14_rows as avg_true_range_14d,
        stddev_samp(bars.ret_1d) over last_20_rows as stddev_ret_1d_20d,
        avg(bars.dollar_volume) over last_20_rows as dollar_volume_20d,
        bars.adj_close
    from {{ ref('int_prices_sequenced') }} as bars
    {%- if incremental %}
    where bars.rows_before_rebuild <= {{ longest - 1 }}
    {%- endif %}
    window
        by_symbol as (partition by bars.symbol order by bars.trade_date),
        {%- for d in windows %}
        last_{{ d - 1 }}_moves as (by_symbol rows between {{ d - 2 }} preceding and current row),
        last_{{ d }}_rows as (by_symbol rows between {{ d - 1 }} preceding and current row),
        {%- endfor %}
        last_14_rows as (by_symbol rows between 13 preceding and current row)

),

rolling_features as (

    select
        rolling.symbol,
        rolling.trade_date,
        case
            when rolling.history_days >= 20
                then rolling.dollar_volume_20d
        end as dollar_volume_20d,
        case
            when rolling.history_days >= 21
                then rolling.stddev_ret_1d_20d
        end as vol_20d,
        case
            when rolling.history_days < 15 then null
            when rolling.avg_gain_14d + rolling.avg_loss_14d = 0
                then 50::double precision
            -- The share first, then the scale: (100 * g) / g can round to 100.00000000000001.
            else
                100 * (rolling.avg_gain_14d / (rolling.avg_gain_14d + rolling.avg_loss_14d))
        end as rsi_14,
        -- A constant window has no spread; its float stddev may come out as rounding noise
        -- rather than 0, so "zero" means below 1e-12 of the mean.
        case
            when rolling.history_days >= 20
                and rolling.stddev_volume_20d > 1e-12 * abs(rolling.avg_volume_20d)
                then (rolling.adj_volume - rolling.avg_volume_20d) / rolling.stddev_volume_20d
        end as volume_z_20d,
        {%- for d in windows %}

        -- {{ d }}-row windows.
        case
            when rolling.history_days >= {{ d }}
                and rolling.close_moves_{{ d }}d > 0
                and rolling.log_volume_moves_{{ d }}d > 0
                then rolling.close_volume_corr_{{ d }}d
        end as corr_{{ d }}d,
        case
            when rolling.history_days > {{ d }}
                then rolling.up_days_{{ d }}d::double precision / {{ d }}
        end as cntp_{{ d }}d,
        case
            when rolling.history_days > {{ d }}
                then rolling.down_days_{{ d }}d::double precision / {{ d }}
        end as cntn_{{ d }}d,
        case
            when rolling.history_days > {{ d }}
                then rolling.sum_volume_gain_{{ d }}d
                / nullif(rolling.sum_abs_volume_change_{{ d }}d, 0)
        end as vsump_{{ d }}d,
        case
            when rolling.history_days >= {{ d }}
                then rolling.avg_volume_{{ d }}d / nullif(rolling.adj_volume, 0)
        end as vma_{{ d }}d,
        case
            when rolling.history_days >= {{ d }}
                then rolling.stddev_volume_{{ d }}d / nullif(rolling.adj_volume, 0)
        end as vstd_{{ d }}d,
        case
            when rolling.history_days > {{ d }}
                then rolling.stddev_abs_ret_volume_{{ d }}d
                / nullif(rolling.avg_abs_ret_volume_{{ d }}d, 0)
        end as wvma_{{ d }}d,
        {%- endfor %}

        -- Classic indicators.
        case
            when rolling.history_days >= 15
                then rolling.avg_true_range_14d / rolling.adj_close
        end as atr_14
    from rolling
    {%- if incremental %}
    where rolling.rows_before_rebuild = 0
    {%- endif %}

)

select * from rolling_features
