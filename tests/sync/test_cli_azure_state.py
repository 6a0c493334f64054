"""The admin CLI against the deployed app's state on Blob Storage (Azurite stands in)."""

from __future__ import annotations

import webbrowser
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobServiceClient
from typer.testing import CliRunner

from connector.cli import sync as cli_sync
from connector.cli.app import build_app
from connector.clock import SystemClock
from connector.emulator.config import EmulatorConfig, JobConfig
from connector.emulator.server import RunningEmulator, run_emulator
from connector.sample import generate_extract
from connector.state.blob import BlobStateStore
from tests.sync.emuworld import JOB, MAPPING, SP

runner = CliRunner()


def invoke(*args: str, code: int = 0) -> str:
    result = runner.invoke(build_app(), list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output


@pytest.fixture
def azure_state(azurite: str) -> Iterator[str]:
    """Azurite's ``state`` and ``reports`` containers (the app's fixed names), emptied."""
    service = BlobServiceClient.from_connection_string(azurite)

    def wipe() -> None:
        for name in ("state", "reports"):
            client = service.get_container_client(name)
            try:
                for blob in client.list_blobs():
                    client.delete_blob(blob.name)
            except ResourceNotFoundError:
                pass

    wipe()
    yield azurite
    wipe()
    service.close()


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "sources.yaml"
    path.write_text(
        "sources:\n  - name: employees\n    match: employees/\n"
        f"    mapping: {MAPPING}\n    service_principal_id: {SP}\n    job_id: {JOB}\n"
        "    extract_timestamp: {pattern: '_(?P<ts>\\d{8})\\.csv$', format: '%Y%m%d'}\n",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def emulator() -> Iterator[RunningEmulator]:
    with run_emulator(EmulatorConfig(jobs=[JobConfig(service_principal_id=SP, job_id=JOB)])) as emu:
        yield emu


def _run_id(output: str) -> str:
    return output.split("run ", 1)[1].split(" ", 1)[0]


@pytest.mark.azurite
def test_admin_lists_shows_discards_approves_and_reports_runs_in_blob_state(
    azure_state: str,
    config: Path,
    emulator: RunningEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state = ["--config", str(config), "--state-connection-string", azure_state]
    net = ["--endpoint", emulator.endpoint_url, "--token", emulator.token, "--allow-loopback"]
    day1, day2, day3 = (tmp_path / f"hr_2026010{d}.csv" for d in (5, 6, 7))
    generate_extract(day1, 60, seed=1)
    generate_extract(day2, 20, seed=1)  # truncated: held
    generate_extract(day3, 25, seed=1)  # truncated again: held
    first = _run_id(invoke("sync", str(day1), "--source", "employees", *state, *net))
    held = _run_id(invoke("sync", str(day2), "--source", "employees", *state, *net))
    emulator.wait_idle()

    listed = invoke("runs", "list", *state)
    assert first in listed
    assert held in listed
    shown = invoke("runs", "show", held, *state)
    assert "held" in shown
    assert "timeline:" in shown

    discarded = invoke("runs", "discard", held, "--by", "admin", *state)
    assert "discarded" in discarded
    store = BlobStateStore.from_connection_string(azure_state, heartbeat=False)
    doc = store.get_document(f"runs/employees/{held}")
    assert doc is not None
    assert doc[0]["state"] == "discarded"
    assert doc[0]["discardedReason"] == "discarded by admin"

    # the next held run is approved from the admin's machine and uploaded
    later = _run_id(invoke("sync", str(day3), "--source", "employees", *state, *net))
    approved = invoke("runs", "approve", later, "--by", "admin", *state, *net)
    assert "uploaded" in approved
    emulator.wait_idle()
    reconciled = invoke("reconcile", *state, *net)
    assert later in reconciled
    assert first in reconciled
    assert sum(1 for u in emulator.users().values() if not u["accountEnabled"]) >= 35

    opened: list[str] = []
    monkeypatch.setattr(webbrowser, "open", lambda url, *a, **k: opened.append(url) or True)
    report = invoke("report", later, "--open", *state)
    assert f"/reports/employees/{later}/report.html" in report  # the blob's URL
    [url] = opened
    assert url.startswith("file://")
    local = Path(url.removeprefix("file://"))
    assert local.read_bytes() == store.read_artifact(f"employees/{later}/report.html")
    assert later in local.read_text(encoding="utf-8")


@pytest.mark.azurite
def test_a_discard_marker_blob_is_honoured_by_the_next_pass(
    azure_state: str, config: Path, emulator: RunningEmulator, tmp_path: Path
) -> None:
    state = ["--config", str(config), "--state-connection-string", azure_state]
    net = ["--endpoint", emulator.endpoint_url, "--token", emulator.token, "--allow-loopback"]
    day1, day2 = tmp_path / "hr_20260105.csv", tmp_path / "hr_20260106.csv"
    generate_extract(day1, 60, seed=2)
    generate_extract(day2, 20, seed=2)
    invoke("sync", str(day1), "--source", "employees", *state, *net)
    held = _run_id(invoke("sync", str(day2), "--source", "employees", *state, *net))
    # What an operator does without the CLI, e.g. `az storage blob upload --container-name
    # state --name documents/discards/<run id> --data '' --auth-mode login`: an empty blob.
    service = BlobServiceClient.from_connection_string(azure_state)
    marker = service.get_blob_client("state", f"documents/discards/{held}")
    marker.upload_blob(b"", overwrite=True)
    invoke("reconcile", *state, *net)
    store = BlobStateStore.from_connection_string(azure_state, heartbeat=False)
    doc = store.get_document(f"runs/employees/{held}")
    assert doc is not None
    assert doc[0]["state"] == "discarded"
    assert doc[0]["discardedReason"] == "discarded by discard marker"
    assert not marker.exists()
    service.close()


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
        code=1,
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
    out = invoke("runs", "list", "--config", str(config), "--state-account-url", url, code=1)
    assert "https://<account>.blob.core.windows.net" in out


def test_connection_strings_are_for_a_local_azurite_only(config: Path) -> None:
    real = (
        "DefaultEndpointsProtocol=https;AccountName=prod;AccountKey=c2VjcmV0;"
        "EndpointSuffix=core.windows.net"
    )
    out = invoke("runs", "list", "--config", str(config), "--state-connection-string", real, code=1)
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
    location = cli_sync._state_location(None, "https://Acct.blob.core.windows.net/", None)
    assert location.account_url == "https://acct.blob.core.windows.net"
    store = cli_sync._state_store(location, SystemClock(), create=True)
    assert isinstance(store, BlobStateStore)
    assert repr(store) == "BlobStateStore('https://acct.blob.core.windows.net/state')"
    assert len(made) == 1
    store.close()
