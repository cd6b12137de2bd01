-- Forward returns: the only models in the project allowed to look ahead, and only into
-- their own label columns. lead() is NULL where the future row is not loaded yet.

with

prices as (

    select
        symbol,
        trade_date,
        adj_close
    from {{ ref('int_prices_adjusted') }}

),

future_prices as (

    select
        prices.symbol,
        prices.trade_date,
        prices.adj_close,
        lead(prices.adj_close, 1) over by_symbol as adj_close_1d_ahead,
        lead(prices.adj_close, 5) over by_symbol as adj_close_5d_ahead
    from prices
    window by_symbol as (partition by prices.symbol order by prices.trade_date)

),

labels as (

    select
        future_prices.symbol,
        future_prices.trade_date,
        future_prices.adj_close_1d_ahead / future_prices.adj_close - 1 as fwd_ret_1d,
        future_prices.adj_close_5d_ahead / future_prices.adj_close - 1 as fwd_ret_5d
    from future_prices

)

select * from labels
