"""ml/train.py end to end: sample prices through dbt, real MLflow (PostgreSQL store), real models,
walk-forward, registry tags, the promotion gate, the leakage guard and honesty checks.

Every training test has a registered model and an experiment of its own (`ml_settings`), so the
registry state one test sees is the state its own training calls left.
"""

from __future__ import annotations

import json
import math
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg2
import pytest

from core.settings import Settings
from ml.config import load_config, parse_config
from ml.data.dataset import Panel
from ml.data.handler import FEATURES, discover_features, load_panel
from ml.evaluation.leakage import LeakageError
from ml.evaluation.walk_forward import WalkForwardResult, run_walk_forward
from ml.prepare import prepare
from ml.registry.card import CHALLENGER, CHAMPION, VERSION_METRICS, logged_model_id, read_card
from ml.registry.gate import sanity_failures
from ml.train import Begun, begin_training, finish_training, train, walk_forward_one
from tests.ml.conftest import TINY_CONFIG

CONTRACT_TAGS = ("model", "label", "label_horizon", "lookback", "features", "train_start",
                 "train_end", "test_start", "test_end")  # fmt: skip
CONTRACT_METRICS = ("ic", "rank_ic", "icir", "directional_accuracy", "mae", "rmse", "sharpe",
                    "annual_return", "max_drawdown", "benchmark_sharpe")  # fmt: skip


def test_first_training_walks_forward_registers_with_tags_and_becomes_champion(
    market_url: str, ml_settings: Settings, mlflow_client, tiny_config, tmp_path: Path
) -> None:
    config_path = tiny_config()
    result = train(market_url, config_path=config_path)  # settings from the environment

    name = ml_settings.mlflow.model_name
    assert (result.model_name, result.version, result.champion_version) == (name, "1", "1")
    assert result.promoted
    excess = result.metrics["excess_annual_return"]
    low, high = (result.metrics[f"excess_annual_return_ci_{end}"] for end in ("low", "high"))
    assert result.reason == (
        f"no champion yet: challenger promoted; after-cost excess return {excess:.2%} a year "
        f"(95% CI {low:.2%} .. {high:.2%})"
    )
    for alias in (CHAMPION, CHALLENGER):
        version = mlflow_client.get_model_version_by_alias(name, alias)
        assert (str(version.version), version.run_id) == ("1", result.run_id)
    # The MLflow UI: a model-development experiment; the version's description is its card.
    experiment = mlflow_client.get_experiment(
        mlflow_client.get_run(result.run_id).info.experiment_id
    )
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert mlflow_client.get_registered_model(name).description.startswith("MarketFlow's daily")
    card = mlflow_client.get_model_version(name, "1").description
    assert card.startswith(f"# {name} v1: {result.best_model}\n"), card
    assert f"RankIC | {result.metrics['rank_ic']:.4f} |" in card
    assert "top-k Sharpe (after costs) | " in card and "] |" in card  # with its interval
    assert card.rstrip().endswith(result.reason), card
    assert "## Gate: promoted to @champion" in card

    # The best candidate on walk-forward RankIC is the one registered, with its metrics.
    assert set(result.candidates) == set(TINY_CONFIG["models"])
    assert result.best_model == max(result.candidates,
                                    key=lambda n: result.candidates[n]["rank_ic"])  # fmt: skip
    assert result.metrics == result.candidates[result.best_model]
    for metric in CONTRACT_METRICS:
        assert math.isfinite(result.metrics[metric]), metric
    assert -1 <= result.metrics["rank_ic"] <= 1 and 0 <= result.metrics["directional_accuracy"] <= 1

    tags = mlflow_client.get_model_version(name, "1").tags
    assert set(CONTRACT_TAGS) <= set(tags)
    assert tags["model"] == result.best_model and tags["label"] == "fwd_ret_5d"
    assert tags["label_horizon"] == "5"
    # Discovered from marts.features_daily: every numeric column but keys and bookkeeping.
    assert tags["features"].split(",") == discover_features(market_url)
    assert set(FEATURES) <= set(tags["features"].split(","))
    assert int(tags["lookback"]) == (5 if result.best_model == "lstm_attention" else 1)
    # Tags are lineage; the metrics are the version's logged model's (what the UI shows on the
    # version's page, and what the card reads back).
    version = mlflow_client.get_model_version(name, "1")
    assert not [t for t in tags if t.startswith("metric.")]
    logged = mlflow_client.get_logged_model(logged_model_id(version))
    on_model = {m.key: m.value for m in logged.metrics}
    kept = {m for m in VERSION_METRICS if math.isfinite(result.metrics.get(m, math.nan))}
    assert kept <= set(on_model)
    for metric in CONTRACT_METRICS:
        assert on_model[metric] == pytest.approx(result.metrics[metric], rel=1e-9)
    card = read_card(mlflow_client, version)
    assert card.metrics == pytest.approx({m: on_model[m] for m in kept})

    # Walk-forward windows: the last fold's test ends on the last labelled date; the registered
    # refit trains on everything up to a purge gap before its early-stopping window.
    prepared = prepare(market_url, load_config(config_path))
    folds = prepared.folds
    assert (tags["test_start"], tags["test_end"]) == (str(folds[0].test_start),
                                                      str(folds[-1].test_end))  # fmt: skip
    cal = list(prepared.panel.calendar)
    train_end = date.fromisoformat(tags["train_end"])
    first = prepared.panel.samples(cal[0], train_end, prepared.min_history, None)
    assert tags["train_start"] == str(prepared.panel.dates[first].min())
    assert cal.index(train_end) == len(cal) - 60 - 5 - 1 or train_end < cal[len(cal) - 60 - 5]

    # A child run per model; its folds are steps of its `fold/<metric>` series, not runs.
    experiment = mlflow_client.get_run(result.run_id).info.experiment_id
    children = mlflow_client.search_runs(
        [experiment], filter_string=f"tags.mlflow.parentRunId = '{result.run_id}'"
    )
    assert {c.info.run_name for c in children} == set(TINY_CONFIG["models"])
    everything = mlflow_client.search_runs([experiment])
    assert len(everything) == 1 + len(TINY_CONFIG["models"])
    for child in children:
        assert child.data.metrics["rank_ic"] == pytest.approx(
            result.candidates[child.info.run_name]["rank_ic"]
        )
        history = mlflow_client.get_metric_history(child.info.run_id, "fold/rank_ic")
        assert sorted(m.step for m in history) == list(range(len(folds)))
    windows = mlflow_client.download_artifacts(result.run_id, "walk_forward/folds.json",
                                               str(tmp_path))  # fmt: skip
    assert [f["test_start"] for f in json.loads(Path(windows).read_text())["folds"]] == [
        str(f.test_start) for f in folds
    ]

    plots = [a.path for a in mlflow_client.list_artifacts(result.run_id, "plots")]
    for plot in ("equity_curve", "drawdown", "ic"):
        assert f"plots/{plot}.png" in plots
        png = Path(mlflow_client.download_artifacts(result.run_id, f"plots/{plot}.png",
                                                    str(tmp_path)))  # fmt: skip
        assert png.read_bytes().startswith(b"\x89PNG")
    # A tear sheet per candidate: one static HTML page and its PNGs.
    for candidate in TINY_CONFIG["models"]:
        sheet = {a.path for a in mlflow_client.list_artifacts(result.run_id,
                                                              f"tearsheets/{candidate}")}  # fmt: skip
        assert {f"tearsheets/{candidate}/{f}" for f in
                ("tearsheet.html", "equity.png", "quantiles.png", "monthly_ic.png")} == sheet  # fmt: skip
    page = Path(mlflow_client.download_artifacts(
        result.run_id, f"tearsheets/{result.best_model}/tearsheet.html", str(tmp_path)
    )).read_text()  # fmt: skip
    assert f"{result.metrics['excess_annual_return']:.2%}" in page
    assert mlflow_client.list_artifacts(result.run_id, "config")[0].path == "config/features.txt"
    run = mlflow_client.get_run(result.run_id)
    assert run.data.tags["promoted"] == "True"
    assert run.data.metrics["benchmark_sharpe"] == pytest.approx(result.metrics["benchmark_sharpe"])

    # The registered model carries a signature, an input example and pinned requirements.
    import mlflow

    info = mlflow.models.get_model_info(f"models:/{name}/1")
    assert info.signature is not None
    assert {c.name for c in info.signature.inputs.inputs} >= {"symbol", "trade_date", *FEATURES}
    requirements = Path(mlflow_client.download_artifacts(result.run_id, "model/requirements.txt",
                                                         str(tmp_path))).read_text()  # fmt: skip
    assert "torch==" in requirements and "scikit-learn==" in requirements


def test_retraining_the_same_config_reproduces_the_metrics_and_does_not_promote(
    market_url: str, ml_settings: Settings, mlflow_client, tiny_config
) -> None:
    config_path = tiny_config()
    first = train(market_url, ml_settings, config_path)

    # Unchanged data and config: nothing trained, nothing registered, and the run says so.
    skipped = train(market_url, ml_settings, config_path)
    assert skipped.skipped and (skipped.version, skipped.champion_version) == ("1", "1")
    assert skipped.reason.startswith("data and config unchanged since v1")
    name = ml_settings.mlflow.model_name
    assert [str(v.version) for v in mlflow_client.search_model_versions(f"name = '{name}'")] == [
        "1"
    ]
    tags = mlflow_client.get_run(skipped.run_id).data.tags
    assert (tags["skipped"], tags["gate_reason"]) == ("true", skipped.reason)

    second = train(market_url, ml_settings, config_path, force=True)

    # Same config and seed on CPU: identical metrics for every model.
    assert second.candidates == first.candidates
    assert second.version == "2" and not second.promoted
    rank_ic = first.metrics["rank_ic"]
    assert second.reason == (
        f"challenger rank_ic {rank_ic:.4f} <= champion v1 rank_ic {rank_ic:.4f} (same folds):"
        " champion kept"
    )
    assert str(mlflow_client.get_model_version_by_alias(name, CHAMPION).version) == "1"
    assert str(mlflow_client.get_model_version_by_alias(name, CHALLENGER).version) == "2"
    tags = mlflow_client.get_run(second.run_id).data.tags
    assert (tags["promoted"], tags["gate_reason"]) == ("False", second.reason)


def test_a_fanned_out_training_equals_the_sequential_one(
    market_url: str, ml_settings: Settings, mlflow_client, tiny_config, tmp_path: Path
) -> None:
    """The training DAG's path: `begin_training`, one `walk_forward_one` per candidate (as
    mapped tasks run them, here in reverse order, each reading the panel again), then
    `finish_training` gathers their files and gates."""
    config_path = tiny_config()
    sequential = train(market_url, ml_settings, config_path)

    prepared = prepare(market_url, load_config(config_path), ml_settings)
    begun = begin_training(prepared, ml_settings, force=True)
    assert isinstance(begun, Begun) and sorted(begun.models) == sorted(TINY_CONFIG["models"])
    out = tmp_path / "training" / begun.run_id
    for name in reversed(begun.models):
        again = prepare(market_url, load_config(config_path), ml_settings)
        folder = walk_forward_one(again, begun, name, out, ml_settings)
        assert sorted(p.name for p in folder.iterdir()) == ["result.json", "scored.parquet"]
    fanned = finish_training(prepared, begun, out, market_url, ml_settings)

    assert fanned.candidates == sequential.candidates  # CPU, same seed: identical
    assert fanned.best_model == sequential.best_model and fanned.version == "2"
    assert not fanned.promoted and "(same folds): champion kept" in fanned.reason
    children = mlflow_client.search_runs(
        [mlflow_client.get_run(begun.run_id).info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{begun.run_id}'",
    )
    assert sorted(c.info.run_name for c in children) == sorted(TINY_CONFIG["models"])

    # New data mid-training (other folds): the gather refuses instead of mixing folds.
    moved = Begun(begun.run_id, begun.inputs, "other-folds", begun.models)
    with pytest.raises(RuntimeError, match="the folds changed since this training began"):
        finish_training(prepared, moved, out, market_url, ml_settings)


def test_on_other_folds_the_gate_reruns_the_champions_config_on_the_new_folds(
    market_url: str, ml_settings: Settings, tiny_config
) -> None:
    ridge_only = {"ridge": TINY_CONFIG["models"]["ridge"]}
    train(market_url, ml_settings, tiny_config(models=ridge_only))
    walk = {**TINY_CONFIG["walk_forward"], "max_folds": 1}

    second = train(market_url, ml_settings, tiny_config(models=ridge_only, walk_forward=walk))

    # The same ridge on the (different) folds: the re-run champion ties, and is kept.
    assert "(champion's config re-run on these folds): champion kept" in second.reason
    assert not second.promoted


def test_the_gate_can_require_an_after_cost_excess_return_and_reports_its_interval(
    market_url: str, ml_settings: Settings, mlflow_client, tiny_config
) -> None:
    ridge_only = {"ridge": TINY_CONFIG["models"]["ridge"]}
    # An excess of 1000 % a year after costs: no model clears it, so nothing is promoted,
    # not even a first champion, and the reason gives the measured excess with its interval.
    demanding = {**TINY_CONFIG["gate"], "min_excess_return": 10.0}
    result = train(market_url, ml_settings, tiny_config(models=ridge_only, gate=demanding))

    assert not result.promoted and result.champion_version == ""
    excess = result.metrics["excess_annual_return"]
    assert result.reason.startswith(
        f"challenger not promoted: after-cost excess return {excess:.2%} a year (95% CI "
    )
    assert result.reason.endswith("it is not above 1000.00%")
    with pytest.raises(Exception, match="alias"):
        mlflow_client.get_model_version_by_alias(ml_settings.mlflow.model_name, CHAMPION)

    # Judged on the low end of the interval, a threshold just under the estimate still fails
    # when the interval reaches below it.
    low = result.metrics["excess_annual_return_ci_low"]
    assert low < excess
    between = {**TINY_CONFIG["gate"], "min_excess_return": (low + excess) / 2}
    point = train(market_url, ml_settings, tiny_config(models=ridge_only, gate=between))
    assert point.promoted and "after-cost excess return" in point.reason
    strict = {**between, "excess_ci": True}
    interval = train(market_url, ml_settings, tiny_config(models=ridge_only, gate=strict))
    assert not interval.promoted
    assert "the low end of its 95% interval is not above" in interval.reason


def test_sanity_checks_reject_constant_nan_and_thin_scores() -> None:
    days = pd.bdate_range("2020-01-01", periods=30).date
    base = pd.DataFrame([(d, s) for d in days for s in "ABC"], columns=["trade_date", "symbol"])
    rng = np.random.default_rng(0)

    def result(pred: np.ndarray, eligible: int) -> WalkForwardResult:
        return WalkForwardResult("m", base.assign(pred=pred), [], eligible_rows=eligible)

    good = rng.normal(size=len(base))
    assert sanity_failures(result(good, len(base)), 0.9) == []
    assert sanity_failures(result(np.full(len(base), 0.1), len(base)), 0.9) == [
        "scores are constant"
    ]
    with_nan = good.copy()
    with_nan[:5] = np.nan
    assert "5 non-finite scores" in sanity_failures(result(with_nan, len(base)), 0.9)
    assert sanity_failures(result(good, 2 * len(base)), 0.9) == ["coverage 50.0% < 90%"]


def test_a_feature_built_from_the_label_stops_training_with_a_clear_message(
    market_url: str, ml_settings: Settings, mlflow_client, tiny_config
) -> None:
    with psycopg2.connect(market_url) as conn, conn.cursor() as cur:
        cur.execute("alter table marts.features_daily add column peek_5d double precision")
        cur.execute(
            "update marts.features_daily f set peek_5d = l.fwd_ret_5d + 0.001 * random()"
            " from marts.labels_daily l where l.symbol = f.symbol and l.trade_date = f.trade_date"
        )
    conn.close()
    try:
        with pytest.raises(
            LeakageError, match=r"peek_5d \(Spearman \+(0\.9\d|1\.00)\).*training stopped"
        ):
            train(market_url, ml_settings, tiny_config())
    finally:
        with psycopg2.connect(market_url) as conn, conn.cursor() as cur:
            cur.execute("alter table marts.features_daily drop column peek_5d")
        conn.close()
    # Nothing was trained or registered.
    assert mlflow_client.search_registered_models(f"name = '{ml_settings.mlflow.model_name}'") == []


# --- honesty: no skill where there is none, and no implausible skill where there is little --


@pytest.mark.parametrize("model", ["ridge", "xgboost"])
def test_shuffled_labels_give_no_skill_and_real_labels_only_a_little(
    market_url: str, model: str
) -> None:
    spec = TINY_CONFIG["models"][model]
    frame, features = load_panel(market_url, None, ["fwd_ret_5d", "fwd_ret_1d"])
    config = load_config_dict()
    prepared_folds = _folds(market_url)

    real = run_walk_forward(model, spec, Panel(frame, features, "fwd_ret_5d", 5), prepared_folds,
                            seed=config["seed"], min_history=5)  # fmt: skip
    # A RankIC of a few hundredths is what honest models of 5-day returns get; much more on
    # four large caps means the features see the label or train overlaps test.
    assert math.isfinite(real.metrics["rank_ic"]) and abs(real.metrics["rank_ic"]) < 0.15

    # Labels dealt out at random within each date: nothing the model learns can line up.
    shuffled_ics = []
    for seed in range(4):
        rng = np.random.default_rng(seed)
        shuffled = frame.copy()
        shuffled["fwd_ret_5d"] = shuffled.groupby("trade_date")["fwd_ret_5d"].transform(
            lambda s: rng.permutation(s.to_numpy())  # noqa: B023
        )
        panel = Panel(shuffled, features, "fwd_ret_5d", 5)
        result = run_walk_forward(model, spec, panel, prepared_folds, seed=7, min_history=5)
        shuffled_ics.append(result.metrics["rank_ic"])
    assert abs(float(np.mean(shuffled_ics))) < 0.05, shuffled_ics


def load_config_dict() -> dict:
    return dict(TINY_CONFIG)


def _folds(market_url: str) -> list:
    config = {**TINY_CONFIG, "walk_forward": {**TINY_CONFIG["walk_forward"], "max_folds": 3}}
    return prepare(market_url, parse_config(config)).folds


def test_a_benchmark_symbol_outside_the_data_is_said_before_any_model_trains(
    market_url: str, tiny_config
) -> None:
    config = load_config(
        tiny_config(backtest={**TINY_CONFIG["backtest"], "benchmark_symbol": "ZZZZ"})
    )
    with pytest.raises(ValueError, match=r"benchmark_symbol 'ZZZZ' is not a symbol of the data"):
        prepare(market_url, config)


def test_a_database_without_built_marts_has_nothing_to_train_on(make_database, market_url) -> None:
    """The training DAG's weekly tick skips (not fails) before the first features build."""
    from ml.data.handler import has_labelled_features

    empty = make_database()
    assert has_labelled_features(empty) is False
    with psycopg2.connect(empty) as conn, conn.cursor() as cur:  # built, but no rows yet
        cur.execute("create schema if not exists marts")
        cur.execute("create table marts.features_daily (symbol text)")
        cur.execute("create table marts.labels_daily (symbol text)")
    conn.close()
    assert has_labelled_features(empty) is False
    assert has_labelled_features(market_url) is True


def test_the_inputs_fingerprint_follows_every_value_and_the_config(
    synthetic_panel, tiny_config
) -> None:
    from ml.config import load_config
    from ml.prepare import Prepared, inputs_fingerprint

    config = load_config(tiny_config())

    def fingerprint(panel, config=config) -> str:
        return inputs_fingerprint(Prepared(config, panel, [], 1, "folds"))

    same = fingerprint(synthetic_panel())
    assert fingerprint(synthetic_panel()) == same  # the same data and config
    feature = synthetic_panel()
    feature.raw[5, 1] += 1e-3
    label = synthetic_panel()
    label.frame.loc[7, "fwd_ret_5d"] += 1e-6
    assert len({same, fingerprint(feature), fingerprint(label)}) == 3
    assert fingerprint(synthetic_panel(), load_config(tiny_config(seed=8))) != same


def test_the_refits_training_curve_is_logged_one_step_per_entry(tmp_path: Path) -> None:
    """A network's epochs or an RL agent's validation rounds (with SB3's logger values) become
    MLflow metric series `refit/<key>` of the training run."""
    import mlflow
    from mlflow import MlflowClient

    from ml.train import _log_history

    class Fitted:
        history = [
            {"valid_return": 0.001, "train/loss": 2.0, "note": "text"},
            {"valid_return": 0.003, "train/loss": 1.5, "rollout/ep_rew_mean": float("nan")},
        ]

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    try:
        experiment = mlflow.set_experiment("refit_curve")  # not an earlier test's active one
        with mlflow.start_run(experiment_id=experiment.experiment_id) as run:
            _log_history(Fitted())
            _log_history(object())  # a model without a history: nothing, no error
        client = MlflowClient(uri)
        curve = client.get_metric_history(run.info.run_id, "refit/valid_return")
        assert [(m.step, m.value) for m in curve] == [(0, 0.001), (1, 0.003)]
        loss = client.get_metric_history(run.info.run_id, "refit/train/loss")
        assert [m.value for m in loss] == [2.0, 1.5]
        assert set(client.get_run(run.info.run_id).data.metrics) == {
            "refit/valid_return",
            "refit/train/loss",
        }
    finally:
        mlflow.set_tracking_uri(None)
