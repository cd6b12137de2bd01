"""Every query the API and its page run, in one place. All are read-only and parameterised."""

from __future__ import annotations

# The newest trade_date (for one model, or for all of them), and on that date the model
# whose rows were written last: after a champion swap both models may have scored the day.
LATEST_RUN = """
select trade_date, model_name, created_at
from signals.daily_signals
where (%(model)s::text is null or model_name = %(model)s)
order by trade_date desc, created_at desc, model_name
limit 1
"""

SIGNALS = """
select trade_date, symbol, score, rank, signal, model_name, model_version
from signals.daily_signals
where trade_date = %(trade_date)s
  and model_name = %(model)s
  and (%(signal)s::text is null or signal = %(signal)s)
  and (%(symbols)s::text[] is null or symbol = any(%(symbols)s::text[]))
order by rank, symbol
limit %(limit)s
"""

SYMBOL_HISTORY = """
select trade_date, symbol, score, rank, signal, model_name, model_version,
       count(*) over () as total
from signals.daily_signals
where symbol = %(symbol)s
  and model_name = %(model)s
  and (%(start)s::date is null or trade_date >= %(start)s::date)
  and (%(end)s::date is null or trade_date <= %(end)s::date)
order by trade_date desc
limit %(limit)s offset %(offset)s
"""

SYMBOL_KNOWN = """
select 1 from signals.daily_signals where symbol = %(symbol)s and model_name = %(model)s limit 1
"""

DRIFT_RUN = """
select run_id::text as run_id, run_date, reference_start, reference_end, current_start,
       current_end, n_features, n_drifted_features, share_drifted, drift_detected,
       prediction_drift_score, prediction_drifted, report_path, model_name, model_version,
       mlflow_run_id, created_at
from monitoring.drift_runs
where (%(model)s::text is null or model_name = %(model)s)
order by run_date desc, created_at desc
limit 1
"""

DRIFT_FEATURES = """
select feature, drifted, score, method, threshold
from monitoring.drift_features
where run_id = %(run_id)s::uuid
order by drifted desc, feature
"""

LIVE_QUALITY = """
select run_date, model_name, model_version, label, window_start, window_end, n_days, ic,
       hit_rate, top_k, top_k_return
from monitoring.live_quality
where (%(model)s::text is null or model_name = %(model)s)
order by run_date desc, created_at desc
limit 1
"""

LAST_RETRAIN = """
select run_date, model_name, model_version, reasons, requested_at
from monitoring.retrain_requests
where (%(model)s::text is null or model_name = %(model)s)
order by requested_at desc
limit 1
"""

DRIFT_REPORT = "select report_path from monitoring.drift_runs where run_id = %(run_id)s::uuid"

ACTIVE_KEY = "select key_id from api.active_key_id(%s) as key_id where key_id is not null"

# --- the page at `/` ---------------------------------------------------------------------------

PAGE_SIGNALS = """
with latest as (
    select trade_date, model_name from signals.daily_signals
    order by trade_date desc, created_at desc, model_name limit 1
)
select s.trade_date, s.symbol, s.score, s.rank, s.signal, s.model_name, s.model_version
from signals.daily_signals s join latest using (trade_date, model_name)
order by s.rank, s.symbol
limit %(limit)s
"""

PAGE_DRIFT = """
select run_date, current_start, current_end, n_features, n_drifted_features, share_drifted,
       drift_detected, prediction_drifted, model_version, run_id::text as run_id
from monitoring.drift_runs order by run_date desc, created_at desc limit 1
"""

PAGE_QUALITY = """
select run_date, n_days, ic, hit_rate, top_k, top_k_return
from monitoring.live_quality order by run_date desc, created_at desc limit 1
"""
