{{
    config(
        materialized='incremental',
        incremental_strategy='delete_insert_keyed',
        unique_key=['symbol', 'trade_date'],
        on_schema_change='fail',
        pre_hook=[
            "set local enable_nestloop = off",
            "set local jit = off",
            "{{ record_rebuild(incremental_first_date(this)) }}",
        ],
        post_hook=[
            "{{ analyze_if_new() }}",
            "{{ ensure_index('trade_date') }}",
            "{{ ensure_index('source_ingested_at') }}",
        ],
    )
}}
{#-
    Every window below is partitioned by symbol, ordered by trade_date and ends at the
    current row, so a feature at t only sees rows dated t or earlier (no look-ahead). Window
    lengths are rows (trading days of the symbol). Formulas, windows and units of every
    column: _marts__models.yml. A feature is NULL until its window is full.

    Each family of windows is computed from a narrow `bars` CTE and joined back on the key:
    window frames re-read their input rows, so narrow inputs keep them fast. The planner
    cannot estimate those joins (it guesses one row) and would nest loops over them, hence
    enable_nestloop = off for this model's query (the keyed delete that follows turns it
    back on: macros/delete_insert_keyed.sql). JIT is off too: compiling this query's ~1,000
    expressions costs 10-15 s, far more than running them.

    Incremental runs rebuild every row from the first new or corrected day on (see
    macros/incremental_first_date.sql), reading `feature_lookback_rows` earlier rows of each
    symbol for the windows and continuing its history_days count from the built table. The
    first day is computed once, by the pre-hook that records it in monitoring.dbt_rebuilds
    (macros/rebuild_log.sql); data tests then check the rows from that day on. Two indexes
    keep those reads short: trade_date (also what analysts filter on) and source_ingested_at.
-#}
{%- set windows = var('feature_windows') -%}
{%- set longest = windows | max -%}
{%- set lookback = var('feature_lookback_rows') -%}

with

{% if is_incremental() %}
{{ incremental_update_scope(this) }}

context_starts as (

    -- The built rows that feed the windows of the first rebuilt day, per symbol; NULL for a
    -- symbol with nothing built before that day (all of its history is then read).
    select
        symbols_to_update.symbol,
        context.start_date,
        context.start_history_days
    from symbols_to_update
    cross join first_new_day
    cross join lateral (
        select
            min(recent.trade_date) as start_date,
            min(recent.history_days) as start_history_days
        from (
            select
                built.trade_date,
                built.history_days
            from {{ this }} as built
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
        adjusted.ingested_at,
{%- if is_incremental() %}
        coalesce(context_starts.start_history_days - 1, 0) as history_offset
    from {{ ref('int_prices_adjusted') }} as adjusted
    inner join context_starts
        on adjusted.symbol = context_starts.symbol
    where adjusted.trade_date >= coalesce(context_starts.start_date, '-infinity'::date)
{%- else %}
        0 as history_offset
    from {{ ref('int_prices_adjusted') }} as adjusted
{%- endif %}

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
        prices.history_offset + row_number() over by_symbol as history_days,
        lag(prices.adj_close, 1) over by_symbol as adj_close_1d_ago,
        lag(prices.adj_volume, 1) over by_symbol as adj_volume_1d_ago
    from prices
    window by_symbol as (partition by prices.symbol order by prices.trade_date)

),

bars as materialized (

    -- One narrow row per bar with the day's move (NULL on a symbol's first row). Every
    -- window below reads these few columns only: window frames re-read their rows, so a
    -- narrow input keeps them fast.
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
        lagged_prices.history_days::double precision as time_index,
        lagged_prices.adj_close / lagged_prices.adj_close_1d_ago - 1 as ret_1d,
        abs(lagged_prices.adj_close - lagged_prices.adj_close_1d_ago) as abs_close_change,
        -- greatest() skips NULLs, so the first row would count as a 0 move without the case.
        case
            when lagged_prices.adj_close_1d_ago is not null
                then greatest(lagged_prices.adj_close - lagged_prices.adj_close_1d_ago, 0)
        end as gain_1d,
        case
            when lagged_prices.adj_close_1d_ago is not null
                then greatest(lagged_prices.adj_close_1d_ago - lagged_prices.adj_close, 0)
        end as loss_1d,
        (lagged_prices.adj_close > lagged_prices.adj_close_1d_ago)::integer::double precision
            as is_up_day,
        (lagged_prices.adj_close < lagged_prices.adj_close_1d_ago)::integer::double precision
            as is_down_day,
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
        ln(lagged_prices.adj_volume + 1) as log_volume,
        lagged_prices.close_price * lagged_prices.volume as dollar_volume{%- if is_incremental() %},
        -- Rows between this bar and its symbol's first rebuilt day (0 from that day on). Each
        -- window family below reads only the rows its frames reach from a rebuilt day: the
        -- same rows in the same order, so the same values, for a fraction of the work.
        greatest(
            min(lagged_prices.history_days) filter (
                where lagged_prices.trade_date >= (select first_new_day.first_date from first_new_day)
            ) over (partition by lagged_prices.symbol)
            - lagged_prices.history_days,
            0
        ) as rows_before_rebuild
{%- endif %}
    from lagged_prices

),
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
    from bars
{%- if is_incremental() %}
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
    from bars
{%- if is_incremental() %}
    where bars.rows_before_rebuild <= 19
{%- endif %}
    window
        by_symbol as (partition by bars.symbol order by bars.trade_date),
        last_14_rows as (by_symbol rows between 13 preceding and current row),
        last_20_rows as (by_symbol rows between 19 preceding and current row)

),

bar_lags as (

    -- The last {{ longest }} bars as columns (k = 1..{{ longest - 1 }} rows back): rank and
    -- days-since-extreme compare today with each; constant-offset lags cost O(1) a row.
    select
        bars.symbol,
        bars.trade_date,
        bars.history_days,
        bars.adj_close,
        bars.adj_high,
        bars.adj_low,
{%- if is_incremental() %}
        bars.rows_before_rebuild,
{%- endif %}
{%- for k in range(1, longest + 1) %}
        lag(bars.adj_close, {{ k }}) over by_symbol as close_lag_{{ k }},
{%- endfor %}
{%- for k in range(1, longest) %}
        lag(bars.adj_high, {{ k }}) over by_symbol as high_lag_{{ k }},
        lag(bars.adj_low, {{ k }}) over by_symbol as low_lag_{{ k }}{{ ',' if not loop.last }}
{%- endfor %}
    from bars
{%- if is_incremental() %}
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
        case when bar_lags.history_days >= {{ d }}
            then (
                {{ count_lags('close', 'bar_lags', d, '<') }}
                + ({{ count_lags('close', 'bar_lags', d, '=') }} + 1) / 2.0
            )::double precision / {{ d }}
        end as rank_{{ d }}d,
        case when bar_lags.history_days >= {{ d }}
            then {{ rows_since('high', 'bar_lags', d, 'greatest') }}::double precision
        end as imax_{{ d }}d,
        case when bar_lags.history_days >= {{ d }}
            then {{ rows_since('low', 'bar_lags', d, 'least') }}::double precision
        end as imin_{{ d }}d{{ ',' if not loop.last }}
{%- endfor %}
    from bar_lags
{%- if is_incremental() %}
    where bar_lags.rows_before_rebuild = 0
{%- endif %}

),

close_arrays as (

    select
        bars.symbol,
        bars.trade_date,
        bars.history_days,
        bars.adj_close,
{%- if is_incremental() %}
        bars.rows_before_rebuild,
{%- endif %}
        array_agg(bars.adj_close) over (
            partition by bars.symbol
            order by bars.trade_date
            rows between {{ longest - 1 }} preceding and current row
        ) as closes
    from bars

),

quantiles as materialized (

    select
        close_arrays.symbol,
        close_arrays.trade_date,
        close_arrays.history_days,
        close_arrays.adj_close,
        intermediate.mf_close_stats(close_arrays.closes) as close_stats
    from close_arrays
{%- if is_incremental() %}
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
{%- for d in windows %}
        case when quantiles.history_days >= {{ d }}
            then quantiles.close_stats[{{ 2 * loop.index0 + 1 }}] end as quantile_20_{{ d }}d,
        case when quantiles.history_days >= {{ d }}
            then quantiles.close_stats[{{ 2 * loop.index0 + 2 }}] end as quantile_80_{{ d }}d,
{%- endfor %}
        case when quantiles.history_days >= {{ longest }}
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

features as materialized (

    select
        bars.symbol,
        bars.trade_date,
        bars.adj_close,
        bars.history_days,
        bars.close_price,
        case when bars.history_days >= 20 then rolling_classic.dollar_volume_20d end
            as dollar_volume_20d,
        bars.ingested_at as source_ingested_at,

        -- The original six (contract kept).
        bars.ret_1d,
        bar_lags.adj_close / bar_lags.close_lag_5 - 1 as ret_5d,
        bar_lags.adj_close / bar_lags.close_lag_20 - 1 as ret_20d,
        case when bars.history_days >= 21 then rolling_classic.stddev_ret_1d_20d end as vol_20d,
        case
            when bars.history_days < 15 then null
            when rolling_classic.avg_gain_14d + rolling_classic.avg_loss_14d = 0
                then 50::double precision
            -- The share first, then the scale: (100 * g) / g can round to 100.00000000000001.
            else 100 * (
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

        -- K-bar shape (Alpha158 KMID .. KSFT2): today's bar only.
        (bars.adj_close - bars.adj_open) / bars.adj_open as kmid,
        (bars.adj_high - bars.adj_low) / bars.adj_open as klen,
        (bars.adj_close - bars.adj_open) / nullif(bars.adj_high - bars.adj_low, 0) as kmid2,
        (bars.adj_high - greatest(bars.adj_open, bars.adj_close)) / bars.adj_open as kup,
        (bars.adj_high - greatest(bars.adj_open, bars.adj_close))
        / nullif(bars.adj_high - bars.adj_low, 0) as kup2,
        (least(bars.adj_open, bars.adj_close) - bars.adj_low) / bars.adj_open as klow,
        (least(bars.adj_open, bars.adj_close) - bars.adj_low)
        / nullif(bars.adj_high - bars.adj_low, 0) as klow2,
        (2 * bars.adj_close - bars.adj_high - bars.adj_low) / bars.adj_open as ksft,
        (2 * bars.adj_close - bars.adj_high - bars.adj_low)
        / nullif(bars.adj_high - bars.adj_low, 0) as ksft2,

        -- Today's prices relative to the close (Alpha158 OPEN0, HIGH0, LOW0).
        bars.adj_open / bars.adj_close as open0,
        bars.adj_high / bars.adj_close as high0,
        bars.adj_low / bars.adj_close as low0,
{% for d in windows %}
        -- {{ d }}-row windows.
        positions.roc_{{ d }}d,
        case when bars.history_days >= {{ d }}
            then rolling_{{ d }}d.avg_close / bars.adj_close end as ma_{{ d }}d,
        case when bars.history_days >= {{ d }}
            then rolling_{{ d }}d.stddev_close / bars.adj_close end as std_{{ d }}d,
        case when bars.history_days >= {{ d }}
            then rolling_{{ d }}d.slope / bars.adj_close end as beta_{{ d }}d,
        case when bars.history_days >= {{ d }}
            and rolling_{{ d }}d.max_close > rolling_{{ d }}d.min_close
            then rolling_{{ d }}d.r2 end as rsqr_{{ d }}d,
        case when bars.history_days >= {{ d }}
            then (
                bars.adj_close
                - (rolling_{{ d }}d.intercept + rolling_{{ d }}d.slope * bars.time_index)
            ) / bars.adj_close end as resi_{{ d }}d,
        case when bars.history_days >= {{ d }}
            then rolling_{{ d }}d.max_high / bars.adj_close end as max_{{ d }}d,
        case when bars.history_days >= {{ d }}
            then rolling_{{ d }}d.min_low / bars.adj_close end as min_{{ d }}d,
        macd_signals.quantile_80_{{ d }}d / bars.adj_close as qtlu_{{ d }}d,
        macd_signals.quantile_20_{{ d }}d / bars.adj_close as qtld_{{ d }}d,
        positions.rank_{{ d }}d,
        case when bars.history_days >= {{ d }}
            then (bars.adj_close - rolling_{{ d }}d.min_low)
            / nullif(rolling_{{ d }}d.max_high - rolling_{{ d }}d.min_low, 0)
        end as rsv_{{ d }}d,
        positions.imax_{{ d }}d,
        positions.imin_{{ d }}d,
        case when bars.history_days >= {{ d }}
            and rolling_{{ d }}d.max_close > rolling_{{ d }}d.min_close
            and rolling_{{ d }}d.max_log_volume > rolling_{{ d }}d.min_log_volume
            then rolling_{{ d }}d.close_volume_corr end as corr_{{ d }}d,
        case when bars.history_days > {{ d }}
            then rolling_{{ d }}d.share_up end as cntp_{{ d }}d,
        case when bars.history_days > {{ d }}
            then rolling_{{ d }}d.share_down end as cntn_{{ d }}d,
        case when bars.history_days > {{ d }}
            then rolling_{{ d }}d.sum_gain / nullif(rolling_{{ d }}d.sum_abs_change, 0)
        end as sump_{{ d }}d,
        case when bars.history_days > {{ d }}
            then rolling_{{ d }}d.sum_volume_gain / nullif(rolling_{{ d }}d.sum_abs_volume_change, 0)
        end as vsump_{{ d }}d,
        case when bars.history_days >= {{ d }}
            then rolling_{{ d }}d.avg_volume / nullif(bars.adj_volume, 0)
        end as vma_{{ d }}d,
        case when bars.history_days >= {{ d }}
            then rolling_{{ d }}d.stddev_volume / nullif(bars.adj_volume, 0)
        end as vstd_{{ d }}d,
        case when bars.history_days > {{ d }}
            then rolling_{{ d }}d.stddev_abs_ret_volume
            / nullif(rolling_{{ d }}d.avg_abs_ret_volume, 0)
        end as wvma_{{ d }}d,
{% endfor %}
        -- Classic indicators.
        macd_signals.macd_12_26,
        macd_signals.macd_signal_9,
        macd_signals.macd_12_26 - macd_signals.macd_signal_9 as macd_hist,
        case when bars.history_days >= 20
            then (bars.adj_close - rolling_20d.avg_close + 2 * rolling_classic.pop_stddev_close_20d)
            / nullif(4 * rolling_classic.pop_stddev_close_20d, 0)
        end as bb_pctb_20,
        case when bars.history_days >= 15
            then rolling_classic.avg_true_range_14d / bars.adj_close end as atr_14
    from bars
{%- set joined = ['rolling_classic', 'bar_lags', 'positions', 'macd_signals'] %}
{%- for d in windows %}{% do joined.append('rolling_' ~ d ~ 'd') %}{% endfor %}
{%- for name in joined %}
    inner join {{ name }}
        on bars.symbol = {{ name }}.symbol
        and bars.trade_date = {{ name }}.trade_date
{%- endfor %}
{%- if is_incremental() %}
    cross join first_new_day
    where bars.trade_date >= first_new_day.first_date
{%- endif %}

),
{%- set ranked = ['ret_5d', 'ret_20d', 'vol_20d', 'rsi_14', 'volume_z_20d'] %}

cross_sectional_ranks as (

    -- Per-day percentile ranks across symbols: (rank - 1) / (n - 1) among the symbols with a
    -- value that day (ties share the lowest rank), NULL with fewer than two values.
    select
        features.symbol,
        features.trade_date,
{%- for column in ranked %}
        case
            when features.{{ column }} is not null
                and count(features.{{ column }}) over (partition by features.trade_date) > 1
                then percent_rank() over (
                    partition by features.trade_date, features.{{ column }} is null
                    order by features.{{ column }}
                )
        end as cs_rank_{{ column }}{{ ',' if not loop.last }}
{%- endfor %}
    from features

),

final as (

    select
        features.*,
{%- for column in ranked %}
        cross_sectional_ranks.cs_rank_{{ column }}{{ ',' if not loop.last }}
{%- endfor %}
    from features
    inner join cross_sectional_ranks
        on features.symbol = cross_sectional_ranks.symbol
        and features.trade_date = cross_sectional_ranks.trade_date

)

select * from final
