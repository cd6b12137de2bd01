"""The dbt catalogue: what the dbt YAML (and, once built, the manifest) says about a model's
columns. One reader, one rule, for the feature suite, the training data and the docs.

A column's `meta` is read from both places dbt accepts it (`meta:` and `config: meta:`), the
latter winning. A features_daily column is a feature unless its meta says `feature: false`.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from core.settings import DBT_PROJECT_DIR, get_settings

Meta = dict[str, Any]


def column_meta(column: dict[str, Any]) -> Meta:
    return {**(column.get("meta") or {}), **((column.get("config") or {}).get("meta") or {})}


@cache
def _yaml_columns(model: str, models_dir: Path) -> dict[str, Meta]:
    import yaml

    out: dict[str, Meta] = {}
    for path in sorted(models_dir.rglob("*.yml")):
        doc = yaml.safe_load(path.read_text()) or {}
        for node in doc.get("models") or []:
            if node.get("name") == model:
                for column in node.get("columns") or []:
                    out[column["name"]] = column_meta(column)
    return out


def _manifest_columns(model: str, target: Path) -> dict[str, Meta]:
    manifest = target / "manifest.json"
    if not manifest.exists():
        return {}
    try:
        nodes = json.loads(manifest.read_text()).get("nodes", {})
    except (OSError, ValueError):
        return {}
    for node in nodes.values():
        if node.get("resource_type") == "model" and node.get("name") == model:
            return {name: column_meta(col) for name, col in node.get("columns", {}).items()}
    return {}


def model_columns(model: str, *, target: Path | None = None) -> dict[str, Meta]:
    """`model`'s documented columns in YAML order, each with its meta. The repository's YAML is
    always read; a built manifest (under `target`, default the settings' dbt target) adds
    columns documented elsewhere (e.g. by a package)."""
    columns = dict(_yaml_columns(model, DBT_PROJECT_DIR / "models"))
    manifest = _manifest_columns(model, target or get_settings().dbt.target)
    for name, meta in manifest.items():
        columns[name] = {**columns.get(name, {}), **meta}
    return columns


def feature_catalogue(*, target: Path | None = None) -> dict[str, Meta]:
    """features_daily's columns that are features, with their meta (ranges, warm-ups)."""
    return {
        name: meta
        for name, meta in model_columns("features_daily", target=target).items()
        if meta.get("feature", True) is not False
    }


def non_feature_columns(*, target: Path | None = None) -> set[str]:
    """features_daily's columns that dbt marks `meta: {feature: false}` (e.g. close_price)."""
    return {
        name
        for name, meta in model_columns("features_daily", target=target).items()
        if meta.get("feature") is False
    }
