"""The champion seen from the API: its model card and, for on-demand scoring, the model itself.

The card's fields come from `ml.registry.card`, the one reader of a version's metadata; the
API adds what only it knows (links to the MLflow UI, the equity curve and the tear sheet).
Nothing here imports MLflow until a route needs it. The registry alias is re-read at most
every `CHAMPION_CHECK_SECONDS`, by one request while the others go on with what they have, so
scoring stays fast and a moved alias is noticed within a few seconds. A request holds on to
the `Champion` it started with: a reload swaps the reference, it never mutates a model in use.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from flask import Response, abort, current_app, send_file

log = logging.getLogger(__name__)

_KEY = "marketflow_api.champion"
EQUITY_CURVE = "plots/equity_curve.png"


class ChampionRegistry:
    def __init__(
        self, tracking_uri: str, model_name: str, check_seconds: float, cache_dir: Path, ui: str
    ) -> None:
        self.tracking_uri = tracking_uri
        self.model_name = model_name
        self.check_seconds = check_seconds
        self.cache_dir = cache_dir
        self.ui = ui.rstrip("/")
        self._client: Any = None
        self._version: Any = None
        self._checked_at = float("-inf")
        self._check_lock = threading.Lock()
        self._load_lock = threading.Lock()
        self._champion: Any = None  # ml.inference.Champion
        self._refused: str | None = None  # a version whose artifacts failed the digest check
        self.refusal: str | None = None
        self.registry_unreachable = False  # the last alias check failed (serving the last good)
        self._cards: dict[str, dict[str, Any]] = {}

    def client(self) -> Any:
        if self._client is None:
            import os

            # A request must not hang in MLflow's retries (minutes by default) when the
            # tracking server is down: fail fast, answer 503, and ask again next time.
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
            from mlflow import MlflowClient

            self._client = MlflowClient(self.tracking_uri, self.tracking_uri)
        return self._client

    def version(self) -> Any | None:
        """The ModelVersion behind @champion, re-read when the last look is too old."""
        stale = time.monotonic() - self._checked_at >= self.check_seconds
        if stale and self._check_lock.acquire(blocking=self._checked_at == float("-inf")):
            try:
                if time.monotonic() - self._checked_at >= self.check_seconds:
                    try:
                        self._version = self._read_alias()
                        self.registry_unreachable = False
                    except Exception as exc:
                        if self._version is None or not _unreachable(exc):
                            raise
                        # Keep serving what was loaded; ask again after the interval, so a
                        # hung registry costs one request a check, not every request.
                        if not self.registry_unreachable:
                            log.warning("model registry unreachable, serving champion v%s: %s",
                                        self._version.version, exc)  # fmt: skip
                        self.registry_unreachable = True
                    self._checked_at = time.monotonic()
            finally:
                self._check_lock.release()
        return self._version

    def _read_alias(self) -> Any | None:
        from mlflow.exceptions import MlflowException

        try:
            return self.client().get_model_version_by_alias(self.model_name, "champion")
        except MlflowException as exc:
            if getattr(exc, "error_code", "") in (
                "RESOURCE_DOES_NOT_EXIST",
                "INVALID_PARAMETER_VALUE",
            ):
                return None
            raise

    def champion(self) -> Any | None:
        """The loaded champion, reloaded when the alias moved (others keep the old meanwhile)."""
        version = self.version()
        if version is None:
            return None
        current = self._champion
        if current is not None and current.version == str(version.version):
            return current
        if current is not None and not self._load_lock.acquire(blocking=False):
            return current  # another request is loading the new one
        if current is None:
            self._load_lock.acquire()
        try:
            current = self._champion
            wanted = str(version.version)
            if (current is None or current.version != wanted) and self._refused != wanted:
                from core.settings import MlflowSettings, Settings
                from ml.inference import load_champion
                from ml.registry.provenance import ChampionRefused

                mlflow_settings = MlflowSettings(
                    tracking_uri=self.tracking_uri, model_name=self.model_name
                )
                try:
                    loaded = load_champion(Settings(mlflow=mlflow_settings), _recorded_digest,
                                           self.cache_dir)  # fmt: skip
                except ChampionRefused as exc:
                    # Not loaded, not retried until the alias moves; the last good one serves.
                    log.error("%s", exc)
                    self._refused, self.refusal = wanted, str(exc)
                    return self._champion
                if loaded is not None:
                    log.info("loaded champion %s v%s", loaded.name, loaded.version)
                    self._champion, self._refused, self.refusal = loaded, None, None
            return self._champion
        finally:
            self._load_lock.release()

    def card(self) -> dict[str, Any] | None:
        version = self.version()
        if version is None:
            return None
        key = str(version.version)
        card = self._cards.get(key)
        if card is None:
            card = self._build_card(version)
            self._cards[key] = card
        return card

    def _build_card(self, version: Any) -> dict[str, Any]:
        """The model card's JSON: ml.registry.card reads the version's metadata."""
        from ml.registry.card import VERSION_METRICS, read_card

        client = self.client()
        card = read_card(client, version, with_run=True)
        from ml.registry.card import tear_sheet_dir, tear_sheet_path

        artifacts = {a.path for a in client.list_artifacts(card.run_id, "plots")}
        tear_sheet = tear_sheet_path(card.model) if card.model else None
        if card.model:
            artifacts |= {a.path for a in client.list_artifacts(card.run_id,
                                                                tear_sheet_dir(card.model))}  # fmt: skip
        run_url = None
        base = self.ui or (self.tracking_uri if self.tracking_uri.startswith("http") else "")
        if base and card.experiment_id is not None:
            run_url = f"{base}/#/experiments/{card.experiment_id}/runs/{card.run_id}"
        return {
            "name": self.model_name,
            "version": card.version,
            "run_id": card.run_id,
            "model": card.model,
            "label": card.label,
            "label_horizon": card.label_horizon,
            "lookback": card.lookback,
            "features": list(card.features),
            "trained_window": {"start": _iso(card.train_start), "end": _iso(card.train_end)},
            "test_window": {"start": _iso(card.test_start), "end": _iso(card.test_end)},
            "metrics": {k: card.metrics[k] for k in VERSION_METRICS if k in card.metrics},
            "registered_at": _iso_ms(card.registered_at_ms),
            "mlflow_run_url": run_url,
            "equity_curve_url": (
                "/api/v1/models/champion/equity_curve.png" if EQUITY_CURVE in artifacts else None
            ),
            "tear_sheet_url": (
                "/api/v1/models/champion/tear_sheet.html" if tear_sheet in artifacts else None
            ),
        }

    def equity_curve(self) -> Path | None:
        card = self.card()
        if card is None or card["equity_curve_url"] is None:
            return None
        return self._artifact(card, EQUITY_CURVE)

    def tear_sheet(self) -> Path | None:
        card = self.card()
        if card is None or card["tear_sheet_url"] is None:
            return None
        from ml.registry.card import tear_sheet_path

        return self._artifact(card, tear_sheet_path(card["model"]))

    def _artifact(self, card: dict[str, Any], artifact: str) -> Path:
        """A local copy of one of the champion's run artifacts (downloaded once a version)."""
        path = Path(self.cache_dir, self.model_name, str(card["version"]), artifact)
        if not path.is_file():
            import shutil
            import tempfile

            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
                local = self.client().download_artifacts(card["run_id"], artifact, tmp)
                # Another worker may download the same file: the rename makes either one win whole.
                shutil.move(local, tmp + "/ready")
                Path(tmp, "ready").replace(path)
        return path


def _unreachable(exc: Exception) -> bool:
    """An error that means the registry could not be asked (not a bug of ours)."""
    from mlflow.exceptions import MlflowException
    from sqlalchemy.exc import SQLAlchemyError

    return isinstance(exc, MlflowException | SQLAlchemyError | OSError)


def _recorded_digest(model_name: str, version: str) -> str | None:
    """The digest the promotion gate recorded, read on the API's own (read-only) connection."""
    from api.db import fetch_all
    from ml.registry.provenance import LOOKUP

    rows = fetch_all(LOOKUP, (model_name, version))
    return str(rows[0]["artifact_digest"]) if rows else None


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day is not None else None


def _iso_ms(ms: int | None) -> str | None:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat() if ms else None


def registry() -> ChampionRegistry:
    app = current_app
    found = app.extensions.get(_KEY)
    if found is None:
        found = app.extensions.setdefault(
            _KEY,
            ChampionRegistry(
                app.config["MLFLOW_TRACKING_URI"],
                app.config["MODEL_NAME"],
                float(app.config["CHAMPION_CHECK_SECONDS"]),
                Path(app.config["DATA_DIR"]) / "api_cache",
                app.config["MLFLOW_UI_URL"],
            ),
        )
    return found  # type: ignore[no-any-return]


def _guard(what: str, fn: Any) -> Any:
    """The registry being down is a 503, like the database; our own bugs stay 500s."""
    try:
        return fn()
    except Exception as exc:
        if _unreachable(exc):
            current_app.logger.warning("model registry unreachable (%s): %s", what, exc)
            abort(503, description="model registry unreachable")
        raise


def model_card() -> dict[str, Any] | None:
    card = _guard("card", lambda: registry().card())
    if card is None:
        return None
    # False while the registry cannot be asked and the card is the last good one.
    return {**card, "registry_reachable": not registry().registry_unreachable}


def equity_curve_path() -> Path | None:
    return _guard("equity curve", lambda: registry().equity_curve())  # type: ignore[no-any-return]


def equity_curve_response() -> Response:
    """The champion's equity-curve PNG (404 JSON when it has none); for the API and the page."""
    path = equity_curve_path()
    if path is None:
        abort(404, description="the champion has no equity curve")
    return send_file(path, mimetype="image/png", max_age=3600)


def tear_sheet_response() -> Response:
    """The champion's tear sheet, a static HTML page (404 JSON when it has none). Served with a
    policy that lets it show its inline styles and images and nothing else."""
    path = _guard("tear sheet", lambda: registry().tear_sheet())
    if path is None:
        abort(404, description="the champion has no tear sheet")
    response = send_file(path, mimetype="text/html", max_age=3600)
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; img-src data:; style-src 'unsafe-inline'; font-src data:"
    )
    return response


def score_symbols(conn: Any, symbols: list[str]) -> dict[str, Any]:
    champion = _guard("load", lambda: registry().champion())
    if champion is None:
        refusal = registry().refusal
        abort(
            503, description=f"no champion model to score with{': ' + refusal if refusal else ''}"
        )
    from api.db import fetch_rows
    from ml.online import score_symbols as score

    result = score(conn, champion, symbols, run=fetch_rows)
    if not result["scores"] and result["trade_date"] is None:
        abort(503, description="no features to score yet")
    if not result["scores"]:
        abort(404, description=f"no features for symbols: {', '.join(symbols)}")
    return {"model_name": champion.name, "model_version": champion.version, **result}
