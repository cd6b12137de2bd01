-- Keys present in one mart but not the other: both must cover every (symbol, trade_date).

select
    coalesce(features.symbol, labels.symbol) as symbol,
    coalesce(features.trade_date, labels.trade_date) as trade_date
from {{ ref('features_daily') }} as features
full outer join {{ ref('labels_daily') }} as labels
    on features.symbol = labels.symbol
    and features.trade_date = labels.trade_date
where features.symbol is null
    or labels.symbol is null
