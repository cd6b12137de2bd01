-- Rows where a feature's NULL-ness contradicts its window: NULL exactly while
-- history_days is below the window's minimum (volume_z_20d may also be NULL later, when its
-- 20 volumes are all equal, so only its early NULLs are checked). Rows no passing test run
-- has seen only (macros/rebuild_log.sql).

select
    symbol,
    trade_date,
    history_days
from {{ unverified_rows(ref('features_daily')) }} as features
where (ret_1d is null) <> (history_days < 2)
    or (ret_5d is null) <> (history_days < 6)
    or (ret_20d is null) <> (history_days < 21)
    or (vol_20d is null) <> (history_days < 21)
    or (rsi_14 is null) <> (history_days < 15)
    or (history_days < 20 and volume_z_20d is not null)
