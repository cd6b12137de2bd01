"""ml/registry/card.py: the one reader and writer of a registered version's metadata."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from types import SimpleNamespace

from ml.registry.card import (
    VERSION_METRICS,
    card_from_version,
    card_tags,
    logged_model_id,
    version_metric_values,
    write_card,
)

TAGS = card_tags(
    model="lstm_attention",
    label="fwd_ret_5d",
    label_horizon=5,
    lookback=20,
    features=["ret_1d", "vol_20d"],
    train_start=date(2005, 1, 3),
    train_end=date(2012, 6, 29),
    test_start=date(2008, 1, 2),
    test_end=date(2013, 3, 1),
    folds="abc123",
    gate_metric="rank_ic",
    model_spec={"class": "lstm_attention", "kwargs": {"lookback": 20}},
)
METRICS = version_metric_values(
    {"rank_ic": 0.0312345678, "sharpe": 0.91, "not_kept": 1.0, "ic": float("nan")}
)


def version(tags: dict[str, str]) -> SimpleNamespace:
    return SimpleNamespace(
        name="signal", version="3", run_id="r1", tags=tags, creation_timestamp=1_700_000_000_000
    )


def run(params: dict[str, str], metrics: dict[str, float]) -> SimpleNamespace:
    return SimpleNamespace(
        data=SimpleNamespace(params=params, metrics=metrics),
        info=SimpleNamespace(experiment_id="7"),
    )


def test_written_tags_read_back_as_the_same_card() -> None:
    card = card_from_version(version(TAGS), metrics=METRICS)

    assert (card.name, card.version, card.run_id) == ("signal", "3", "r1")
    assert (card.model, card.label, card.label_horizon, card.lookback) == (
        "lstm_attention", "fwd_ret_5d", 5, 20,
    )  # fmt: skip
    assert card.features == ("ret_1d", "vol_20d")
    assert card.reference_window == (date(2005, 1, 3), date(2012, 6, 29))
    assert (card.test_start, card.test_end) == (date(2008, 1, 2), date(2013, 3, 1))
    assert card.folds == "abc123" and card.gate_metric == "rank_ic"
    assert card.model_spec == {"class": "lstm_attention", "kwargs": {"lookback": 20}}
    # Tags are lineage: no metric among them. The metrics kept are the finite ones a card names.
    assert not [key for key in TAGS if key.startswith("metric")]
    assert card.metrics == {"rank_ic": 0.0312345678, "sharpe": 0.91}
    assert set(card.metrics) <= set(VERSION_METRICS)
    assert card.registered_at_ms == 1_700_000_000_000 and card.experiment_id is None


def test_a_version_without_tags_falls_back_to_its_runs_params() -> None:
    params = {"train_start": "2001-01-02", "train_end": "2004-12-31", "test_end": "2006-01-03",
              "label": "fwd_ret_1d"}  # fmt: skip
    card = card_from_version(version({"model": "ridge"}), run(params, {"rank_ic": 0.02}))

    assert card.model == "ridge" and card.label == "fwd_ret_1d"
    assert card.reference_window == (date(2001, 1, 2), date(2004, 12, 31))
    assert card.test_end == date(2006, 1, 3) and card.test_start is None
    assert card.lookback is None and card.features == () and card.model_spec is None
    assert card.metrics == {} and card.run_metrics == {"rank_ic": 0.02}
    assert card.experiment_id == "7"


def test_write_card_sets_every_tag_on_the_version() -> None:
    calls: list[tuple[str, str, str, str]] = []
    client = SimpleNamespace(set_model_version_tag=lambda *args: calls.append(args))

    write_card(client, "signal", "3", TAGS)

    assert calls == [("signal", "3", key, value) for key, value in TAGS.items()]


def test_the_card_module_imports_nothing_heavy() -> None:
    code = (
        "import sys, ml.registry.card; "
        "print(sorted(m for m in ('mlflow', 'torch', 'pandas', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_an_older_version_keeps_its_metrics_in_tags() -> None:
    tags = {"model": "ridge", "metric.rank_ic": "0.0123", "metric.sharpe": "x"}
    assert card_from_version(version(tags)).metrics == {"rank_ic": 0.0123}
    # The logged model's metrics win over a tag of the same name.
    assert card_from_version(version(tags), metrics={"rank_ic": 0.02}).metrics == {"rank_ic": 0.02}


def test_the_logged_model_of_a_version() -> None:
    def of(source: str, model_id: str | None = None) -> str | None:
        return logged_model_id(SimpleNamespace(source=source, model_id=model_id))

    assert of("models:/m-0123abc") == "m-0123abc"
    assert of("models:/m-0123abc", model_id="m-other") == "m-other"
    assert of("runs:/abc/model") is None and of("models:/signal/3") is None
    assert of("s3://bucket/m-1") is None and of("") is None
