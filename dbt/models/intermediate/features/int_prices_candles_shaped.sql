{#-
    Today's bar of every day features_daily writes: the key, the metadata columns, ret_1d
    and the k-bar shape (Alpha158 KMID .. KSFT2, OPEN0, HIGH0, LOW0). No window; the other
    families join on to these rows.
-#}
{%- set incremental = incremental_target('features_daily') is not none -%}

select
    bars.symbol,
    bars.trade_date,
    bars.adj_close,
    bars.history_days,
    bars.close_price,
    bars.ingested_at as source_ingested_at,
    bars.ret_1d,

    -- K-bar shape: today's bar only.
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

    -- Today's prices relative to the close.
    bars.adj_open / bars.adj_close as open0,
    bars.adj_high / bars.adj_close as high0,
    bars.adj_low / bars.adj_close as low0
from {{ ref('int_prices_sequenced') }} as bars
{%- if incremental %}
where bars.rows_before_rebuild = 0
{%- endif %}
