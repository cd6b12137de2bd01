"""Provenance of a champion: the digest of its artifacts, recorded in our own database when
the promotion gate promotes it, and checked before anything loads it.

Loading an MLflow pyfunc unpickles its artifacts, so whoever can point `@champion` at a model
(or swap a file in the artifact store) could run code in scoring and in the API. MarketFlow
does not trust the registry for that: `promote` records the SHA-256 of the version's artifact
files (relative path and bytes, in path order) in `signals.model_promotions`, and
`verified_model_dir` downloads the artifacts once, hashes that local copy and hands back the
folder to load only when the digest matches the recorded one (the bytes hashed are the bytes
loaded).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

DigestLookup = Callable[[str, str], "str | None"]

RECORD = """
insert into signals.model_promotions (model_name, version, artifact_digest, run_id)
values (%s, %s, %s, %s)
on conflict (model_name, version) do update
set artifact_digest = excluded.artifact_digest, run_id = excluded.run_id, promoted_at = now()
"""
LOOKUP = """
select artifact_digest from signals.model_promotions where model_name = %s and version = %s
"""


class ChampionRefused(RuntimeError):
    """The champion's artifacts are not what the promotion gate promoted."""


def directory_digest(root: Path) -> str:
    """SHA-256 over every regular file under `root`: its relative path, then its bytes."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()


def download_model(model_name: str, version: str, dst: Path) -> Path:
    import os

    import mlflow

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # not in task logs

    return Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{model_name}/{version}", dst_path=str(dst)
        )
    )


def record_promotion(
    database_url: str, model_name: str, version: str, run_id: str, digest: str
) -> None:
    import psycopg2

    with psycopg2.connect(database_url) as conn, conn.cursor() as cur:
        cur.execute(RECORD, (model_name, version, digest, run_id))
    conn.close()


def database_lookup(database_url: str) -> DigestLookup:
    """The recorded digest of (model, version), read from `database_url`."""

    def lookup(model_name: str, version: str) -> str | None:
        import psycopg2

        with psycopg2.connect(database_url) as conn, conn.cursor() as cur:
            cur.execute(LOOKUP, (model_name, version))
            row = cur.fetchone()
        conn.close()
        return None if row is None else str(row[0])

    return lookup


def verified_model_dir(model_name: str, version: str, lookup: DigestLookup, dst: Path) -> Path:
    """Download version `version`'s artifacts into `dst` and return the folder, only when they
    hash to the digest recorded at its promotion; `ChampionRefused` otherwise."""
    recorded = lookup(model_name, version)
    if recorded is None:
        raise ChampionRefused(
            f"{model_name} v{version} is @champion in MLflow but the promotion gate never "
            "promoted it (no row in signals.model_promotions): refusing to load it"
        )
    local = download_model(model_name, version, dst)
    actual = directory_digest(local)
    if actual != recorded:
        raise ChampionRefused(
            f"{model_name} v{version}: its artifacts hash to {actual[:12]}..., not the "
            f"{recorded[:12]}... recorded at promotion: they changed after the gate; "
            "refusing to load them"
        )
    return local
