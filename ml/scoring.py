"""Score the latest trading day with the champion and publish signals.daily_signals."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date

import pandas as pd
import psycopg2
from psycopg2.extras import execute_values

from marketflow.settings import Settings, get_settings
from ml.dataset import FEATURES, load_frame
from ml.tracking import CHAMPION, champion_version, configure

log = logging.getLogger(__name__)


@dataclass
class ScoreResult:
    trade_date: date
    rows: int
    model_name: str
    model_version: str
    mlflow_run_id: str


class NoChampionError(RuntimeError):
    pass


def to_signals(trade_date: date, symbols: pd.Series, scores: pd.Series) -> pd.DataFrame:
    """Rank 1 = highest score; the top third is long, the bottom third short."""
    out = pd.DataFrame({"trade_date": trade_date, "symbol": symbols.values, "score": scores.values})
    out["rank"] = out["score"].rank(ascending=False, method="first").astype(int)
    n = len(out)
    k = max(1, n // 3) if n >= 3 else 0
    out["signal"] = "neutral"
    out.loc[out["rank"] <= k, "signal"] = "long"
    out.loc[out["rank"] > n - k, "signal"] = "short"
    return out.sort_values("rank").reset_index(drop=True)


def score_latest(
    database_url: str, settings: Settings | None = None, as_of: date | None = None
) -> ScoreResult:
    import mlflow

    settings = settings or get_settings()
    client = configure(settings)
    champion = champion_version(client, settings.model_name)
    if champion is None:
        raise NoChampionError(
            f"model {settings.model_name!r} has no @champion yet: run training first"
        )
    model = mlflow.pyfunc.load_model(f"models:/{settings.model_name}@{CHAMPION}")
    frame = load_frame(database_url, FEATURES, with_label=False)
    if as_of is not None:
        frame = frame[frame["trade_date"] <= as_of]
    if frame.empty:
        raise ValueError("no complete feature rows to score: build the features first")
    day = frame["trade_date"].max()
    today = frame[frame["trade_date"] == day]
    signals = to_signals(day, today["symbol"], pd.Series(model.predict(today[FEATURES])))
    columns = (signals[c].tolist() for c in ("symbol", "score", "rank", "signal"))
    version = str(champion.version)
    rows = [
        (
            day,
            symbol,
            float(score),
            int(rank),
            signal,
            settings.model_name,
            version,
            champion.run_id,
        )
        for symbol, score, rank, signal in zip(*columns, strict=True)
    ]
    with psycopg2.connect(database_url) as conn, conn.cursor() as cur:
        execute_values(
            cur,
            """
            insert into signals.daily_signals
                (trade_date, symbol, score, rank, signal, model_name, model_version, mlflow_run_id)
            values %s
            on conflict (trade_date, symbol, model_name) do update set
                score = excluded.score, rank = excluded.rank, signal = excluded.signal,
                model_version = excluded.model_version, mlflow_run_id = excluded.mlflow_run_id,
                created_at = now()
            """,
            rows,
        )
    conn.close()
    log.info(
        "published %d signals for %s from %s v%s",
        len(rows),
        day,
        settings.model_name,
        champion.version,
    )
    return ScoreResult(day, len(rows), settings.model_name, str(champion.version), champion.run_id)
