"""The state options: one store, a blob endpoint URL, a loopback-only connection string."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from connector.cli.options import state_location
from connector.cli.wiring import open_state_store
from connector.clock import SystemClock
from connector.state.blob import BlobStateStore
from tests.cli.helpers import DATED_FILES, invoke, write_config


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path / "sources.yaml", extra=DATED_FILES)


def test_state_options_name_one_store(config: Path, tmp_path: Path) -> None:
    both = invoke(
        "runs",
        "list",
        "--config",
        str(config),
        "--state",
        str(tmp_path),
        "--state-account-url",
        "https://acct.blob.core.windows.net",
        code=2,
    )
    assert "give one" in both


@pytest.mark.parametrize(
    "url",
    [
        "http://acct.blob.core.windows.net",
        "https://acct.blob.core.windows.net/state",
        "https://acct.blob.core.windows.net/?sv=2024&sig=x",
        "https://example.com",
        "https://acct.file.core.windows.net",
    ],
)
def test_account_url_must_be_a_blob_endpoint(config: Path, url: str) -> None:
    out = invoke("runs", "list", "--config", str(config), "--state-account-url", url, code=2)
    assert "https://<account>.blob.core.windows.net" in out


def test_connection_strings_are_for_a_local_azurite_only(config: Path) -> None:
    real = (
        "DefaultEndpointsProtocol=https;AccountName=prod;AccountKey=c2VjcmV0;"
        "EndpointSuffix=core.windows.net"
    )
    out = invoke("runs", "list", "--config", str(config), "--state-connection-string", real, code=2)
    assert "local Azurite only" in out
    assert "c2VjcmV0" not in out  # the key is never echoed


def test_account_url_opens_the_blob_store_with_the_default_credential(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import azure.identity

    made: list[Any] = []

    class Credential:
        def __init__(self) -> None:
            made.append(self)

        def get_token(self, *scopes: str, **kw: Any) -> Any:  # pragma: no cover - not called
            raise AssertionError("no request is made while opening the store")

    monkeypatch.setattr(azure.identity, "DefaultAzureCredential", Credential)
    location = state_location(None, "https://Acct.blob.core.windows.net/", None)
    assert location.account_url == "https://acct.blob.core.windows.net"
    store = open_state_store(location, SystemClock(), create=True)
    assert isinstance(store, BlobStateStore)
    assert repr(store) == "BlobStateStore('https://acct.blob.core.windows.net/state')"
    assert len(made) == 1
    store.close()
