-- Every window below is partitioned by symbol, ordered by trade_date and ends at the
-- current row, so a feature at t only sees rows dated t or earlier (no look-ahead).

with

prices as (

    select
        symbol,
        trade_date,
        adj_close,
        adj_volume
    from {{ ref('int_prices_adjusted') }}

),

lagged_prices as (

    select
        prices.symbol,
        prices.trade_date,
        prices.adj_close,
        prices.adj_volume,
        row_number() over by_symbol as history_days,
        lag(prices.adj_close, 1) over by_symbol as adj_close_1d_ago,
        lag(prices.adj_close, 5) over by_symbol as adj_close_5d_ago,
        lag(prices.adj_close, 20) over by_symbol as adj_close_20d_ago
    from prices
    window by_symbol as (partition by prices.symbol order by prices.trade_date)

),

daily_moves as (

    select
        lagged_prices.symbol,
        lagged_prices.trade_date,
        lagged_prices.adj_close,
        lagged_prices.adj_volume,
        lagged_prices.history_days,
        lagged_prices.adj_close / lagged_prices.adj_close_1d_ago - 1 as ret_1d,
        lagged_prices.adj_close / lagged_prices.adj_close_5d_ago - 1 as ret_5d,
        lagged_prices.adj_close / lagged_prices.adj_close_20d_ago - 1 as ret_20d,
        -- greatest() skips NULLs, so the first row would count as a 0 move without the case.
        case
            when lagged_prices.adj_close_1d_ago is not null
                then greatest(lagged_prices.adj_close - lagged_prices.adj_close_1d_ago, 0)
        end as gain_1d,
        case
            when lagged_prices.adj_close_1d_ago is not null
                then greatest(lagged_prices.adj_close_1d_ago - lagged_prices.adj_close, 0)
        end as loss_1d
    from lagged_prices

),

rolling_stats as (

    select
        daily_moves.symbol,
        daily_moves.trade_date,
        daily_moves.adj_close,
        daily_moves.adj_volume,
        daily_moves.history_days,
        daily_moves.ret_1d,
        daily_moves.ret_5d,
        daily_moves.ret_20d,
        count(daily_moves.ret_1d) over last_20_rows as n_returns_20d,
        stddev_samp(daily_moves.ret_1d) over last_20_rows as stddev_ret_1d_20d,
        count(daily_moves.gain_1d) over last_14_rows as n_moves_14d,
        avg(daily_moves.gain_1d) over last_14_rows as avg_gain_14d,
        avg(daily_moves.loss_1d) over last_14_rows as avg_loss_14d,
        count(daily_moves.adj_volume) over last_20_rows as n_volumes_20d,
        avg(daily_moves.adj_volume) over last_20_rows as avg_volume_20d,
        stddev_samp(daily_moves.adj_volume) over last_20_rows as stddev_volume_20d
    from daily_moves
    window
        by_symbol as (partition by daily_moves.symbol order by daily_moves.trade_date),
        last_14_rows as (by_symbol rows between 13 preceding and current row),
        last_20_rows as (by_symbol rows between 19 preceding and current row)

),

features as (

    -- A feature is NULL until its window is full (see _marts__models.yml for each minimum).
    select
        rolling_stats.symbol,
        rolling_stats.trade_date,
        rolling_stats.adj_close,
        rolling_stats.history_days,
        rolling_stats.ret_1d,
        rolling_stats.ret_5d,
        rolling_stats.ret_20d,
        case
            when rolling_stats.n_returns_20d = 20 then rolling_stats.stddev_ret_1d_20d
        end as vol_20d,
        case
            when rolling_stats.n_moves_14d < 14 then null
            when rolling_stats.avg_gain_14d + rolling_stats.avg_loss_14d = 0
                then 50::double precision
            else 100 * rolling_stats.avg_gain_14d
                / (rolling_stats.avg_gain_14d + rolling_stats.avg_loss_14d)
        end as rsi_14,
        -- A constant window has no spread; its float stddev may come out as rounding noise
        -- rather than 0, so "zero" means below 1e-12 of the mean.
        case
            when rolling_stats.n_volumes_20d = 20
                and rolling_stats.stddev_volume_20d
                > 1e-12 * abs(rolling_stats.avg_volume_20d)
                then (rolling_stats.adj_volume - rolling_stats.avg_volume_20d)
                / rolling_stats.stddev_volume_20d
        end as volume_z_20d
    from rolling_stats

)

select * from features
