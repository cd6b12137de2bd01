"""Signed, expiring links to a drift run's HTML report, so a person can open it in a browser
(a browser sends no `Authorization` header) without being handed an API key.

`/api/v1/drift/latest` (asked with a key) and the page at `/` give `report_link`: the report's
URL with `?token=`, an itsdangerous signature (Flask's own signing library) of the run id and
the time it was made, keyed by `MARKETFLOW_API_LINK_SECRET`. The report route serves a request
whose token names that run and is younger than `MARKETFLOW_API_LINK_SECONDS` (default one hour)
without a key; a forged, altered or expired token is a 401 JSON, and a token opens no other
run's report and no other route. Every worker and every restart must share the secret (the
local stack generates one into the data dir; compose reads it from `.env`): with none set, no
links are made and the report needs a key as before.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from werkzeug.exceptions import Unauthorized

_SALT = "marketflow.drift-report-link"
REPORT_ENDPOINT = "drift.drift_report"


def _serializer() -> URLSafeTimedSerializer | None:
    secret = current_app.config.get("LINK_SECRET")
    return URLSafeTimedSerializer(secret, salt=_SALT) if secret else None


def report_link(run_id: str, url_prefix: str) -> tuple[str, str] | tuple[None, None]:
    """(URL with a signed token, its expiry as ISO-8601 UTC) for run `run_id`'s report, or
    (None, None) when this deployment has no link secret."""
    serializer = _serializer()
    if serializer is None:
        return None, None
    token = serializer.dumps(run_id)
    seconds = int(current_app.config["LINK_SECONDS"])
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=seconds)
    return f"{url_prefix}/{run_id}/report?token={token}", expires.isoformat()


def check_report_token(run_id: str, token: str) -> None:
    """Return if `token` opens run `run_id`'s report now; raise 401 otherwise."""
    serializer = _serializer()
    if serializer is None:
        raise Unauthorized(description="report links are off on this deployment: "
                                       "send an API key")  # fmt: skip
    try:
        signed_for = serializer.loads(token, max_age=int(current_app.config["LINK_SECONDS"]))
    except SignatureExpired as exc:
        raise Unauthorized(description="this report link has expired: ask "
                                       "/api/v1/drift/latest for a new one") from exc  # fmt: skip
    except BadSignature as exc:
        raise Unauthorized(description="invalid report link") from exc
    if signed_for != run_id:
        raise Unauthorized(description="this link is for another drift run's report")
