"""Small helpers shared by test modules (imported as `tests.helpers`)."""

from __future__ import annotations

from typing import Any

import psycopg2


def query(url: str, sql: str, params: Any = None) -> list[tuple]:
    """All rows of one statement (none for a statement without a result), committed, on a
    connection of its own."""
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        rows = cur.fetchall() if cur.description else []
    conn.close()
    return rows


def asset_events(asset_name: str) -> int:
    """Asset events recorded so far in this session's Airflow metadata database."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    with create_session() as session:
        return session.scalar(
            select(func.count())
            .select_from(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.name == asset_name)
        )
