{#-
    The features made of aggregates over rolling frames of the last N rows (t included):
    for every window of `feature_windows` the Alpha158 price, trend, range, price-volume and
    up/down families, and the classic 14- and 20-row indicators (RSI, ATR, volatility,
    volume z-score, Bollinger %B, dollar volume). One CTE per frame length. In an
    incremental build each frame reads only the rows it reaches from a rebuilt day (an
    N-row frame: N - 1 rows before it), and only the rebuilt days come out.
-#}
{%- set windows = var('feature_windows') -%}
{%- set incremental = incremental_target('features_daily') is not none -%}

with
{% for d in windows %}
rolling_{{ d }}d as (

    select
        bars.symbol,
        bars.trade_date,
        avg(bars.adj_close) over last_rows as avg_close,
        stddev_samp(bars.adj_close) over last_rows as stddev_close,
        max(bars.adj_close) over last_rows as max_close,
        min(bars.adj_close) over last_rows as min_close,
        max(bars.adj_high) over last_rows as max_high,
        min(bars.adj_low) over last_rows as min_low,
        regr_slope(bars.adj_close, bars.time_index) over last_rows as slope,
        regr_intercept(bars.adj_close, bars.time_index) over last_rows as intercept,
        regr_r2(bars.adj_close, bars.time_index) over last_rows as r2,
        corr(bars.adj_close, bars.log_volume) over last_rows as close_volume_corr,
        max(bars.log_volume) over last_rows as max_log_volume,
        min(bars.log_volume) over last_rows as min_log_volume,
        avg(bars.is_up_day) over last_rows as share_up,
        avg(bars.is_down_day) over last_rows as share_down,
        sum(bars.gain_1d) over last_rows as sum_gain,
        sum(bars.abs_close_change) over last_rows as sum_abs_change,
        sum(bars.volume_gain_1d) over last_rows as sum_volume_gain,
        sum(bars.abs_volume_change) over last_rows as sum_abs_volume_change,
        avg(bars.adj_volume) over last_rows as avg_volume,
        stddev_samp(bars.adj_volume) over last_rows as stddev_volume,
        avg(bars.abs_ret_volume) over last_rows as avg_abs_ret_volume,
        stddev_samp(bars.abs_ret_volume) over last_rows as stddev_abs_ret_volume
    from {{ ref('int_prices_sequenced') }} as bars
    {%- if incremental %}
    where bars.rows_before_rebuild <= {{ d - 1 }}
    {%- endif %}
    window last_rows as (
        partition by bars.symbol
        order by bars.trade_date
        rows between {{ d - 1 }} preceding and current row
    )

),
{% endfor %}
rolling_classic as (

    select
        bars.symbol,
        bars.trade_date,
        avg(bars.gain_1d) over last_14_rows as avg_gain_14d,
        avg(bars.loss_1d) over last_14_rows as avg_loss_14d,
        avg(bars.true_range) over last_14_rows as avg_true_range_14d,
        stddev_samp(bars.ret_1d) over last_20_rows as stddev_ret_1d_20d,
        avg(bars.dollar_volume) over last_20_rows as dollar_volume_20d,
        stddev_pop(bars.adj_close) over last_20_rows as pop_stddev_close_20d
    from {{ ref('int_prices_sequenced') }} as bars
    {%- if incremental %}
    where bars.rows_before_rebuild <= 19
    {%- endif %}
    window
        by_symbol as (partition by bars.symbol order by bars.trade_date),
        last_14_rows as (by_symbol rows between 13 preceding and current row),
        last_20_rows as (by_symbol rows between 19 preceding and current row)

),

rolling_features as (

    select
        bars.symbol,
        bars.trade_date,
        case
            when bars.history_days >= 20
                then rolling_classic.dollar_volume_20d
        end as dollar_volume_20d,
        case
            when bars.history_days >= 21
                then rolling_classic.stddev_ret_1d_20d
        end as vol_20d,
        case
            when bars.history_days < 15 then null
            when rolling_classic.avg_gain_14d + rolling_classic.avg_loss_14d = 0
                then 50::double precision
            -- The share first, then the scale: (100 * g) / g can round to 100.00000000000001.
            else
                100 * (
                    rolling_classic.avg_gain_14d
                    / (rolling_classic.avg_gain_14d + rolling_classic.avg_loss_14d)
                )
        end as rsi_14,
        -- A constant window has no spread; its float stddev may come out as rounding noise
        -- rather than 0, so "zero" means below 1e-12 of the mean.
        case
            when bars.history_days >= 20
                and rolling_20d.stddev_volume > 1e-12 * abs(rolling_20d.avg_volume)
                then (bars.adj_volume - rolling_20d.avg_volume) / rolling_20d.stddev_volume
        end as volume_z_20d,
        {%- for d in windows %}

        -- {{ d }}-row windows.
        case
            when bars.history_days >= {{ d }}
                then rolling_{{ d }}d.avg_close / bars.adj_close
        end as ma_{{ d }}d,
        case
            when bars.history_days >= {{ d }}
                then rolling_{{ d }}d.stddev_close / bars.adj_close
        end as std_{{ d }}d,
        case
            when bars.history_days >= {{ d }}
                then rolling_{{ d }}d.slope / bars.adj_close
        end as beta_{{ d }}d,
        case
            when bars.history_days >= {{ d }}
                and rolling_{{ d }}d.max_close > rolling_{{ d }}d.min_close
                then rolling_{{ d }}d.r2
        end as rsqr_{{ d }}d,
        case
            when bars.history_days >= {{ d }}
                then (
                    bars.adj_close
                    - (rolling_{{ d }}d.intercept + rolling_{{ d }}d.slope * bars.time_index)
                ) / bars.adj_close
        end as resi_{{ d }}d,
        case
            when bars.history_days >= {{ d }}
                then rolling_{{ d }}d.max_high / bars.adj_close
        end as max_{{ d }}d,
        case
            when bars.history_days >= {{ d }}
                then rolling_{{ d }}d.min_low / bars.adj_close
        end as min_{{ d }}d,
        case
            when bars.history_days >= {{ d }}
                then (bars.adj_close - rolling_{{ d }}d.min_low)
                / nullif(rolling_{{ d }}d.max_high - rolling_{{ d }}d.min_low, 0)
        end as rsv_{{ d }}d,
        case
            when bars.history_days >= {{ d }}
                and rolling_{{ d }}d.max_close > rolling_{{ d }}d.min_close
                and rolling_{{ d }}d.max_log_volume > rolling_{{ d }}d.min_log_volume
                then rolling_{{ d }}d.close_volume_corr
        end as corr_{{ d }}d,
        case
            when bars.history_days > {{ d }}
                then rolling_{{ d }}d.share_up
        end as cntp_{{ d }}d,
        case
            when bars.history_days > {{ d }}
                then rolling_{{ d }}d.share_down
        end as cntn_{{ d }}d,
        case
            when bars.history_days > {{ d }}
                then rolling_{{ d }}d.sum_gain / nullif(rolling_{{ d }}d.sum_abs_change, 0)
        end as sump_{{ d }}d,
        case
            when bars.history_days > {{ d }}
                then rolling_{{ d }}d.sum_volume_gain
                / nullif(rolling_{{ d }}d.sum_abs_volume_change, 0)
        end as vsump_{{ d }}d,
        case
            when bars.history_days >= {{ d }}
                then rolling_{{ d }}d.avg_volume / nullif(bars.adj_volume, 0)
        end as vma_{{ d }}d,
        case
            when bars.history_days >= {{ d }}
                then rolling_{{ d }}d.stddev_volume / nullif(bars.adj_volume, 0)
        end as vstd_{{ d }}d,
        case
            when bars.history_days > {{ d }}
                then rolling_{{ d }}d.stddev_abs_ret_volume
                / nullif(rolling_{{ d }}d.avg_abs_ret_volume, 0)
        end as wvma_{{ d }}d,
        {%- endfor %}

        -- Classic indicators.
        case
            when bars.history_days >= 20
                then (
                    bars.adj_close
                    - rolling_20d.avg_close
                    + 2 * rolling_classic.pop_stddev_close_20d
                )
                / nullif(4 * rolling_classic.pop_stddev_close_20d, 0)
        end as bb_pctb_20,
        case
            when bars.history_days >= 15
                then rolling_classic.avg_true_range_14d / bars.adj_close
        end as atr_14
    from {{ ref('int_prices_sequenced') }} as bars
    inner join rolling_classic
        on bars.symbol = rolling_classic.symbol
        and bars.trade_date = rolling_classic.trade_date
    {%- for d in windows %}
    inner join rolling_{{ d }}d
        on bars.symbol = rolling_{{ d }}d.symbol
        and bars.trade_date = rolling_{{ d }}d.trade_date
    {%- endfor %}
    {%- if incremental %}
    where bars.rows_before_rebuild = 0
    {%- endif %}

)

select * from rolling_features
