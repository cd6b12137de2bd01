"""The small inference module: load the champion and score symbols on a date.

Used by batch scoring (ml.scoring) and by the API's on-demand endpoint, so it imports neither
torch nor training code at module level; loading a champion imports what its flavour needs.

Contract of a packaged MarketFlow model (an MLflow pyfunc, see ml.pyfunc):
- input: a long frame with `symbol`, `trade_date` and the model's feature columns, holding for
  each symbol its last `lookback` trading days up to the day to score (1 for tabular models,
  L for sequence models), sorted by symbol then date;
- output: one score per input row; rows without a full look-back window score NaN.
The model version carries `lookback` and `features` on its champion card (ml.registry.card), so
a caller knows what to read before it loads the model.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from core.settings import Settings, get_settings
from ml.registry.card import card_from_version, champion_version
from ml.registry.provenance import DigestLookup, database_lookup, verified_model_dir
from ml.registry.tracking import configure, reader_identity


@dataclass(frozen=True)
class Champion:
    name: str
    version: str
    run_id: str
    features: list[str]
    lookback: int
    model: Any  # mlflow.pyfunc.PyFuncModel


def load_champion(
    settings: Settings | None = None,
    lookup: DigestLookup | None = None,
    cache_dir: Path | None = None,
) -> Champion | None:
    """The model behind `models:/<name>@champion`, or None when there is no champion yet.

    Loaded only from a local copy whose digest matches the one recorded when the promotion
    gate promoted it (`ml.registry.provenance`; `lookup` reads it, by default from the
    settings' database): `ChampionRefused` otherwise, before anything is unpickled."""
    import mlflow

    settings = settings or get_settings()
    with reader_identity(settings):
        version = champion_version(configure(settings), settings.mlflow.model_name)
        if version is None:
            return None
        lookup = lookup or database_lookup(settings.db.url)
        root = cache_dir or settings.data_dir / "champions"
        root.mkdir(parents=True, exist_ok=True)
        # The verified copy is loaded and then removed: the whole model is in its pickle.
        with tempfile.TemporaryDirectory(prefix=f"v{version.version}_", dir=root) as dst:
            name, number = settings.mlflow.model_name, str(version.version)
            local = verified_model_dir(name, number, lookup, Path(dst))
            model = mlflow.pyfunc.load_model(str(local))
    python_model = _python_model(model)
    card = card_from_version(version)
    features = list(getattr(python_model, "features", None) or card.features)
    lookback = int(getattr(python_model, "lookback", None) or card.lookback or 1)
    return Champion(
        name=settings.mlflow.model_name,
        version=str(version.version),
        run_id=str(version.run_id),
        features=features,
        lookback=max(1, lookback),
        model=model,
    )


def _python_model(model: Any) -> Any:
    try:
        return model.unwrap_python_model()
    except Exception:  # not a python_model flavour: fall back to the champion card
        return None


def score_rows(champion: Champion, frame: pd.DataFrame, day: date | None = None) -> pd.DataFrame:
    """Scores of `frame`'s rows on `day` (default: its last date), as (symbol, trade_date, score).

    `frame` holds the look-back history the model needs (see the module contract); rows that
    cannot be scored (NaN) are dropped.
    """
    if frame.empty:
        return pd.DataFrame(columns=["symbol", "trade_date", "score"])
    frame = frame.sort_values(["symbol", "trade_date"]).reset_index(drop=True)
    scores = champion.model.predict(frame[["symbol", "trade_date", *champion.features]])
    out = frame[["symbol", "trade_date"]].assign(score=pd.Series(scores).to_numpy(dtype=float))
    day = day or out["trade_date"].max()
    out = out[(out["trade_date"] == day) & out["score"].notna()]
    return out.reset_index(drop=True)


__all__ = ["Champion", "load_champion", "score_rows"]
