"""Score the latest trading day with the champion and publish signals.daily_signals.

The champion is loaded through ml.inference (the contract shared with the API): it receives
each symbol's last `lookback` trading days of its features up to the day scored, read here from
`marts.features_daily` (symbols out of `marts.universe_daily` on that day are not scored).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date

import pandas as pd
from psycopg2.extras import execute_values

from core.db import connect
from core.settings import Settings, get_settings
from ml.data.handler import read_sql, table_exists
from ml.data.lookback import read_lookback
from ml.inference import Champion, load_champion, score_rows
from ml.registry.provenance import database_lookup

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


def latest_day(database_url: str, as_of: date | None = None) -> date | None:
    query = "select max(trade_date) as day from marts.features_daily"
    frame = read_sql(database_url, query + (" where trade_date <= %s" if as_of else ""),
                     (as_of,) if as_of else ())  # fmt: skip
    day = frame["day"].iloc[0]
    return None if day is None or pd.isna(day) else day


def history(database_url: str, features: list[str], lookback: int, day: date) -> pd.DataFrame:
    """Each symbol's last `lookback` rows up to `day` (symbols that trade on `day` only, in the
    universe when there is one), sorted by symbol then date: the input the champion's contract
    asks for."""
    universe = table_exists(database_url, "marts.universe_daily")
    with connect(database_url) as conn:
        return read_lookback(conn, features, lookback, day=day, universe=universe)[1]


def score_day(database_url: str, champion: Champion, day: date) -> pd.DataFrame:
    """(symbol, trade_date, score) of every symbol the champion can score on `day`."""
    frame = history(database_url, champion.features, champion.lookback, day)
    return score_rows(champion, frame, day)


def score_latest(
    database_url: str, settings: Settings | None = None, as_of: date | None = None
) -> ScoreResult:
    settings = settings or get_settings()
    # The champion's digest is checked against the promotion recorded in this database.
    champion = load_champion(settings, database_lookup(database_url))
    if champion is None:
        raise NoChampionError(
            f"model {settings.mlflow.model_name!r} has no @champion yet: run training first"
        )
    day = latest_day(database_url, as_of)
    if day is None:
        raise ValueError("no feature rows to score: build the features first")
    scored = score_day(database_url, champion, day)
    if scored.empty:
        raise ValueError(f"no symbol has {champion.lookback} days of features up to {day}")
    signals = to_signals(day, scored["symbol"], scored["score"])
    rows = [
        (
            day,
            symbol,
            float(score),
            int(rank),
            signal,
            champion.name,
            champion.version,
            champion.run_id,
        )  # fmt: skip
        for symbol, score, rank, signal in zip(
            signals["symbol"], signals["score"], signals["rank"], signals["signal"], strict=True
        )
    ]
    with connect(database_url) as conn, conn.cursor() as cur:
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
    log.info("published %d signals for %s from %s v%s", len(rows), day, champion.name,
             champion.version)  # fmt: skip
    return ScoreResult(day, len(rows), champion.name, champion.version, champion.run_id)
