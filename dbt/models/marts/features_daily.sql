{{
    config(
        materialized='incremental_in_slices',
        slice_source='int_prices_rebuild_scoped',
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
    One row per bar: the join of the window families (models/intermediate/features/, each an
    ephemeral model compiled into this query as a CTE) and the per-day cross-sectional ranks.
    Every window is partitioned by symbol, ordered by trade_date and ends at the current row,
    so a feature at t only sees rows dated t or earlier (no look-ahead). Window lengths are
    rows (trading days of the symbol). Formulas, windows and units of every column:
    _marts__models.yml. A feature is NULL until its window is full.

    Each family reads the narrow bars of int_prices_sequenced and is joined back on the key:
    window frames re-read their input rows, so narrow inputs keep them fast. The planner
    cannot estimate those joins (it guesses one row) and would nest loops over them, hence
    enable_nestloop = off for this model's query (the keyed delete that follows turns it
    back on: macros/delete_insert_keyed.sql). JIT is off too: compiling this query's ~1,000
    expressions costs 10-15 s, far more than running them.

    Incremental runs rebuild every row from the first new or corrected day on (see
    macros/incremental_first_date.sql); int_prices_rebuild_scoped reads
    `feature_lookback_rows` earlier rows of each symbol for the windows and continues its
    history_days count from the built table, and each family puts out the rebuilt days
    only. The first day is computed once, by the pre-hook that records it in
    monitoring.dbt_rebuilds (macros/rebuild_log.sql); data tests then check the rows from
    that day on. Two indexes keep those reads short: trade_date (also what analysts filter
    on) and source_ingested_at.
-#}
{%- set windows = var('feature_windows') -%}
{%- set candle_shape = [
    'kmid', 'klen', 'kmid2', 'kup', 'kup2', 'klow', 'klow2', 'ksft', 'ksft2', 'open0', 'high0', 'low0',
] -%}
{%- set ranked = ['ret_5d', 'ret_20d', 'vol_20d', 'rsi_14', 'volume_z_20d'] -%}

with

features as materialized (

    select
        candles.symbol,
        candles.trade_date,
        candles.adj_close,
        candles.history_days,
        candles.close_price,
        rolling.dollar_volume_20d,
        candles.source_ingested_at,

        -- The original six (contract kept).
        candles.ret_1d,
        lags.ret_5d,
        lags.ret_20d,
        rolling.vol_20d,
        rolling.rsi_14,
        rolling.volume_z_20d,

        -- K-bar shape (Alpha158 KMID .. KSFT2, OPEN0, HIGH0, LOW0): today's bar only.
        {%- for column in candle_shape %}
        candles.{{ column }},
        {%- endfor %}
        {%- for d in windows %}

        -- {{ d }}-row windows.
        lags.roc_{{ d }}d,
        {%- set lag_families = [
            'ma', 'std', 'beta', 'rsqr', 'resi', 'max', 'min', 'qtlu', 'qtld', 'rank', 'rsv',
            'imax', 'imin'
        ] %}
        {%- for name in lag_families %}
        lags.{{ name }}_{{ d }}d,
        {%- endfor %}
        rolling.corr_{{ d }}d,
        rolling.cntp_{{ d }}d,
        rolling.cntn_{{ d }}d,
        lags.sump_{{ d }}d,
        {%- for name in ['vsump', 'vma', 'vstd', 'wvma'] %}
        rolling.{{ name }}_{{ d }}d,
        {%- endfor %}
        {%- endfor %}

        -- Classic indicators.
        lags.macd_12_26,
        lags.macd_signal_9,
        lags.macd_hist,
        lags.bb_pctb_20,
        rolling.atr_14
    from {{ ref('int_prices_candles_shaped') }} as candles
    inner join {{ ref('int_prices_rolling_aggregated') }} as rolling
        on candles.symbol = rolling.symbol
        and candles.trade_date = rolling.trade_date
    inner join {{ ref('int_prices_lags_compared') }} as lags
        on candles.symbol = lags.symbol
        and candles.trade_date = lags.trade_date

){{ end_of_per_symbol_rows() }},

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
        end as cs_rank_{{ column }}{% if not loop.last %},{% endif %}
        {%- endfor %}
    from features

),

final as (

    select
        features.*,
        {%- for column in ranked %}
        cross_sectional_ranks.cs_rank_{{ column }}{% if not loop.last %},{% endif %}
        {%- endfor %}
    from features
    inner join cross_sectional_ranks
        on features.symbol = cross_sectional_ranks.symbol
        and features.trade_date = cross_sectional_ranks.trade_date

)

select * from final
