"""When new features should start a training (issue 13's cadence).

Training runs weekly and on a RETRAIN_REQUEST, never once per trading day. The one exception
is a stack without a champion: its features could not be scored until the weekly run, so the
features DAG requests a first training at once, once: the request is recorded in
`monitoring.retrain_requests`, and later features runs (a backfill makes many) wait for it
instead of queueing a training each. The rule lives here, not in the DAG file, so it is
tested without Airflow.
"""

from __future__ import annotations

from datetime import date

import psycopg2.extras

from core.db import connect
from core.settings import Settings, get_settings
from ml.registry.card import champion_version
from ml.registry.tracking import configure

# How long a first-training request is waited for before features ask again (a training
# that failed, or never ran).
FIRST_TRAINING_WAIT_HOURS = 6
NO_CHAMPION = "no champion yet"


def request_first_training(database_url: str, settings: Settings | None = None) -> tuple[bool, str]:
    """(whether to request a training now, why). Records the request when it says yes.

    A registry that cannot answer raises (it does not count as "no champion": that would train
    on every trading day the registry is down)."""
    settings = settings or get_settings()
    name = settings.mlflow.model_name
    if champion_version(configure(settings), name) is not None:
        return False, "a champion exists: training waits for its weekly run or a retrain request"
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
        cur.execute(
            "insert into monitoring.retrain_requests (run_date, model_name, model_version,"
            " reasons) values (%s, %s, null, %s)",
            (date.today(), name, psycopg2.extras.Json([NO_CHAMPION])),
        )
    return True, f"model {name!r} has no @champion yet: training requested"
