"""The promotion gate: sanity checks on a challenger's out-of-sample scores, then `@champion`
only if its walk-forward metric beats the champion's on the same folds (the champion's config
is re-run on these folds when it was scored on others). Ties keep the champion."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.settings import Settings
from ml.config import GateConfig, ModelSpec
from ml.evaluation.walk_forward import WalkForwardResult, run_walk_forward
from ml.models import model_lookback
from ml.prepare import Prepared
from ml.registry.card import CHAMPION, ChampionCard, champion_version, read_card


@dataclass(frozen=True)
class GateDecision:
    promoted: bool
    reason: str
    champion_version: str  # the champion before the decision ("" when there was none)


def finite_or_worst(x: float) -> float:
    return x if isinstance(x, float | int) and math.isfinite(x) else float("-inf")


def sanity_failures(result: WalkForwardResult, min_coverage: float) -> list[str]:
    """Why a model's out-of-sample scores cannot be trusted (empty when they can)."""
    pred = result.scored["pred"].to_numpy(dtype=float)
    failures = []
    if not np.isfinite(pred).all():
        failures.append(f"{int((~np.isfinite(pred)).sum())} non-finite scores")
    finite = pred[np.isfinite(pred)]
    if len(finite) == 0 or float(np.std(finite)) < 1e-12:
        failures.append("scores are constant")
    else:
        per_day = result.scored.groupby("trade_date")["pred"].nunique()
        if float((per_day > 1).mean()) < 0.5:
            failures.append("scores do not separate symbols on most days")
    if result.coverage < min_coverage:
        failures.append(f"coverage {result.coverage:.1%} < {min_coverage:.0%}")
    return failures


def excess_failure(metrics: dict[str, float], config: GateConfig) -> str:
    """Why the strategy's after-cost excess return does not clear the gate ("" when it does,
    or when the gate does not ask)."""
    if config.min_excess_return is None:
        return ""
    value = metrics.get("excess_annual_return", float("nan"))
    low = metrics.get("excess_annual_return_ci_low", float("nan"))
    judged, what = (low, "the low end of its 95% interval") if config.excess_ci else (value, "it")
    if math.isfinite(judged) and judged > config.min_excess_return:
        return ""
    return f"{excess_summary(metrics)}: {what} is not above {config.min_excess_return:.2%}"


def excess_summary(metrics: dict[str, float]) -> str:
    value = metrics.get("excess_annual_return", float("nan"))
    low = metrics.get("excess_annual_return_ci_low", float("nan"))
    high = metrics.get("excess_annual_return_ci_high", float("nan"))
    return f"after-cost excess return {value:.2%} a year (95% CI {low:.2%} .. {high:.2%})"


def select_challenger(
    results: dict[str, WalkForwardResult], metric: str, min_coverage: float
) -> str:
    """The best model on `metric` among those passing the sanity checks."""
    sane = {n: r for n, r in results.items() if not sanity_failures(r, min_coverage)}
    if not sane:
        raise RuntimeError(
            "no model passed the sanity checks: "
            + "; ".join(f"{n}: {sanity_failures(r, min_coverage)}" for n, r in results.items())
        )
    return max(sane, key=lambda n: finite_or_worst(sane[n].metrics[metric]))


def gate(
    client: Any,
    settings: Settings,
    prepared: Prepared,
    challenger: WalkForwardResult,
    metric: str,
    min_coverage: float,
) -> GateDecision:
    """Whether the challenger replaces the champion, compared on the same walk-forward folds."""
    decision = _decide(client, settings, prepared, challenger, metric, min_coverage)
    if decision.promoted:
        # The strategy's after-cost excess and its interval go with every promotion.
        excess = excess_summary(challenger.metrics)
        return GateDecision(True, f"{decision.reason}; {excess}", decision.champion_version)
    return decision


def _decide(
    client: Any,
    settings: Settings,
    prepared: Prepared,
    challenger: WalkForwardResult,
    metric: str,
    min_coverage: float,
) -> GateDecision:
    failures = sanity_failures(challenger, min_coverage)
    current = champion_version(client, settings.mlflow.model_name)
    champ = "" if current is None else str(current.version)
    if failures:
        return GateDecision(False, f"challenger failed sanity checks: {'; '.join(failures)}", champ)
    short = excess_failure(challenger.metrics, prepared.config.gate)
    if short:
        return GateDecision(False, f"challenger not promoted: {short}", champ)
    if current is None:
        return GateDecision(True, "no champion yet: challenger promoted", champ)
    card = read_card(client, current)
    new = finite_or_worst(challenger.metrics.get(metric, float("nan")))
    recorded = card.metric(metric)
    if card.folds == prepared.fingerprint and recorded is not None:
        old = finite_or_worst(recorded)
        how = "same folds"
    elif card.model_spec:
        # Scored on other folds (older data): re-run the champion's config on these folds.
        rerun = rerun_champion(prepared, card)
        old = finite_or_worst(rerun.metrics.get(metric, float("nan")))
        how = "champion's config re-run on these folds"
    else:
        return GateDecision(
            True, f"champion v{champ} has no walk-forward record: challenger promoted", champ
        )
    # Compare at the precision the tags keep, so an equal model is a tie.
    if float(f"{new:.6g}") > float(f"{old:.6g}"):
        return GateDecision(True, (f"challenger {metric} {new:.4f} > champion v{champ} {metric} "
                                   f"{old:.4f} ({how}): promoted"), champ)  # fmt: skip
    return GateDecision(False, (f"challenger {metric} {new:.4f} <= champion v{champ} {metric} "
                                f"{old:.4f} ({how}): champion kept"), champ)  # fmt: skip


def rerun_champion(prepared: Prepared, card: ChampionCard) -> WalkForwardResult:
    """The champion's config (its model spec and features) walked forward on `prepared`'s folds."""
    spec = ModelSpec.model_validate(card.model_spec)
    features = list(card.features)
    panel = prepared.panel
    if features and features != panel.features:
        missing = [f for f in features if f not in panel.features]
        if missing:
            raise ValueError(f"the champion's features {missing} are no longer in the marts")
        panel = panel.select(features)
    config = prepared.config
    min_history = max(prepared.min_history, model_lookback(spec))
    return run_walk_forward(
        "champion", spec, panel, prepared.folds, config.seed, min_history, config.processors,
        config.backtest, track=False, runtime=prepared.runtime,
    )  # fmt: skip


def promote(client: Any, model_name: str, version: str, database_url: str) -> None:
    """Make `version` @champion: first record the digest of its artifacts (what scoring and
    the API will insist on loading), then move the alias."""
    import tempfile

    from ml.registry.provenance import directory_digest, download_model, record_promotion

    with tempfile.TemporaryDirectory(prefix="mf_promote_") as tmp:
        digest = directory_digest(download_model(model_name, version, Path(tmp)))
    run_id = str(client.get_model_version(model_name, version).run_id)
    record_promotion(database_url, model_name, version, run_id, digest)
    client.set_registered_model_alias(model_name, CHAMPION, version)
