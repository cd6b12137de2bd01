"""ml/scoring.py: ranking into signals, and the champion publishing signals.daily_signals."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import psycopg2
import pytest

from core.settings import Settings
from ml.data.handler import FEATURES, load_frame, load_panel
from ml.inference import load_champion, score_rows
from ml.registry.card import CHAMPION
from ml.registry.provenance import database_lookup
from ml.scoring import NoChampionError, score_latest, to_signals
from ml.train import train

# --- to_signals ----------------------------------------------------------------------------

DAY = date(2024, 3, 1)


def test_to_signals_ranks_by_score_and_splits_into_thirds() -> None:
    symbols = pd.Series(["A", "B", "C", "D", "E", "F"])
    scores = pd.Series([0.1, 0.5, -0.2, 0.3, 0.0, -0.4])

    out = to_signals(DAY, symbols, scores)

    assert out["symbol"].tolist() == ["B", "D", "A", "E", "C", "F"]
    assert out["rank"].tolist() == [1, 2, 3, 4, 5, 6]
    assert out["signal"].tolist() == ["long", "long", "neutral", "neutral", "short", "short"]
    assert (out["trade_date"] == DAY).all()
    assert out["score"].tolist() == sorted(scores, reverse=True)


def test_to_signals_breaks_ties_by_order_and_keeps_ranks_unique() -> None:
    out = to_signals(DAY, pd.Series(["A", "B", "C", "D"]), pd.Series([1.0, 2.0, 1.0, 0.0]))

    assert out["rank"].tolist() == [1, 2, 3, 4]
    assert out["symbol"].tolist() == ["B", "A", "C", "D"]
    assert out["signal"].tolist() == ["long", "neutral", "neutral", "short"]


def test_to_signals_takes_no_side_with_fewer_than_three_names() -> None:
    out = to_signals(DAY, pd.Series(["A", "B"]), pd.Series([0.2, -0.1]))

    assert out["rank"].tolist() == [1, 2]
    assert out["signal"].tolist() == ["neutral", "neutral"]


# --- score_latest --------------------------------------------------------------------------


def published(database_url: str, model_name: str) -> pd.DataFrame:
    with psycopg2.connect(database_url) as conn, conn.cursor() as cur:
        cur.execute(
            "select trade_date, symbol, score, rank, signal, model_version, mlflow_run_id"
            " from signals.daily_signals where model_name = %s order by trade_date, rank",
            (model_name,),
        )
        columns = [d.name for d in cur.description]
        rows = cur.fetchall()
    conn.close()
    return pd.DataFrame(rows, columns=columns)


def test_champion_scores_the_latest_date_and_a_rerun_upserts(
    market_url: str, market_symbols: list[str], ml_settings: Settings, mlflow_client, tiny_config
) -> None:
    trained = train(market_url, config_path=tiny_config())
    champion = mlflow_client.get_model_version_by_alias(ml_settings.mlflow.model_name, CHAMPION)

    result = score_latest(market_url)  # settings come from the environment, as in the DAG

    latest = load_frame(market_url, FEATURES, with_label=False)["trade_date"].max()
    rows = published(market_url, ml_settings.mlflow.model_name)
    assert (result.trade_date, result.rows) == (latest, len(market_symbols))
    assert (result.model_name, result.model_version) == (
        ml_settings.mlflow.model_name,
        trained.version,
    )
    assert result.mlflow_run_id == champion.run_id == trained.run_id
    assert rows["trade_date"].tolist() == [latest] * len(market_symbols)
    assert sorted(rows["symbol"]) == sorted(market_symbols)
    assert rows["rank"].tolist() == list(range(1, len(market_symbols) + 1))
    assert rows["score"].is_monotonic_decreasing
    assert rows["signal"].tolist() == ["long", "neutral", "neutral", "short"]
    assert set(rows["model_version"]) == {str(champion.version)}
    assert set(rows["mlflow_run_id"]) == {champion.run_id}

    # The scores are the champion's predictions on each symbol's last `lookback` days, read
    # through the inference contract the API uses too.
    loaded = load_champion(ml_settings, database_lookup(market_url))
    assert loaded is not None and loaded.lookback == int(champion.tags["lookback"])
    frame, _ = load_panel(market_url, loaded.features, [])
    frame = frame.groupby("symbol").tail(loaded.lookback)
    expected = score_rows(loaded, frame, latest).set_index("symbol")["score"]
    assert rows.set_index("symbol")["score"].to_dict() == pytest.approx(expected.to_dict())

    again = score_latest(market_url)

    assert (again.trade_date, again.rows) == (result.trade_date, result.rows)
    rerun = published(market_url, ml_settings.mlflow.model_name)
    pd.testing.assert_frame_equal(rerun, rows)


def test_as_of_scores_the_last_date_on_or_before_it(
    market_url: str, market_symbols: list[str], ml_settings: Settings, tiny_config
) -> None:
    train(market_url, ml_settings, tiny_config())

    result = score_latest(market_url, ml_settings, as_of=date(2011, 7, 3))  # a Sunday

    rows = published(market_url, ml_settings.mlflow.model_name)
    assert result.trade_date == date(2011, 7, 1)
    assert rows["trade_date"].tolist() == [date(2011, 7, 1)] * len(market_symbols)


def test_scoring_without_a_registered_model_says_to_train_first(
    market_url: str, ml_settings: Settings
) -> None:
    message = rf"model '{ml_settings.mlflow.model_name}' has no @champion yet: run training first"
    with pytest.raises(NoChampionError, match=message):
        score_latest(market_url)

    assert published(market_url, ml_settings.mlflow.model_name).empty


def test_scoring_a_model_whose_champion_alias_was_removed_says_to_train_first(
    market_url: str, ml_settings: Settings, mlflow_client, tiny_config
) -> None:
    train(market_url, ml_settings, tiny_config())
    mlflow_client.delete_registered_model_alias(ml_settings.mlflow.model_name, CHAMPION)

    with pytest.raises(NoChampionError, match="has no @champion yet: run training first"):
        score_latest(market_url, ml_settings)

    assert published(market_url, ml_settings.mlflow.model_name).empty


def test_scoring_refuses_a_champion_whose_artifacts_were_swapped_and_publishes_nothing(
    market_url: str, ml_settings: Settings, tiny_config
) -> None:
    from urllib.parse import urlparse

    from mlflow import MlflowClient

    from ml.registry.provenance import ChampionRefused

    trained = train(market_url, ml_settings, tiny_config())
    before = published(market_url, ml_settings.mlflow.model_name)
    client = MlflowClient(ml_settings.mlflow.tracking_uri)
    uri = client.get_model_version_download_uri(ml_settings.mlflow.model_name, trained.version)
    pickled = next(Path(urlparse(uri).path).rglob("*.pkl"))
    pickled.write_bytes(pickled.read_bytes() + b"\0")  # any change to any artifact file

    with pytest.raises(ChampionRefused, match="recorded at promotion"):
        score_latest(market_url, ml_settings)
    pd.testing.assert_frame_equal(published(market_url, ml_settings.mlflow.model_name), before)
