with

source as (

    select * from {{ source('market', 'prices') }}

),

renamed as (

    select
        symbol::text as symbol,
        trade_date::date as trade_date,
        open::double precision as open_price,
        high::double precision as high_price,
        low::double precision as low_price,
        close::double precision as close_price,
        adj_close::double precision as adj_close_price,
        volume::bigint as volume,
        provider::text as provider,
        batch_id::uuid as batch_id,
        ingested_at::timestamptz as ingested_at

    from source

)

select * from renamed
