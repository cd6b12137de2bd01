"""Which provider the scheduled ingest reads, with which options: a run's Params, else the
Airflow Connection `marketflow_provider`, else the settings (MARKETFLOW_DATA_PROVIDER).

The Connection (conn_type `generic`) keeps paths and credentials out of DAG files and env
vars. Its `extra` JSON names the provider and its options, its login and password are the
provider's credentials::

    airflow connections add marketflow_provider --conn-type generic \\
        --conn-extra '{"provider": "csv", "path": "/srv/vendor/daily"}'

Every other `extra` key is a constructor option of the provider (checked against its
signature, so a typo is an error, not an ignored key). A csv path, from a Param or the
Connection, must lie inside MARKETFLOW_INGEST_DATA_ROOTS. Airflow-free, so it is tested
without a scheduler; the DAG hands it the Connection's fields.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field
from typing import Any

from core.settings import IngestSettings
from ingest.providers import PROVIDERS

# Options a caller must never set through a Connection (they are set here, or are code).
_RESERVED = {"allowed_roots", "max_file_bytes", "download", "session", "sleep"}


@dataclass(frozen=True)
class ProviderConnection:
    """The fields of the provider's Airflow Connection that matter here."""

    conn_id: str
    extra: dict[str, Any] = field(default_factory=dict)
    login: str | None = None
    password: str | None = None


@dataclass(frozen=True)
class Source:
    provider: str
    options: dict[str, Any]
    # Where the choice came from, for the task log (never the credentials).
    origin: str


def _accepted(provider: str) -> set[str]:
    module_name, _, class_name = PROVIDERS[provider].partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return set(inspect.signature(cls.__init__).parameters) - {"self"}


def resolve_source(
    settings: IngestSettings,
    provider_param: str | None = None,
    path_param: str | None = None,
    connection: ProviderConnection | None = None,
) -> Source:
    """The provider and options of one scheduled ingest (see the module docstring)."""
    from_connection = connection is not None and (
        provider_param is None or provider_param == connection.extra.get("provider")
    )
    if provider_param:
        provider, origin = provider_param, "the run's provider Param"
    elif connection is not None and connection.extra.get("provider"):
        provider, origin = str(connection.extra["provider"]), f"Connection {connection.conn_id!r}"
    else:
        provider, origin = settings.provider, "MARKETFLOW_DATA_PROVIDER"
        from_connection = connection is not None
    if provider not in PROVIDERS:
        raise ValueError(
            f"unknown data provider {provider!r} (from {origin}); known: {sorted(PROVIDERS)}"
        )
    accepted = _accepted(provider)
    options: dict[str, Any] = {}
    if from_connection and connection is not None:
        where = f"Connection {connection.conn_id!r}"
        for key, value in connection.extra.items():
            if key == "provider":
                continue
            if key in _RESERVED or key not in accepted:
                allowed = sorted(accepted - _RESERVED)
                raise ValueError(
                    f"{where}: extra key {key!r} is not an option of the {provider} provider "
                    f"(its options: {allowed})"
                )
            options[key] = value
        for key in ("login", "password"):
            value = getattr(connection, key)
            if not value:
                continue
            if key not in accepted:
                raise ValueError(f"{where}: the {provider} provider takes no {key}")
            options[key] = value
    if path_param:
        options["path"] = path_param
    if provider == "csv":
        if "path" not in options:
            raise ValueError(
                "the csv provider needs a path: the run's `path` Param, or `path` in the extra "
                f"of the Connection {settings.provider_conn_id!r}"
            )
        options["allowed_roots"] = settings.data_roots
        options["max_file_bytes"] = settings.max_file_bytes
    return Source(provider, options, origin)
