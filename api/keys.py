"""API keys: random tokens shown once at creation; only their SHA-256 is stored.

Keys are high-entropy (32 random bytes), so a plain SHA-256 is enough: nobody can guess a
key from its hash, and the API can look a key up by its hash with one indexed query. The
API cannot read `api.api_keys` (its read-only role asks `api.active_key_id(hash)`, a SECURITY
DEFINER function, whether one hash is an active key); the CLI creates and revokes
keys as the database owner.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

import psycopg2

from core.db import connect

KEY_PREFIX = "mf_"
_NAME_MAX = 100


def hash_key(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    key_id: int
    name: str
    key_prefix: str
    created_at: datetime
    revoked_at: datetime | None


def create_key(database_url: str, name: str) -> tuple[ApiKey, str]:
    """A new key named `name`; returns it with the token, which is never stored."""
    name = name.strip()
    if not name or len(name) > _NAME_MAX:
        raise ValueError(f"a key name is 1 to {_NAME_MAX} characters")
    token = KEY_PREFIX + secrets.token_urlsafe(32)
    with connect(database_url) as conn, conn.cursor() as cur:
        try:
            cur.execute(
                """
                insert into api.api_keys (name, key_hash, key_prefix)
                values (%s, %s, %s)
                returning key_id, name, key_prefix, created_at, revoked_at
                """,
                (name, hash_key(token), token[: len(KEY_PREFIX) + 6]),
            )
        except psycopg2.errors.UniqueViolation:
            raise ValueError(f"an active key named {name!r} exists: revoke it first") from None
        row = cur.fetchone()
    assert row is not None
    return ApiKey(*row), token


def revoke_key(database_url: str, name: str) -> int:
    """Revokes the active key named `name`; returns how many were revoked (0 or 1)."""
    with connect(database_url) as conn, conn.cursor() as cur:
        cur.execute(
            "update api.api_keys set revoked_at = now() where name = %s and revoked_at is null",
            (name,),
        )
        return int(cur.rowcount)


def list_keys(database_url: str) -> list[ApiKey]:
    with connect(database_url) as conn, conn.cursor() as cur:
        cur.execute(
            "select key_id, name, key_prefix, created_at, revoked_at"
            " from api.api_keys order by key_id"
        )
        return [ApiKey(*row) for row in cur.fetchall()]
