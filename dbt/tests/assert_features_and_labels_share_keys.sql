-- Keys present in one mart but not the other: both must cover every (symbol, trade_date).
-- Both sides from the first day features_daily rebuilt without a passing test since
-- (macros/rebuild_log.sql): before it, neither mart's keys changed. This also tests the keys
-- of the window families features_daily joins (models/intermediate/features/): a family
-- that lost a row would drop it from features_daily.

select
    coalesce(features.symbol, labels.symbol) as symbol,
    coalesce(features.trade_date, labels.trade_date) as trade_date
from {{ unverified_rows(ref('features_daily')) }} as features
full outer join {{ unverified_rows(ref('labels_daily')) }} as labels
    on features.symbol = labels.symbol
    and features.trade_date = labels.trade_date
where features.symbol is null
    or labels.symbol is null
