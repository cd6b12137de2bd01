{#-
    The features of the last N closes, highs and lows, spelled out over lag columns
    (macros/window_lags.sql): ret_5d, ret_20d; for every window of `feature_windows` the
    rate of change, mean, standard deviation, trend (slope, R^2, residual), range (highest
    high, lowest low, RSV), quantiles, percentile rank, days since the high and the low and
    the up-move share; MACD and Bollinger %B. One pass over the rows: the lags come from one
    window clause, every statistic is arithmetic on them, two-pass as the numpy reference
    (the mean first, then the deviations), so no float aggregate re-reads its frame.

    In an incremental build the lags read the `longest` rows before each row from 19 rows
    before a rebuilt day on (the MACD signal line reads 20 rows of MACD), and only the
    rebuilt days come out.
-#}
{%- set windows = var('feature_windows') -%}
{%- set longest = windows | max -%}
{%- set incremental = incremental_target('features_daily') is not none -%}

with

bar_lags as (

    -- The last {{ longest }} bars as columns (k = 1..{{ longest - 1 }} rows back; the close
    -- also {{ longest }} back, for roc_{{ longest }}d and the up-move share).
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
    where bars.rows_before_rebuild <= {{ longest + 19 }}
    {%- endif %}
    window by_symbol as (partition by bars.symbol order by bars.trade_date)

),

window_means as (

    select
        {%- for d in windows %}
        (
            {%- for k in range(d) %}
            {% if not loop.first %}+ {% endif %}{{ lag_of('close', 'bar_lags', k) }}
            {%- endfor %}
        ) / {{ d }} as mean_close_{{ d }}d,
        {%- endfor %}
        bar_lags.*
    from bar_lags
    {%- if incremental %}
    where bar_lags.rows_before_rebuild <= 19
    {%- endif %}
    -- offset 0: a fence. PostgreSQL would otherwise inline this projection into the next
    -- CTE and compute each of its sums once per reference (measured: 10x slower).
    offset 0  -- noqa: AM09

),

window_stats as (

    -- Per window: squared deviations from the mean, their products with the centred time
    -- index ((d - 1) / 2 - k for the close k rows back), extremes, up moves and all moves,
    -- quantiles; and the 12- and 26-span EMAs over the last {{ longest }} closes.
    select
        window_means.symbol,
        window_means.trade_date,
        window_means.history_days,
        window_means.adj_close,
        {%- if incremental %}
        window_means.rows_before_rebuild,
        {%- endif %}
        {%- for d in windows %}
        window_means.close_lag_{{ d }},
        window_means.mean_close_{{ d }}d,
        (
            {%- for k in range(d) %}
            {% if not loop.first %}+ {% endif %}(
                {{ lag_of('close', 'window_means', k) }} - window_means.mean_close_{{ d }}d
            ) * ({{ lag_of('close', 'window_means', k) }} - window_means.mean_close_{{ d }}d)
            {%- endfor %}
        ) as squares_close_{{ d }}d,
        (
            {%- for k in range(d) %}
            {% if not loop.first %}+ {% endif %}{{ (d - 1) / 2 - k }}
            * ({{ lag_of('close', 'window_means', k) }} - window_means.mean_close_{{ d }}d)
            {%- endfor %}
        ) as products_close_{{ d }}d,
        greatest({{ last_values('close', 'window_means', d) }}) as max_close_{{ d }}d,
        least({{ last_values('close', 'window_means', d) }}) as min_close_{{ d }}d,
        greatest({{ last_values('high', 'window_means', d) }}) as max_high_{{ d }}d,
        least({{ last_values('low', 'window_means', d) }}) as min_low_{{ d }}d,
        (
            {%- for k in range(d) %}
            {% if not loop.first %}+ {% endif %}greatest(
                {{ lag_of('close', 'window_means', k) }} - window_means.close_lag_{{ k + 1 }}, 0
            )
            {%- endfor %}
        ) as sum_gain_{{ d }}d,
        (
            {%- for k in range(d) %}
            {% if not loop.first %}+ {% endif %}abs(
                {{ lag_of('close', 'window_means', k) }} - window_means.close_lag_{{ k + 1 }}
            )
            {%- endfor %}
        ) as sum_abs_change_{{ d }}d,
        case
            when window_means.history_days >= {{ d }}
                then (
                    {{ count_lags('close', 'window_means', d, '<') }}
                    + ({{ count_lags('close', 'window_means', d, '=') }} + 1) / 2.0
                )::double precision / {{ d }}
        end as rank_{{ d }}d,
        case
            when window_means.history_days >= {{ d }}
                then {{ rows_since('high', 'window_means', d, 'greatest') }}::double precision
        end as imax_{{ d }}d,
        case
            when window_means.history_days >= {{ d }}
                then {{ rows_since('low', 'window_means', d, 'least') }}::double precision
        end as imin_{{ d }}d,
        {%- endfor %}
        {%- for span in [12, 26] %}
        {%- set decay = 1 - 2 / (span + 1) %}
        (
            {%- for k in range(longest) %}
            {% if not loop.first %}+ {% endif %}{{ lag_of('close', 'window_means', k) }}
            * {{ decay ** k }}
            {%- endfor %}
        ) / {{ (1 - decay ** longest) / (1 - decay) }} as ema_{{ span }},
        {%- endfor %}
        -- Quantiles with linear interpolation (percentile_cont, numpy's default) of the last
        -- d closes: one sort a row for each window, in a subquery over the lags. (sqlfluff
        -- cannot place the rendered loop of array elements: its indents are checked by eye.)
        -- noqa: disable=LT02
        (
            select
                array[
                    {%- for d in windows %}
                    percentile_cont(array[0.2, 0.8]::float8[])
                    within group (order by last_closes.adj_close)
                    filter (where last_closes.position <= {{ d }}){% if not loop.last %},{% endif %}
                    {%- endfor %}
                ]
            from unnest(
                array[{{ last_values('close', 'window_means', longest) }}]
            ) with ordinality as last_closes (adj_close, position)
        ) as quantiles
    -- noqa: enable=LT02
    from window_means
    offset 0  -- noqa: AM09

),

positions as (

    select
        window_stats.symbol,
        window_stats.trade_date,
        {%- if incremental %}
        window_stats.rows_before_rebuild,
        {%- endif %}
        {%- for d in windows %}
        {%- set squares = 'window_stats.squares_close_' ~ d ~ 'd' %}
        {%- set slope = '(window_stats.products_close_' ~ d ~ 'd / ' ~ d * (d * d - 1) / 12 ~ ')' %}
        window_stats.close_lag_{{ d }} / window_stats.adj_close as roc_{{ d }}d,
        case
            when window_stats.history_days >= {{ d }}
                then window_stats.mean_close_{{ d }}d / window_stats.adj_close
        end as ma_{{ d }}d,
        case
            when window_stats.history_days >= {{ d }}
                then sqrt({{ squares }} / {{ d - 1 }}) / window_stats.adj_close
        end as std_{{ d }}d,
        case
            when window_stats.history_days >= {{ d }}
                then {{ slope }} / window_stats.adj_close
        end as beta_{{ d }}d,
        case
            when window_stats.history_days >= {{ d }}
                and window_stats.max_close_{{ d }}d > window_stats.min_close_{{ d }}d
                then window_stats.products_close_{{ d }}d * window_stats.products_close_{{ d }}d
                / ({{ d * (d * d - 1) / 12 }} * {{ squares }})
        end as rsqr_{{ d }}d,
        case
            when window_stats.history_days >= {{ d }}
                then (
                    window_stats.adj_close
                    - (window_stats.mean_close_{{ d }}d + {{ slope }} * {{ (d - 1) / 2 }})
                ) / window_stats.adj_close
        end as resi_{{ d }}d,
        case
            when window_stats.history_days >= {{ d }}
                then window_stats.max_high_{{ d }}d / window_stats.adj_close
        end as max_{{ d }}d,
        case
            when window_stats.history_days >= {{ d }}
                then window_stats.min_low_{{ d }}d / window_stats.adj_close
        end as min_{{ d }}d,
        case
            when window_stats.history_days >= {{ d }}
                then window_stats.quantiles[{{ loop.index }}][2] / window_stats.adj_close
        end as qtlu_{{ d }}d,
        case
            when window_stats.history_days >= {{ d }}
                then window_stats.quantiles[{{ loop.index }}][1] / window_stats.adj_close
        end as qtld_{{ d }}d,
        window_stats.rank_{{ d }}d,
        case
            when window_stats.history_days >= {{ d }}
                then (window_stats.adj_close - window_stats.min_low_{{ d }}d)
                / nullif(window_stats.max_high_{{ d }}d - window_stats.min_low_{{ d }}d, 0)
        end as rsv_{{ d }}d,
        window_stats.imax_{{ d }}d,
        window_stats.imin_{{ d }}d,
        case
            when window_stats.history_days > {{ d }}
                then window_stats.sum_gain_{{ d }}d
                / nullif(window_stats.sum_abs_change_{{ d }}d, 0)
        end as sump_{{ d }}d,
        {%- endfor %}
        window_stats.adj_close / window_stats.close_lag_5 - 1 as ret_5d,
        window_stats.adj_close / window_stats.close_lag_20 - 1 as ret_20d,
        case
            when window_stats.history_days >= {{ longest }}
                then (window_stats.ema_12 - window_stats.ema_26) / window_stats.adj_close
        end as macd_12_26,
        -- Bollinger %B over the population sd of the last 20 closes.
        (
            window_stats.adj_close - window_stats.mean_close_20d
            + 2 * sqrt(window_stats.squares_close_20d / 20)
        ) / nullif(4 * sqrt(window_stats.squares_close_20d / 20), 0) as bb_pctb_20,
        window_stats.history_days
    from window_stats

),

macd_signals as (

    -- The signal line: the 0.2-decay weighted mean of the last 20 macd_12_26 values.
    select
        positions.*,
        case
            when positions.history_days >= {{ longest + 19 }}
                then (
                    positions.macd_12_26
                    {%- for k in range(1, 20) %}
                    + {{ 0.8 ** k }} * lag(positions.macd_12_26, {{ k }}) over by_symbol
                    {%- endfor %}
                ) / {{ (1 - 0.8 ** 20) / (1 - 0.8) }}
        end as macd_signal_9
    from positions
    window by_symbol as (partition by positions.symbol order by positions.trade_date)

),

lag_features as (

    select
        macd_signals.symbol,
        macd_signals.trade_date,
        {%- for d in windows %}
        {%- set families = [
            'roc', 'ma', 'std', 'beta', 'rsqr', 'resi', 'max', 'min', 'qtlu', 'qtld', 'rank',
            'rsv', 'imax', 'imin', 'sump'
        ] %}
        {%- for name in families %}
        macd_signals.{{ name }}_{{ d }}d,
        {%- endfor %}
        {%- endfor %}
        macd_signals.ret_5d,
        macd_signals.ret_20d,
        macd_signals.macd_12_26,
        macd_signals.macd_signal_9,
        macd_signals.macd_12_26 - macd_signals.macd_signal_9 as macd_hist,
        case
            when macd_signals.history_days >= 20 then macd_signals.bb_pctb_20
        end as bb_pctb_20
    from macd_signals
    {%- if incremental %}
    where macd_signals.rows_before_rebuild = 0
    {%- endif %}

)

select * from lag_features
