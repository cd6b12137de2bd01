"""Which rows a checkpoint validates: the rows changed since its suite last passed.

A daily run changes a few hundred rows of tables with millions; validating every row of
every table after each run cost a third of the features stage on a real universe. A
checkpoint therefore validates, by default, only the rows no passing run of its suite has
seen, plus cheap whole-table invariants (the table is not empty, its key is enforced by a
unique index: see expectations/suites.py). `marketflow validate SUITE --full`,
`marketflow features --full` and the weekly quality sweep (dags/quality_dag.py) validate
whole tables, which also catches a row corrupted behind the pipeline's back.

What changed is read from what the pipeline already records:

- raw.prices: the loader stamps every inserted or corrected row with `ingested_at`, so the
  scope is the rows ingested since the suite's last passing run started;
- the marts: each incremental build of features_daily and labels_daily records the first
  trade_date it rewrote in `monitoring.dbt_rebuilds` (dbt/macros/rebuild_log.sql; NULL:
  the whole table). The scope is every row on or after the earliest date rebuilt since the
  suite's last passing run started. universe_daily is a view over features_daily and
  follows its rebuilds. labels_daily also rewrites the last `LABEL_REACH` rows of each
  symbol before that date (their forward returns were waiting for the new days), so its
  scope reaches that far back.

A failed run moves nothing: its rows stay in the next run's scope until a run passes. With
no passing run yet, or no rebuild log, the scope is the whole table.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

# How many rows before the first rebuilt day labels_daily rewrites per symbol: its longest
# horizon (dbt/models/marts/labels_daily.sql, `longest_horizon`; seeds/label_catalog.csv).
LABEL_REACH = 20

# The dbt model whose rebuilds change each mart suite's rows.
_REBUILT_MODEL = {
    "features_daily": "features_daily",
    "universe_daily": "features_daily",
    "labels_daily": "labels_daily",
}


@dataclass(frozen=True)
class Scope:
    """The rows of a suite's table that a checkpoint validates."""

    # SQL predicate over the table's columns; None: the whole table.
    predicate: str | None
    # For the logs, `monitoring.validation_runs.scope` and the CLI.
    description: str
    # The marts: the first trade_date in scope (cross-table checks compare from there).
    since: date | None = None

    @property
    def full(self) -> bool:
        return self.predicate is None


WHOLE_TABLE = Scope(predicate=None, description="whole table")
NOTHING_CHANGED = Scope(predicate="false", description="no row changed", since=date.max)


def changed_rows(cur: Any, suite: str) -> Scope:
    """The scope of `suite`'s next checkpoint (see the module docstring), read with `cur`."""
    cur.execute(
        "select started_at from monitoring.validation_runs"
        " where suite = %s and success and started_at is not null"
        " order by id desc limit 1",
        (suite,),
    )
    row = cur.fetchone()
    if row is None:
        return WHOLE_TABLE
    (last_pass,) = row
    if suite == "raw_prices":
        return _ingested_since(last_pass)
    model = _REBUILT_MODEL.get(suite)
    if model is None:
        return WHOLE_TABLE
    first = _first_rebuilt_day(cur, model, last_pass)
    if isinstance(first, Scope):
        return first
    if suite == "labels_daily":
        first = _labels_reach_back(cur, first)
    return Scope(
        predicate=f"trade_date >= '{first.isoformat()}'::date",
        description=f"rows from {first.isoformat()} (rebuilt since the last pass)",
        since=first,
    )


def _ingested_since(last_pass: datetime) -> Scope:
    stamp = last_pass.isoformat()
    return Scope(
        predicate=f"ingested_at >= '{stamp}'::timestamptz",
        description=f"rows ingested since {stamp} (the last pass)",
    )


def _first_rebuilt_day(cur: Any, model: str, last_pass: datetime) -> date | Scope:
    """The earliest trade_date `model` rebuilt since `last_pass`; WHOLE_TABLE after a full
    rebuild (or with no rebuild log); NOTHING_CHANGED when no build rewrote a row."""
    cur.execute("select to_regclass('monitoring.dbt_rebuilds') is not null")
    (logged,) = cur.fetchone()
    if not logged:
        return WHOLE_TABLE
    cur.execute(
        "select count(*), count(*) filter (where rebuilt_from is null),"
        " min(rebuilt_from) filter (where rebuilt_from <> 'infinity')"
        " from monitoring.dbt_rebuilds where model_name = %s and started_at >= %s",
        (model, last_pass),
    )
    n_builds, n_full, first = cur.fetchone()
    if n_full:
        return WHOLE_TABLE
    if not n_builds or first is None:
        return NOTHING_CHANGED
    return first  # type: ignore[no-any-return]


def _labels_reach_back(cur: Any, first: date) -> date:
    """The earliest of, for each symbol with a label row from `first` on, its
    `LABEL_REACH`-th row before `first` (probes of the primary key, one per symbol)."""
    cur.execute(
        """
        select coalesce(min(back.start_date), %(first)s)
        from (select distinct symbol from marts.labels_daily where trade_date >= %(first)s)
            as rebuilt
        cross join lateral (
            select min(recent.trade_date) as start_date
            from (
                select built.trade_date
                from marts.labels_daily as built
                where built.symbol = rebuilt.symbol and built.trade_date < %(first)s
                order by built.trade_date desc
                limit %(reach)s
            ) as recent
        ) as back
        """,
        {"first": first, "reach": LABEL_REACH},
    )
    (start,) = cur.fetchone()
    return start  # type: ignore[no-any-return]
