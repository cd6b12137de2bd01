with

source as (

    select * from {{ source('reference', 'index_membership') }}

),

renamed as (

    select
        symbol::text as symbol,
        valid_from::date as valid_from,
        valid_to::date as valid_to

    from source

)

select * from renamed
