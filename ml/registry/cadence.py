"""When new features should start a training (issue 13's cadence).

Training runs weekly and on a RETRAIN_REQUEST, never once per trading day. After a features
run, `request_training` asks for one in two cases only, each recorded in
`monitoring.retrain_requests` (so the next features runs, and a backfill makes many, wait for
it instead of asking again):

- no champion yet: its features could not be scored until the weekly run, so a first
  training is requested at once, once;
- a data correction far in the past: a features rebuild since the champion was registered
  rewrote days it learned from (`monitoring.dbt_rebuilds.rebuilt_from` on or before its
  `test_end`), further back than MARKETFLOW_RETRAIN_CORRECTION_DAYS before the latest bar
  (the daily look-back's rewrites stay inside that).

The rule lives here, not in the DAG file, so it is tested without Airflow.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg2.extras

from core.db import connect
from core.settings import Settings, get_settings
from ml.registry.card import ChampionCard, champion_card
from ml.registry.tracking import configure

# How long a first-training request is waited for before features ask again (a training
# that failed, or never ran).
FIRST_TRAINING_WAIT_HOURS = 6
NO_CHAMPION = "no champion yet"


def request_training(database_url: str, settings: Settings | None = None) -> tuple[bool, str]:
    """(whether to request a training now, why). Records the request when it says yes.

    A registry that cannot answer raises (it does not count as "no champion": that would train
    on every trading day the registry is down)."""
    settings = settings or get_settings()
    name = settings.mlflow.model_name
    card = champion_card(configure(settings), name)
    if card is None:
        return _request_first_training(database_url, name)
    return _request_after_correction(database_url, card, settings.monitoring.correction_days)


def _request_first_training(database_url: str, name: str) -> tuple[bool, str]:
    with connect(database_url) as conn, conn.cursor() as cur:
        cur.execute("select pg_advisory_xact_lock(hashtext('marketflow.first_training'))")
        cur.execute(
            "select max(requested_at) from monitoring.retrain_requests where model_name = %s"
            " and model_version is null and requested_at > now() - make_interval(hours => %s)",
            (name, FIRST_TRAINING_WAIT_HOURS),
        )
        row = cur.fetchone()
        pending = row[0] if row else None
        if pending is not None:
            return False, f"a first training of {name!r} was requested at {pending}: waiting for it"
        _record(cur, name, None, NO_CHAMPION)
    return True, f"model {name!r} has no @champion yet: training requested"


def _request_after_correction(
    database_url: str, card: ChampionCard, correction_days: int
) -> tuple[bool, str]:
    seen = card.test_end or card.train_end
    usual = "a champion exists: training waits for its weekly run or a retrain request"
    if seen is None or card.registered_at_ms is None:
        return False, usual
    registered = datetime.fromtimestamp(card.registered_at_ms / 1000, UTC)
    with connect(database_url) as conn, conn.cursor() as cur:
        cur.execute("select pg_advisory_xact_lock(hashtext('marketflow.first_training'))")
        cur.execute("select to_regclass('monitoring.dbt_rebuilds') is not null")
        row = cur.fetchone()
        if not (row and row[0]):
            return False, usual
        # The earliest day rewritten since registration, within what the champion saw
        # (rebuilt_from NULL: the whole table was rebuilt).
        cur.execute(
            "select bool_or(rebuilt_from is null), min(rebuilt_from), min(started_at)"
            " from monitoring.dbt_rebuilds where model_name = 'features_daily'"
            " and started_at > %s and (rebuilt_from is null or rebuilt_from <= %s)",
            (registered, seen),
        )
        whole, first, since = cur.fetchone() or (None, None, None)
        if since is None:
            return False, usual
        cur.execute("select max(trade_date) from raw.prices")
        latest = (cur.fetchone() or (None,))[0]
        if not whole and latest is not None and first > latest - timedelta(days=correction_days):
            return False, (
                f"{usual} (features rewritten from {first}, within {correction_days} days of "
                f"the latest bar {latest}: the usual look-back)"
            )
        cur.execute(
            "select max(requested_at) from monitoring.retrain_requests where model_name = %s"
            " and requested_at >= %s",
            (card.name, since),
        )
        pending = (cur.fetchone() or (None,))[0]
        if pending is not None:
            return False, f"a retrain was requested at {pending}, after the correction: waiting"
        where = "the whole history" if whole else f"{first}"
        reason = (
            f"data corrected back to {where}: v{card.version} was trained on data up to {seen} "
            "that has since changed"
        )
        _record(cur, card.name, card.version, reason)
    return True, f"retrain requested: {reason}"


def _record(cur: Any, name: str, version: str | None, reason: str) -> None:
    cur.execute(
        "insert into monitoring.retrain_requests (run_date, model_name, model_version,"
        " reasons) values (%s, %s, %s, %s)",
        (date.today(), name, version, psycopg2.extras.Json([reason])),
    )
