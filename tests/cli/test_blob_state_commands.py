"""The admin commands against the deployed app's state on Blob Storage (Azurite stands in)."""

from __future__ import annotations

import webbrowser
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobServiceClient

from benchmarks.emuworld import JOB, SP
from connector.emulator.config import EmulatorConfig, JobConfig
from connector.emulator.server import RunningEmulator, run_emulator
from connector.sample import generate_extract
from connector.state.blob import BlobStateStore
from tests.cli.helpers import DATED_FILES, invoke, write_config


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
    return write_config(tmp_path / "sources.yaml", extra=DATED_FILES)


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
    held = _run_id(invoke("sync", str(day2), "--source", "employees", *state, *net, code=4))
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
    later = _run_id(invoke("sync", str(day3), "--source", "employees", *state, *net, code=4))
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
    held = _run_id(invoke("sync", str(day2), "--source", "employees", *state, *net, code=4))
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
