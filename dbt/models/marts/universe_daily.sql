{{ config(materialized='view') }}
{#-
    Which symbols are tradeable on each day: one row per row of features_daily. Rules, in the
    order `reason` reports them (the first that fails): enough history for every feature
    window, a minimum unadjusted close, a minimum 20-day average dollar volume, and, when
    the index membership (reference.index_membership) holds any row, point-in-time
    membership on that day.
    A view over features_daily, so it is always consistent with it and costs nothing to build.
-#}

with

features as (

    select
        symbol,
        trade_date,
        history_days,
        close_price,
        dollar_volume_20d
    from {{ ref('features_daily') }}

),

membership as (

    select
        symbol,
        valid_from,
        valid_to
    from {{ ref('stg_reference__index_memberships') }}

),

membership_in_use as (

    select exists(select 1 from membership) as is_used

),

checks as (

    select
        features.symbol,
        features.trade_date,
        features.history_days >= {{ var('universe_min_history_days') }} as has_history,
        features.close_price >= {{ var('universe_min_price') }} as is_priced_enough,
        coalesce(
            features.dollar_volume_20d >= {{ var('universe_min_dollar_volume_20d') }}, false
        ) as is_liquid,
        not membership_in_use.is_used or exists (
            select 1
            from membership
            where membership.symbol = features.symbol
                and membership.valid_from <= features.trade_date
                and (membership.valid_to is null or features.trade_date <= membership.valid_to)
        ) as is_member
    from features
    cross join membership_in_use

),

universe as (

    select
        checks.symbol,
        checks.trade_date,
        checks.has_history and checks.is_priced_enough and checks.is_liquid and checks.is_member
            as in_universe,
        case
            when not checks.has_history then 'insufficient_history'
            when not checks.is_priced_enough then 'price_below_minimum'
            when not checks.is_liquid then 'dollar_volume_below_minimum'
            when not checks.is_member then 'not_index_member'
            else 'eligible'
        end as reason
    from checks

)

select * from universe
