"""The API's schemas, declared once: they parse and check every route's arguments (a bad one
is a 400 whose `detail` is the message below) and they are the OpenAPI document's schemas.

The query-string fields are stricter than marshmallow's own (`int()` takes " 5", "1_000" and
"٥"; marshmallow's Date takes "2024-3-1"): the API accepts exactly what the document says.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, pre_load, validate

SIGNAL_VALUES = ("long", "short", "neutral")
MAX_LIMIT = 1000
MAX_SYMBOLS = 500
MAX_SCORE_SYMBOLS = 100
MAX_PAGE = 1_000_000
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100
SYMBOL_PATTERN = r"[A-Za-z0-9][A-Za-z0-9.\-_^=]{0,19}"
# A model name: 1 to 200 characters, not all blank, no NUL (Postgres text cannot hold it).
MODEL_PATTERN = r"^[^\x00]*[^\x00\s][^\x00]*$"
UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"

_SYMBOL = re.compile(SYMBOL_PATTERN)
_DIGITS = re.compile(r"[0-9]{1,9}")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_SIGNAL_CHOICES = ", ".join(SIGNAL_VALUES)


def _verbatim(message: str) -> str:
    """marshmallow formats field and validator messages (`{input}`): keep a pattern's braces."""
    return message.replace("{", "{{").replace("}", "}}")


class FullMatch(validate.Regexp):
    """`validate.Regexp` matches at the start only, and `$` lets a trailing newline through."""

    def __call__(self, value: Any) -> Any:
        if self.regex.fullmatch(value) is None:
            raise ValidationError(self._format_error(value))
        return value


class QueryInteger(fields.Integer):
    """Digits only, as an integer from `low` to `high`."""

    def __init__(self, name: str, low: int, high: int, **kwargs: Any) -> None:
        message = f"{name} must be an integer from {low} to {high}"
        super().__init__(
            validate=validate.Range(low, high, error=message),
            error_messages={"invalid": message},
            **kwargs,
        )

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if not isinstance(value, str) or not _DIGITS.fullmatch(value):
            raise self.make_error("invalid")
        return int(value)


class QueryDate(fields.Date):
    """YYYY-MM-DD, a real date."""

    def __init__(self, name: str, **kwargs: Any) -> None:
        super().__init__(error_messages={"invalid": f"{name} must be a date YYYY-MM-DD"}, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> date:
        if not isinstance(value, str) or not _DATE.fullmatch(value):
            raise self.make_error("invalid")
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise self.make_error("invalid") from None


class SymbolList(fields.Field[list[str]]):
    """`A,B,C` → ["A", "B", "C"]: 1 to MAX_SYMBOLS symbols, duplicates dropped, order kept."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            error_messages={
                "invalid": _verbatim(
                    f"symbols must be 1 to {MAX_SYMBOLS} comma-separated symbols "
                    f"matching {SYMBOL_PATTERN}"
                )
            },
            metadata={
                "type": "string",
                "description": f"Comma-separated symbols (at most {MAX_SYMBOLS})",
                "pattern": f"^{SYMBOL_PATTERN}(,{SYMBOL_PATTERN})*$",
            },
            **kwargs,
        )

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[str]:
        if not isinstance(value, str) or not value.strip():
            raise self.make_error("invalid")
        symbols = [s.strip().upper() for s in value.split(",")]  # stored upper-case
        if len(symbols) > MAX_SYMBOLS or not all(_SYMBOL.fullmatch(s) for s in symbols):
            raise self.make_error("invalid")
        return list(dict.fromkeys(symbols))


def model_field() -> fields.String:
    message = "model must be 1 to 200 characters"
    return fields.String(
        validate=[validate.Length(1, 200, error=message), FullMatch(MODEL_PATTERN, error=message)],
        metadata={
            "description": "A registered model name (default: the model that scored the latest day)"
        },
    )


# --- arguments --------------------------------------------------------------------------------


class ConditionalHeadersSchema(Schema):
    if_none_match = fields.String(data_key="If-None-Match")
    if_modified_since = fields.String(data_key="If-Modified-Since")


class LatestSignalsArgsSchema(Schema):
    symbols = SymbolList()
    side = fields.String(
        validate=validate.OneOf(SIGNAL_VALUES, error=f"side must be one of: {_SIGNAL_CHOICES}")
    )
    limit = QueryInteger("limit", 1, MAX_LIMIT)
    model = model_field()

    @pre_load
    def accept_signal_for_side(self, data: Mapping[str, Any], **kwargs: Any) -> dict[str, Any]:
        """`signal=` is the first name of `side` (undocumented, still accepted): both at once
        must agree."""
        values = {key: data[key] for key in data}
        if "signal" not in values:
            return values
        sides = {n: values[n] for n in ("side", "signal") if n in values}
        for name, raw in sides.items():
            if raw not in SIGNAL_VALUES:
                raise ValidationError(f"{name} must be one of: {_SIGNAL_CHOICES}", name)
        if len(set(sides.values())) > 1:
            raise ValidationError("side and signal disagree", "side")
        values["side"] = values.pop("signal")
        return values


class SymbolPathSchema(Schema):
    symbol = fields.String(
        required=True,
        validate=FullMatch(
            f"^{SYMBOL_PATTERN}$", error=_verbatim(f"symbol must match {SYMBOL_PATTERN}")
        ),
        metadata={"description": "Any case: symbols are stored upper-case (aapl is AAPL)"},
    )

    @post_load
    def upper_case(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return {**data, "symbol": data["symbol"].upper()}


class SymbolSignalsArgsSchema(Schema):
    # start after end is an empty window, not an error: OpenAPI cannot say it is invalid.
    start = QueryDate("start")
    end = QueryDate("end")
    page = QueryInteger("page", 1, MAX_PAGE, load_default=1)
    page_size = QueryInteger("page_size", 1, MAX_PAGE_SIZE, load_default=DEFAULT_PAGE_SIZE)
    model = model_field()


class ModelArgsSchema(Schema):
    model = model_field()


class DriftRunPathSchema(Schema):
    run_id = fields.String(
        required=True,
        validate=FullMatch(UUID_PATTERN, error="run_id must be a UUID"),
        metadata={"format": "uuid"},
    )


class ReportLinkArgsSchema(Schema):
    token = fields.String(
        validate=validate.Length(min=1, max=500, error="token must be 1 to 500 characters"),
        metadata={"description": "a signed link's token (`report_link` of /drift/latest): "
                                 "opens this report without a key until it expires"},
    )  # fmt: skip


_SCORE_BODY = 'the body must be a JSON object {"symbols": ["AAPL", ...]}'
_SCORE_SYMBOLS = _verbatim(
    f"symbols must be a list of 1 to {MAX_SCORE_SYMBOLS} symbols matching {SYMBOL_PATTERN}"
)


class ScoreRequestSchema(Schema):
    # The schema's own messages are used as they are; the fields' are formatted.
    error_messages = {"type": _SCORE_BODY, "unknown": _SCORE_BODY}

    symbols = fields.List(
        fields.String(
            validate=FullMatch(f"^{SYMBOL_PATTERN}$", error=_SCORE_SYMBOLS),
            error_messages={"invalid": _SCORE_SYMBOLS},
        ),
        required=True,
        validate=validate.Length(1, MAX_SCORE_SYMBOLS, error=_SCORE_SYMBOLS),
        error_messages={
            "invalid": _SCORE_SYMBOLS,
            "required": _verbatim(_SCORE_BODY),
            "null": _SCORE_SYMBOLS,
        },
    )

    @post_load
    def upper_case(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return {**data, "symbols": [symbol.upper() for symbol in data["symbols"]]}


# --- responses --------------------------------------------------------------------------------


class ErrorSchema(Schema):
    error = fields.String(required=True, metadata={"description": "A short code: not_found"})
    detail = fields.String(required=True, metadata={"description": "What went wrong, for people"})


class HealthSchema(Schema):
    status = fields.String(required=True)
    database = fields.String(required=True)


class SignalSchema(Schema):
    trade_date = fields.Date(required=True)
    symbol = fields.String(required=True)
    score = fields.Float(required=True, allow_none=True)
    rank = fields.Integer(required=True)
    signal = fields.String(required=True, validate=validate.OneOf(SIGNAL_VALUES))
    model_name = fields.String(required=True)
    model_version = fields.String(required=True)


class LatestSignalsSchema(Schema):
    trade_date = fields.Date(required=True)
    count = fields.Integer(required=True)
    signals = fields.List(fields.Nested(SignalSchema), required=True)
    unknown_symbols = fields.List(
        fields.String(),
        metadata={"description": "Asked-for symbols without a signal that day (with `symbols`)"},
    )


class SymbolSignalsSchema(Schema):
    symbol = fields.String(required=True)
    model_name = fields.String(required=True)
    page = fields.Integer(required=True)
    page_size = fields.Integer(required=True)
    total = fields.Integer(required=True)
    has_more = fields.Boolean(required=True)
    signals = fields.List(fields.Nested(SignalSchema), required=True)


class ModelCardSchema(Schema):
    name = fields.String(required=True)
    version = fields.String(required=True)
    run_id = fields.String(required=True)
    model = fields.String(allow_none=True)
    label = fields.String(allow_none=True)
    label_horizon = fields.Integer(allow_none=True)
    lookback = fields.Integer(allow_none=True)
    features = fields.List(fields.String())
    trained_window = fields.Dict(required=True)
    test_window = fields.Dict()
    metrics = fields.Dict(keys=fields.String(), values=fields.Float(), required=True)
    registered_at = fields.String(allow_none=True)
    mlflow_run_url = fields.String(allow_none=True)
    equity_curve_url = fields.String(allow_none=True)
    tear_sheet_url = fields.String(allow_none=True)
    registry_reachable = fields.Boolean()


class ScoreSchema(Schema):
    symbol = fields.String(required=True)
    score = fields.Float(required=True)


class ScoresSchema(Schema):
    model_name = fields.String(required=True)
    model_version = fields.String(required=True)
    trade_date = fields.Date(required=True)
    scores = fields.List(fields.Nested(ScoreSchema), required=True)
    unscored_symbols = fields.List(fields.String(), required=True)


class DriftStatusSchema(Schema):
    drift = fields.Dict(required=True, allow_none=True)
    live_quality = fields.Dict(required=True, allow_none=True)
    last_retrain_request = fields.Dict(required=True, allow_none=True)
