"""The training config: pydantic models validated when the YAML is read.

A typo in a key fails at load with the key's path (`walk_forward.tets_days: Extra inputs are
not permitted`), not at fold 3. `models.yaml` (the demo zoo) and `full.yaml` (a GPU worker)
live beside this module; a model is `{class, kwargs}`, its kwargs checked by its constructor.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

DEFAULT_CONFIG = Path(__file__).parent / "models.yaml"
DEFAULT_LABEL = "fwd_ret_5d"
DEFAULT_GATE_METRIC = "rank_ic"

# `"robust_zscore"` or `{"fillna": {"value": 0}}`
ProcessorSpec = str | dict[str, dict[str, Any] | None]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSpec(_Strict):
    """`class`: a key of ml.models.REGISTRY or `package.module:Class`; `kwargs` go to its
    constructor (neural models also take the trainer's options)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    class_: str = Field(alias="class")
    kwargs: dict[str, Any] = Field(default_factory=dict)
    # Fit on the label recast per day across symbols (ml/data/labels.py); None: the raw label.
    label_processor: Literal["cs_zscore", "cs_rank"] | None = None

    @field_validator("kwargs", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value

    def as_dict(self) -> dict[str, Any]:
        """The spec as the YAML writes it (and as the registry's `model_spec` tag keeps it)."""
        spec: dict[str, Any] = {"class": self.class_, "kwargs": dict(self.kwargs)}
        if self.label_processor is not None:
            spec["label_processor"] = self.label_processor
        return spec

    def fingerprint(self) -> str:
        return json.dumps(self.as_dict(), sort_keys=True)


class WalkForwardConfig(_Strict):
    mode: Literal["expanding", "rolling"] = "expanding"
    train_days: int = 756
    valid_days: int = 126
    test_days: int = 252
    step_days: int | None = None  # default: test_days (back-to-back test windows)
    gap_days: int | None = None  # default: the label horizon; never less
    max_folds: int | None = None  # keep the most recent folds


class BacktestConfig(_Strict):
    """The strategy the backtest, the tear sheet and the gate judge a model by.

    strategy: `topk` (equal weights on the k best scores), `topk_dropout` (Qlib's TopkDropout:
    hold k, replace at most n_drop a day) or `long_short` (k best long, k worst short).
    """

    strategy: Literal["topk", "topk_dropout", "long_short"] | None = None  # default: n_drop
    top_k: int = Field(default=2, ge=1)
    # TopkDropout: hold top_k names, replace at most n_drop a day; None: rebuild the top k
    # every day.
    n_drop: int | None = Field(default=None, ge=0)
    rebalance_days: int = Field(default=1, ge=1)  # trade every N days, hold in between
    score_halflife: float | None = Field(default=None, gt=0)  # EWMA of each symbol's score
    cost_bps: float = Field(default=10.0, ge=0)  # per side, unless buy/sell costs are set
    buy_cost_bps: float | None = Field(default=None, ge=0)
    sell_cost_bps: float | None = Field(default=None, ge=0)
    min_cost: float = Field(default=0.0, ge=0)  # per trade, in currency, on `capital`
    capital: float = Field(default=1_000_000.0, gt=0)
    max_names_traded: int | None = Field(default=None, ge=1)  # buys and sells a day, each
    benchmark_symbol: str | None = None  # a second benchmark: a symbol of the data

    @model_validator(mode="after")
    def _consistent(self) -> BacktestConfig:
        if self.strategy == "topk_dropout" and self.n_drop is None:
            raise ValueError("strategy topk_dropout needs n_drop (names replaced a day)")
        if self.strategy in ("topk", "long_short") and self.n_drop is not None:
            raise ValueError(f"n_drop is a topk_dropout option, not one of {self.strategy}")
        return self

    @property
    def kind(self) -> str:
        return self.strategy or ("topk" if self.n_drop is None else "topk_dropout")

    @property
    def buy_bps(self) -> float:
        return self.cost_bps if self.buy_cost_bps is None else self.buy_cost_bps

    @property
    def sell_bps(self) -> float:
        return self.cost_bps if self.sell_cost_bps is None else self.sell_cost_bps

    def scaled_costs(self, factor: float) -> BacktestConfig:
        """The same strategy at `factor` times its costs (stress tests)."""
        return self.model_copy(
            update={
                "cost_bps": self.cost_bps * factor,
                "buy_cost_bps": None if self.buy_cost_bps is None else self.buy_cost_bps * factor,
                "sell_cost_bps": None
                if self.sell_cost_bps is None
                else self.sell_cost_bps * factor,
                "min_cost": self.min_cost * factor,
            }
        )

    def describe(self) -> str:
        """One line for reports: `TopkDropout(50, 5), 5/15 bps, daily`."""
        name = {
            "topk": f"Top{self.top_k}",
            "topk_dropout": f"TopkDropout({self.top_k}, {self.n_drop or 0})",
            "long_short": f"LongShort({self.top_k})",
        }[self.kind]
        costs = (
            f"{self.buy_bps:g} bps a side"
            if self.buy_bps == self.sell_bps
            else f"{self.buy_bps:g}/{self.sell_bps:g} bps buy/sell"
        )
        every = "daily" if self.rebalance_days == 1 else f"every {self.rebalance_days} days"
        extra = [f"score half-life {self.score_halflife:g} d"] if self.score_halflife else []
        extra += [f"min cost {self.min_cost:g}"] if self.min_cost else []
        extra += [f"<= {self.max_names_traded} names/side/day"] if self.max_names_traded else []
        return ", ".join([name, costs, every, *extra])


class GateConfig(_Strict):
    metric: str = DEFAULT_GATE_METRIC
    min_coverage: float = 0.9
    # Besides `metric`: the configured strategy's excess annual return over the equal-weight
    # benchmark, after costs, must exceed this (None: not required); with `excess_ci`, the
    # low end of its 95% block-bootstrap interval must.
    min_excess_return: float | None = None
    excess_ci: bool = False


class TrainingConfig(_Strict):
    label: str = DEFAULT_LABEL
    seed: int = 0
    features: list[str] | None = None  # default: discovered from marts.features_daily
    processors: list[ProcessorSpec] | None = None  # default: robust_zscore, fillna
    walk_forward: WalkForwardConfig = Field(default_factory=WalkForwardConfig)
    final_valid_days: int = 126
    backtest: BacktestConfig = Field(default_factory=BacktestConfig)
    selection_metric: str | None = None  # default: the gate's metric
    gate: GateConfig = Field(default_factory=GateConfig)
    max_abs_feature_corr: float = 0.3
    models: dict[str, ModelSpec]

    @field_validator("processors")
    @classmethod
    def _known_processors(cls, value: list[ProcessorSpec] | None) -> list[ProcessorSpec] | None:
        from ml.data.processors import PROCESSORS

        for spec in value or []:
            if isinstance(spec, dict) and len(spec) != 1:
                raise ValueError(f"a processor is a name or {{name: kwargs}}, not {spec}")
            name = spec if isinstance(spec, str) else next(iter(spec))
            if name not in PROCESSORS:
                raise ValueError(f"unknown processor {name!r} ({', '.join(PROCESSORS)})")
        return value

    @field_validator("models")
    @classmethod
    def _some_models(cls, value: dict[str, ModelSpec]) -> dict[str, ModelSpec]:
        if not value:
            raise ValueError("no models configured")
        return value

    @property
    def selection(self) -> str:
        return self.selection_metric or self.gate.metric

    def as_dict(self) -> dict[str, Any]:
        """The config as YAML would write it (logged with the run)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    def with_models(self, models: Mapping[str, ModelSpec], **changes: Any) -> TrainingConfig:
        return self.model_copy(update={"models": dict(models), **changes})


class ConfigError(ValueError):
    """A training config that does not validate; the message names each bad key's path."""


def parse_config(data: Any, source: str = "config") -> TrainingConfig:
    try:
        return TrainingConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"{source}: {problems}") from None


def load_config(path: Path | str = DEFAULT_CONFIG) -> TrainingConfig:
    return parse_config(yaml.safe_load(Path(path).read_text()), str(path))
