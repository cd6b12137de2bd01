"""Which provider a scheduled ingest reads: the run's Params, else the Airflow Connection,
else the settings; Connection keys are checked against the provider's options."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.settings import IngestSettings
from ingest.source import ProviderConnection, resolve_source


def _settings(tmp_path: Path, provider: str = "sample") -> IngestSettings:
    return IngestSettings(provider=provider, data_roots=[tmp_path])


def test_without_params_or_connection_the_settings_provider_is_read(tmp_path: Path) -> None:
    source = resolve_source(_settings(tmp_path, "synthetic"))
    assert (source.provider, source.options, source.origin) == (
        "synthetic",
        {},
        "MARKETFLOW_DATA_PROVIDER",
    )


def test_the_connection_names_the_provider_and_its_path(tmp_path: Path) -> None:
    conn = ProviderConnection("marketflow_provider", {"provider": "csv", "path": str(tmp_path)})
    source = resolve_source(_settings(tmp_path), connection=conn)
    assert source.provider == "csv"
    assert source.origin == "Connection 'marketflow_provider'"
    assert source.options["path"] == str(tmp_path)
    assert source.options["allowed_roots"] == [tmp_path]  # still confined to the data roots
    # A run's Params win: another path for the same provider keeps the Connection's provider...
    other = tmp_path / "other"
    assert resolve_source(_settings(tmp_path), path_param=str(other), connection=conn).options[
        "path"
    ] == str(other)
    # ...and another provider ignores the Connection's options.
    assert resolve_source(_settings(tmp_path), "synthetic", connection=conn).options == {}


def test_a_connection_key_the_provider_does_not_take_is_an_error(tmp_path: Path) -> None:
    typo = ProviderConnection("mf", {"provider": "csv", "pth": str(tmp_path)})
    with pytest.raises(ValueError, match=r"extra key 'pth' is not an option of the csv provider"):
        resolve_source(_settings(tmp_path), connection=typo)
    # Options the code sets (the data roots) cannot be widened from a Connection.
    wider = ProviderConnection("mf", {"provider": "csv", "path": "/", "allowed_roots": ["/"]})
    with pytest.raises(ValueError, match="'allowed_roots' is not an option"):
        resolve_source(_settings(tmp_path), connection=wider)
    secret = ProviderConnection("mf", {"provider": "yahoo"}, login="me", password="secret")
    with pytest.raises(ValueError, match="the yahoo provider takes no login") as err:
        resolve_source(_settings(tmp_path), connection=secret)
    assert "secret" not in str(err.value)
    # Known options of the provider pass through.
    tuned = ProviderConnection("mf", {"provider": "yahoo", "attempts": 5})
    assert resolve_source(_settings(tmp_path), connection=tuned).options == {"attempts": 5}


def test_csv_needs_a_path_and_unknown_providers_are_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="the csv provider needs a path"):
        resolve_source(_settings(tmp_path, "csv"))
    with pytest.raises(ValueError, match=r"unknown data provider 'ftp' \(from the run's"):
        resolve_source(_settings(tmp_path), "ftp")
