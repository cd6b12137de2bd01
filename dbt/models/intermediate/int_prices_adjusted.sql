with

prices as (

    select
        symbol,
        trade_date,
        open_price,
        high_price,
        low_price,
        close_price,
        adj_close_price,
        volume,
        ingested_at
    from {{ ref('stg_market__prices') }}

),

adjustment_factors as (

    -- The provider's adj_close already folds in every split and dividend; its ratio to the
    -- traded close is the factor that puts the whole bar on the same adjusted scale.
    select
        prices.symbol,
        prices.trade_date,
        prices.open_price,
        prices.high_price,
        prices.low_price,
        prices.close_price,
        prices.adj_close_price,
        prices.volume,
        prices.ingested_at,
        prices.adj_close_price / nullif(prices.close_price, 0) as adjustment_factor
    from prices

),

adjusted as (

    select
        adjustment_factors.symbol,
        adjustment_factors.trade_date,
        adjustment_factors.adjustment_factor,
        adjustment_factors.open_price * adjustment_factors.adjustment_factor as adj_open,
        adjustment_factors.high_price * adjustment_factors.adjustment_factor as adj_high,
        adjustment_factors.low_price * adjustment_factors.adjustment_factor as adj_low,
        adjustment_factors.adj_close_price as adj_close,
        adjustment_factors.close_price,
        adjustment_factors.volume,
        adjustment_factors.volume / adjustment_factors.adjustment_factor as adj_volume,
        adjustment_factors.ingested_at
    from adjustment_factors

)

select * from adjusted
