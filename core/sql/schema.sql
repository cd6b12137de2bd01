-- MarketFlow's own tables (everything dbt does not build). Idempotent: safe to run again.
create schema if not exists raw;
create schema if not exists signals;
create schema if not exists monitoring;
create schema if not exists api;

create table if not exists raw.ingest_batches (
    batch_id        uuid primary key,
    provider        text not null,
    symbols         text[] not null default '{}',
    start_date      date,
    end_date        date,
    rows_in         integer not null default 0,
    rows_loaded     integer not null default 0,
    rows_inserted   integer not null default 0,
    rows_updated    integer not null default 0,
    rows_unchanged  integer not null default 0,
    rows_rejected   integer not null default 0,
    status          text not null check (status in ('running', 'succeeded', 'failed')),
    error           text,
    units_failed    integer not null default 0,
    failures        jsonb not null default '[]',
    timings         jsonb not null default '{}',
    started_at      timestamptz not null default now(),
    finished_at     timestamptz
);

create table if not exists raw.prices (
    symbol      text not null,
    trade_date  date not null,
    open        double precision not null,
    high        double precision not null,
    low         double precision not null,
    close       double precision not null,
    adj_close   double precision not null,
    volume      bigint not null,
    provider    text not null,
    batch_id    uuid not null,
    ingested_at timestamptz not null default now(),
    primary key (symbol, trade_date)
);
-- Known extras, NULL when the provider does not deliver them.
alter table raw.prices add column if not exists dividend double precision;
alter table raw.prices add column if not exists split_factor double precision;
alter table raw.ingest_batches add column if not exists units_failed integer not null default 0;
alter table raw.ingest_batches add column if not exists failures jsonb not null default '[]';
alter table raw.ingest_batches add column if not exists timings jsonb not null default '{}';

-- When a batch's changes were announced downstream (the raw_prices Asset event). A backfill's
-- runs defer: the last one announces every batch still pending (dags/ingest_dag.py). Batches
-- from before this column existed count as announced.
do $$
begin
    if not exists (
        select 1 from information_schema.columns
        where table_schema = 'raw' and table_name = 'ingest_batches' and column_name = 'announced_at'
    ) then
        alter table raw.ingest_batches add column announced_at timestamptz;
        update raw.ingest_batches set announced_at = coalesce(finished_at, started_at);
    end if;
end
$$;

-- The configured universe (ingest/universe.py): the symbols the scheduled ingest loads, the
-- first day of each, and whether it still trades (inactive: not fetched, not expected fresh).
create table if not exists raw.universe (
    symbol      text primary key,
    start_date  date,
    active      boolean not null default true,
    source      text not null,
    loaded_at   timestamptz not null default now()
);

create table if not exists raw.rejected_prices (
    id          bigserial primary key,
    batch_id    uuid not null,
    provider    text not null,
    symbol      text,
    trade_date  text,
    row_data    jsonb not null,
    reason      text not null,
    rejected_at timestamptz not null default now()
);
create index if not exists rejected_prices_batch_idx on raw.rejected_prices (batch_id);

create table if not exists signals.daily_signals (
    trade_date     date not null,
    symbol         text not null,
    score          double precision not null,
    rank           integer not null,
    signal         text not null check (signal in ('long', 'short', 'neutral')),
    model_name     text not null,
    model_version  text not null,
    mlflow_run_id  text not null,
    created_at     timestamptz not null default now(),
    primary key (trade_date, symbol, model_name)
);

create table if not exists monitoring.drift_runs (
    run_id                uuid primary key,
    run_date              date not null,
    reference_start       date not null,
    reference_end         date not null,
    current_start         date not null,
    current_end           date not null,
    n_features            integer not null,
    n_drifted_features    integer not null,
    share_drifted         double precision not null,
    drift_detected        boolean not null,
    report_path           text not null,
    model_name            text,
    model_version         text,
    mlflow_run_id         text,
    created_at            timestamptz not null default now()
);

create table if not exists monitoring.validation_runs (
    id             bigserial primary key,
    suite          text not null,
    data_asset     text not null,
    success        boolean not null,
    evaluated      integer not null,
    failed         integer not null,
    failed_expectations jsonb not null default '[]',
    created_at     timestamptz not null default now()
);
-- What a run checked (expectations/scope.py): when it started (rows changed after that are
-- the next run's scope), the rows it validated ('whole table' after a full sweep) and how many.
alter table monitoring.validation_runs add column if not exists started_at timestamptz;
alter table monitoring.validation_runs add column if not exists scope text;
alter table monitoring.validation_runs add column if not exists rows_validated bigint;
create index if not exists validation_runs_suite_idx on monitoring.validation_runs (suite, id);
-- The Airflow task try-independent key of a run (dag/run/task): a task that runs again (a
-- retry, a re-queued task) replaces its row instead of adding a second one.
alter table monitoring.validation_runs add column if not exists run_key text;
create unique index if not exists validation_runs_run_key_idx
    on monitoring.validation_runs (suite, run_key) where run_key is not null;

-- API keys for the HTTP API: only the SHA-256 of each key is kept (keys are random tokens).
create table if not exists api.api_keys (
    key_id      bigserial primary key,
    name        text not null,
    key_hash    text not null unique,
    key_prefix  text not null,
    created_at  timestamptz not null default now(),
    revoked_at  timestamptz
);
create unique index if not exists api_keys_active_name_idx
    on api.api_keys (name) where revoked_at is null;

-- The one question the API asks of the keys: which active key has this hash? Answered with
-- the owner's rights, so the API's role needs no access to the table of hashes.
create or replace function api.active_key_id(candidate text) returns bigint
language sql stable security definer set search_path = pg_catalog, api as $$
    select key_id from api.api_keys where key_hash = candidate and revoked_at is null
$$;

-- One row per drift run and feature (the run itself is monitoring.drift_runs).
create table if not exists monitoring.drift_features (
    run_id      uuid not null references monitoring.drift_runs (run_id) on delete cascade,
    feature     text not null,
    drifted     boolean not null,
    score       double precision,
    method      text not null,
    threshold   double precision not null,
    primary key (run_id, feature)
);
alter table monitoring.drift_runs add column if not exists prediction_drift_score double precision;
alter table monitoring.drift_runs add column if not exists prediction_drifted boolean;

-- Live quality of the signals actually published, over a rolling window of labelled days.
create table if not exists monitoring.live_quality (
    run_date      date not null,
    model_name    text not null,
    model_version text not null,
    label         text not null,
    window_start  date,
    window_end    date,
    n_days        integer not null,
    ic            double precision,
    hit_rate      double precision,
    top_k         integer not null,
    top_k_return  double precision,
    created_at    timestamptz not null default now(),
    primary key (run_date, model_name, model_version)
);

-- Every retraining request monitoring emitted, with its reasons (the cool-down reads it).
create table if not exists monitoring.retrain_requests (
    id           bigserial primary key,
    run_date     date not null,
    model_name   text not null,
    model_version text,
    reasons      jsonb not null,
    requested_at timestamptz not null default now()
);
-- The API's per-symbol history (GET /api/v1/signals/{symbol}); the key leads with the date.
create index if not exists daily_signals_symbol_idx
    on signals.daily_signals (symbol, model_name, trade_date desc);

-- What the promotion gate made @champion, with the digest of the model's artifacts at that
-- moment. A champion is loaded only when its artifacts still hash to this digest: the
-- pipeline is the only source of a loadable model, whatever else can write to MLflow.
create table if not exists signals.model_promotions (
    model_name      text not null,
    version         text not null,
    artifact_digest text not null check (artifact_digest ~ '^[0-9a-f]{64}$'),
    run_id          text not null,
    promoted_at     timestamptz not null default now(),
    primary key (model_name, version)
);

-- What the DAGs' notifiers sent (dags/notify.py): run failures, retrain requests, drift.
create table if not exists monitoring.notifications (
    id          bigserial primary key,
    kind        text not null,
    dag_id      text,
    run_id      text,
    task_id     text,
    message     text not null,
    created_at  timestamptz not null default now()
);

-- Per-symbol freshness of raw.prices against the configured universe: an active symbol is
-- stale when its last bar is older than the market's (the latest bar of any symbol), or when
-- it has none. The ingest DAG reports stale symbols after every load.
create or replace view monitoring.symbol_freshness as
with market as (select max(trade_date) as market_date from raw.prices),
last_bars as (
    select u.symbol, u.start_date, (
        select max(p.trade_date) from raw.prices as p where p.symbol = u.symbol
    ) as last_trade_date
    from raw.universe as u
    where u.active
)
select
    l.symbol,
    l.start_date,
    l.last_trade_date,
    m.market_date,
    (l.last_trade_date is null or l.last_trade_date < m.market_date) as stale,
    m.market_date - l.last_trade_date as calendar_days_behind
from last_bars as l cross join market as m;
