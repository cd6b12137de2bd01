"""The champion card: what a registered model version says about itself, read and written here
only (training writes it, inference, monitoring, the API and the demo summary read it).

A card is written as model-version tags: `model`, `label`, `label_horizon`, `lookback`,
`features` (comma-separated), `train_start`/`train_end` (the refit's window: drift monitoring's
reference), `test_start`/`test_end` (the walk-forward's out-of-sample span), `folds` (the folds'
fingerprint), `gate_metric` and `model_spec` (JSON): lineage only. The walk-forward metrics are
metrics of the version's logged model (MLflow 3's LoggedModel, shown on the version's page) and
of its training run; `read_card` reads them from the logged model. Older versions kept the
metrics as `metric.<name>` tags and some fields as run params only: a card falls back to them.

Imports nothing heavy at module level (the API imports it at start-up): MLflow is imported in
the functions that talk to the registry.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

CHAMPION = "champion"
CHALLENGER = "challenger"

# The walk-forward metrics a version carries (its logged model's metrics).
VERSION_METRICS = ("ic", "rank_ic", "icir", "rank_icir", "ic_tstat", "directional_accuracy", "mae",
               "rmse", "mape", "sharpe", "sharpe_ci_low", "sharpe_ci_high", "sortino",
               "annual_return", "volatility", "max_drawdown", "calmar", "turnover",
               "ls_sharpe", "ls_annual_return", "benchmark_sharpe", "benchmark_annual_return",
               "benchmark_max_drawdown", "excess_annual_return", "excess_ir",
               "excess_ir_ci_low", "excess_ir_ci_high", "excess_annual_return_ci_low",
               "excess_annual_return_ci_high", "excess_max_drawdown", "gross_annual_return",
               "gross_excess_annual_return", "gross_excess_ir", "excess2_annual_return",
               "excess2_ir", "cost_drag", "coverage")  # fmt: skip


def tear_sheet_dir(model: str) -> str:
    """Where a training run keeps candidate `model`'s tear sheet (HTML and PNGs)."""
    return f"tearsheets/{model}"


def tear_sheet_path(model: str) -> str:
    return f"{tear_sheet_dir(model)}/tearsheet.html"


@dataclass(frozen=True)
class ChampionCard:
    """A registered version's metadata. Fields a version lacks are None (or empty)."""

    name: str
    version: str
    run_id: str
    model: str | None = None
    label: str | None = None
    label_horizon: int | None = None
    lookback: int | None = None
    features: tuple[str, ...] = ()
    train_start: date | None = None
    train_end: date | None = None
    test_start: date | None = None
    test_end: date | None = None
    folds: str | None = None
    gate_metric: str | None = None
    model_spec: dict[str, Any] | None = None
    # The walk-forward metrics the gate compares (the logged model's; `metric.<name>` tags of
    # older versions).
    metrics: Mapping[str, float] = field(default_factory=dict)
    # From the registry and the run, when the card was read with them (the run's metrics
    # include the stress tests and everything else the training run logged).
    run_metrics: Mapping[str, float] = field(default_factory=dict)
    registered_at_ms: int | None = None
    experiment_id: str | None = None

    @property
    def reference_window(self) -> tuple[date, date] | None:
        """The refit's training window (drift monitoring's reference), when known."""
        if self.train_start is None or self.train_end is None:
            return None
        return self.train_start, self.train_end

    def metric(self, name: str) -> float | None:
        return self.metrics.get(name)


def card_tags(
    *,
    model: str,
    label: str,
    label_horizon: int,
    lookback: int,
    features: Iterable[str],
    train_start: date,
    train_end: date,
    test_start: date,
    test_end: date,
    folds: str,
    gate_metric: str,
    model_spec: Mapping[str, Any],
) -> dict[str, str]:
    """The model-version tags of a card (lineage), as training writes them."""
    return {
        "model": model,
        "label": label,
        "label_horizon": str(label_horizon),
        "lookback": str(lookback),
        "features": ",".join(features),
        "train_start": str(train_start),
        "train_end": str(train_end),
        "test_start": str(test_start),
        "test_end": str(test_end),
        "folds": folds,
        "gate_metric": gate_metric,
        "model_spec": json.dumps(dict(model_spec)),
    }


def write_card(client: Any, model_name: str, version: str, tags: Mapping[str, str]) -> None:
    """Set the card's tags on `model_name` version `version` (an MlflowClient)."""
    for key, value in tags.items():
        client.set_model_version_tag(model_name, version, key, value)


def version_metric_values(metrics: Mapping[str, float]) -> dict[str, float]:
    """The finite VERSION_METRICS of a walk-forward's `metrics`, as a logged model keeps them."""
    import math

    return {k: float(metrics[k]) for k in VERSION_METRICS
            if k in metrics and metrics[k] is not None and math.isfinite(metrics[k])}  # fmt: skip


def logged_model_id(model_version: Any) -> str | None:
    """The id of the LoggedModel behind a version: its `model_id`, else its `models:/m-...`
    source (the registry does not fill `model_id` on every store)."""
    model_id = getattr(model_version, "model_id", None)
    if model_id:
        return str(model_id)
    source = str(getattr(model_version, "source", "") or "")
    rest = source.removeprefix("models:/")
    return rest if rest != source and rest.startswith("m-") and "/" not in rest else None


def version_metrics(client: Any, model_version: Any) -> dict[str, float]:
    """The walk-forward metrics of a version's logged model ({} for versions logged before
    metrics moved there, or without a logged model)."""
    from mlflow.exceptions import MlflowException

    model_id = logged_model_id(model_version)
    if model_id is None:
        return {}
    try:
        logged = client.get_logged_model(model_id)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return {}
        raise
    latest: dict[str, Any] = {}
    for metric in logged.metrics or []:
        if metric.key in VERSION_METRICS:
            kept = latest.get(metric.key)
            if kept is None or (metric.step, metric.timestamp) >= (kept.step, kept.timestamp):
                latest[metric.key] = metric
    return {key: float(metric.value) for key, metric in latest.items()}


# The metrics a model card shows, with their interval where the walk-forward gives one.
_CARD_METRICS = (
    ("rank_ic", "RankIC", None),
    ("ic", "IC", None),
    ("icir", "ICIR", None),
    ("directional_accuracy", "direction", None),
    ("mae", "MAE", None),
    ("rmse", "RMSE", None),
    ("sharpe", "top-k Sharpe (after costs)", "sharpe_ci"),
    ("excess_annual_return", "excess return a year (after costs)", "excess_annual_return_ci"),
    ("excess_ir", "information ratio", "excess_ir_ci"),
    ("turnover", "turnover a day", None),
    ("cost_drag", "cost drag a year", None),
    ("max_drawdown", "max drawdown", None),
)


def model_card_markdown(
    card: ChampionCard,
    *,
    n_folds: int,
    gate_reason: str,
    promoted: bool,
    run_id: str,
) -> str:
    """The version's description in the MLflow UI: what it learned from, how it was judged,
    and the gate's verdict (markdown, as MLflow renders descriptions)."""
    features = ", ".join(card.features[:12]) + (
        f" and {len(card.features) - 12} more" if len(card.features) > 12 else ""
    )
    rows = []
    for key, label, interval in _CARD_METRICS:
        value = card.metrics.get(key)
        if value is None:
            continue
        low = card.metrics.get(f"{interval}_low") if interval else None
        high = card.metrics.get(f"{interval}_high") if interval else None
        ci = f"[{low:.4f}, {high:.4f}]" if low is not None and high is not None else ""
        rows.append(f"| {label} | {value:.4f} | {ci} |")
    verdict = "promoted to @champion" if promoted else "kept as @challenger"
    return "\n".join([
        f"# {card.name} v{card.version}: {card.model}",
        "",
        f"- **Label**: `{card.label}` ({card.label_horizon} trading days ahead)",
        f"- **Trained on**: {card.train_start} .. {card.train_end} (the refit on the latest data)",
        f"- **Out of sample**: {card.test_start} .. {card.test_end}, {n_folds} walk-forward "
        f"folds (fingerprint `{card.folds}`)",
        f"- **Features** ({len(card.features)}): {features}",
        f"- **Look-back**: {card.lookback} rows",
        "",
        "## Walk-forward metrics",
        "",
        "| metric | value | 95% interval |",
        "|---|---|---|",
        *rows,
        "",
        f"Tear sheet: run `{run_id}`, artifact `{tear_sheet_path(card.model or '')}`.",
        "",
        f"## Gate: {verdict}",
        "",
        gate_reason,
    ])  # fmt: skip


def _int(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() else None


def _date(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


def _float(text: Any) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def _spec(text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        spec = json.loads(text)
    except ValueError:
        return None
    return spec if isinstance(spec, dict) else None


def card_from_version(
    model_version: Any, run: Any | None = None, metrics: Mapping[str, float] | None = None
) -> ChampionCard:
    """The card of an MLflow ModelVersion. With its run (`client.get_run(version.run_id)`),
    fields missing from the tags are read from the run's params, and the run's metrics and
    experiment id come with it. `metrics`: the version's walk-forward metrics
    (`version_metrics`); without them, the `metric.<name>` tags of older versions."""
    tags: dict[str, str] = dict(model_version.tags or {})
    params: dict[str, str] = dict(run.data.params) if run is not None else {}

    def pick(name: str) -> str | None:
        return tags.get(name) or params.get(name) or None

    found: dict[str, float] = dict(metrics or {})
    for key, raw in tags.items():
        if key.startswith("metric.") and key.removeprefix("metric.") not in found:
            value = _float(raw)
            if value is not None:
                found[key.removeprefix("metric.")] = value
    created = getattr(model_version, "creation_timestamp", None)
    return ChampionCard(
        name=str(model_version.name),
        version=str(model_version.version),
        run_id=str(model_version.run_id),
        model=pick("model"),
        label=pick("label"),
        label_horizon=_int(pick("label_horizon")),
        lookback=_int(pick("lookback")),
        features=tuple(f for f in (pick("features") or "").split(",") if f),
        train_start=_date(pick("train_start")),
        train_end=_date(pick("train_end")),
        test_start=_date(pick("test_start")),
        test_end=_date(pick("test_end")),
        folds=tags.get("folds") or None,
        gate_metric=pick("gate_metric"),
        model_spec=_spec(tags.get("model_spec")),
        metrics=found,
        run_metrics=dict(run.data.metrics) if run is not None else {},
        registered_at_ms=int(created) if created else None,
        experiment_id=str(run.info.experiment_id) if run is not None else None,
    )


def champion_version(client: Any, model_name: str) -> Any | None:
    """The ModelVersion behind `@champion`, or None when the model or the alias does not exist.

    Anything else (a refused sign-in, a registry error) raises: taken for "no champion", it
    would let the gate promote a challenger unopposed and scoring say "train first".

    The alias is read from the registered model, not through MLflow's get-by-alias endpoint:
    behind MLflow's sign-in, that endpoint answers a read-only user's question about a missing
    alias with 403 (its permission check resolves the alias first), which is not "no
    champion" for anyone else."""
    from mlflow.exceptions import MlflowException

    try:
        model = client.get_registered_model(model_name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    version = (model.aliases or {}).get(CHAMPION)
    if version is None:
        return None
    return client.get_model_version(model_name, str(version))


def champion_card(client: Any, model_name: str, *, with_run: bool = True) -> ChampionCard | None:
    """The card of `model_name@champion` (read with its run unless `with_run` is False), or
    None when there is no champion."""
    version = champion_version(client, model_name)
    if version is None:
        return None
    return read_card(client, version, with_run=with_run)


def read_card(client: Any, model_version: Any, *, with_run: bool = False) -> ChampionCard:
    """A version's card with its walk-forward metrics (from its logged model), and its run's
    params and metrics when `with_run`."""
    run = client.get_run(model_version.run_id) if with_run else None
    return card_from_version(model_version, run, version_metrics(client, model_version))


__all__ = [
    "CHALLENGER",
    "model_card_markdown",
    "CHAMPION",
    "VERSION_METRICS",
    "ChampionCard",
    "card_from_version",
    "card_tags",
    "champion_card",
    "champion_version",
    "read_card",
    "version_metric_values",
    "version_metrics",
    "write_card",
]
