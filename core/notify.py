"""The notification record: every message the DAGs' notifiers send is kept in
`monitoring.notifications` (what was said, about which run), whatever channel also carried it."""

from __future__ import annotations

import logging

from core.db import connect

log = logging.getLogger(__name__)


def record_notification(
    database_url: str,
    kind: str,
    message: str,
    *,
    dag_id: str | None = None,
    run_id: str | None = None,
    task_id: str | None = None,
) -> None:
    log.warning("notification [%s] %s", kind, message)
    with connect(database_url) as conn, conn.cursor() as cur:
        cur.execute(
            "insert into monitoring.notifications (kind, dag_id, run_id, task_id, message)"
            " values (%s, %s, %s, %s, %s)",
            (kind, dag_id, run_id, task_id, message),
        )
