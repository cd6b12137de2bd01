"""The dbt descriptions reach PostgreSQL (persist_docs): an analyst's `\\d+` or SQL client shows
what each mart and column means without the dbt project at hand (issue 16)."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.helpers import query

DBT = Path(__file__).resolve().parents[2] / "dbt"


def _documented(model: str) -> tuple[str, dict[str, str]]:
    for path in (DBT / "models").rglob("*.yml"):
        for entry in (yaml.safe_load(path.read_text()) or {}).get("models", []):
            if entry["name"] == model:
                columns = {c["name"]: c["description"].strip() for c in entry.get("columns", [])
                           if c.get("description")}  # fmt: skip
                return entry["description"].strip(), columns
    raise AssertionError(f"{model} is not documented")


def test_marts_and_their_columns_carry_the_dbt_descriptions(market_url: str) -> None:
    for model in ("features_daily", "labels_daily", "universe_daily"):
        description, columns = _documented(model)
        [(comment,)] = query(market_url, "select obj_description(%s::regclass, 'pg_class')",
                             (f"marts.{model}",))  # fmt: skip
        assert comment is not None and comment.split() == description.split(), model
        commented = dict(query(market_url, """
            select a.attname, col_description(a.attrelid, a.attnum)
            from pg_attribute a
            where a.attrelid = %s::regclass and a.attnum > 0 and not a.attisdropped
        """, (f"marts.{model}",)))  # fmt: skip
        assert columns, model
        missing = {c for c, text in commented.items() if text is None}
        assert missing == set(), f"{model}: columns without a comment: {sorted(missing)[:10]}"
        some = next(iter(columns))
        assert commented[some].split() == columns[some].split()
