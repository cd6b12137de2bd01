"""Notifiers for the DAGs, through Airflow's notifier interface (BaseNotifier).

`failure_notifiers()` goes on every DAG's `on_failure_callback`: a failed run is always logged
and kept in `monitoring.notifications` (the default channel), and also mailed through the SMTP
provider's SmtpNotifier when MARKETFLOW_ALERTS_SMTP_CONN_ID names an Airflow Connection (host,
port, login, password, `from_email` in extra) and MARKETFLOW_ALERTS_TO the recipients.
`send()` carries other news (the retrain decision) through the same channels.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseNotifier

from core.settings import get_settings


class RecordNotifier(BaseNotifier):
    """Logs the message and records it in monitoring.notifications. Without a message (the
    failure callback) it says which run failed and why, from the callback's context."""

    template_fields = ()

    def __init__(self, kind: str, message: str | None = None) -> None:
        super().__init__()
        self.kind = kind
        self.message = message

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        # Nothing to render; and under `dag.test()` Airflow 3.3 hands DAG callbacks a
        # SerializedDAG, whose missing get_template_env breaks the base class's rendering.
        return

    def notify(self, context: Any) -> None:
        from core.notify import record_notification

        run = context.get("dag_run")
        ti = context.get("ti") or context.get("task_instance")
        dag_id, run_id = getattr(run, "dag_id", None), getattr(run, "run_id", None)
        message = self.message or f"{dag_id} run {run_id} failed: {context.get('reason')}"
        record_notification(get_settings().db.url, self.kind, message, dag_id=dag_id,
                            run_id=run_id, task_id=getattr(ti, "task_id", None))  # fmt: skip


FAILURE = "{{ dag.dag_id }} run {{ run_id }} failed: {{ reason }}"


def _channels(kind: str, message: str | None) -> list[BaseNotifier]:
    channels: list[BaseNotifier] = [RecordNotifier(kind, message)]
    alerts = get_settings().alerts
    if alerts.smtp_conn_id and alerts.to:
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        channels.append(
            SmtpNotifier(
                to=alerts.to,
                smtp_conn_id=alerts.smtp_conn_id,
                subject=f"[MarketFlow] {kind}: " + "{{ dag.dag_id }}",
                html_content=message or FAILURE,
            )
        )
    return channels


def failure_notifiers() -> list[BaseNotifier]:
    """The DAG-level `on_failure_callback` of every MarketFlow DAG."""
    return _channels("dag_failed", None)


def send(kind: str, message: str, context: Any) -> None:
    """Send `message` now, from inside a task, through the same channels."""
    for channel in _channels(kind, message):
        channel(context)
