"""Stored names stay as they were: a state directory or container written by earlier
versions keeps working, and new writes land under the same names."""

from __future__ import annotations

import re
import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from azure.storage.blob import BlobServiceClient

from connector.clock import FakeClock
from connector.errors import ConcurrentRunError
from connector.state.blob import BlobStateStore
from connector.state.local import LocalStateStore
from connector.state.store import StateStore

from .helpers import index, payload

FIXTURE = Path(__file__).parent / "fixtures" / "state_dir_v1"
"""A state directory as the store wrote it before it stood on a storage backend: two
records of ``employees`` with payloads, a run journal, call counts and a report."""

GEN = "862172d3c76149d5b8dbcd706d537940"


def _fixture_files() -> dict[str, bytes]:
    return {
        p.relative_to(FIXTURE).as_posix(): p.read_bytes()
        for p in sorted(FIXTURE.rglob("*"))
        if p.is_file()
    }


def _check_reads_fixture(store: StateStore) -> None:
    idx = store.load_records("employees")
    assert set(idx.entries) == {"E1", "E2"}
    assert idx.entries["E1"].fingerprint == bytes(range(16))
    assert idx.entries["E2"].active is False
    assert idx.entries["E2"].error_code == "AzureActiveDirectoryDuplicateUserPrincipalName"
    assert idx.entries["E2"].sent_at == 1_700_000_100
    assert store.get_payloads("employees", ["E1", "E2"]) == {
        "E1": {"externalId": "E1", "title": "Engineer"},
        "E2": {"externalId": "E2", "title": "Manager"},
    }
    got = store.get_document("runs/employees/run-1.json")
    assert got is not None
    assert got[0] == {"state": "done", "runId": "run-1"}
    assert store.list_documents("runs/") == ["runs/employees/run-1.json"]
    assert store.load_call_counts() == {"2026-01-01T00": 7}
    assert store.read_artifact("employees/run-1/report.json") == b'{"created": 1}'
    assert store.list_artifacts() == ["employees/run-1/report.json"]
    # The stored state can be carried on from.
    idx.entries["E1"].outcome = "updated"
    store.save_records(idx, payloads={"E1": payload("E1", "Lead")})
    assert store.get_payloads("employees", ["E1"])["E1"]["title"] == "Lead"
    assert store.load_records("employees").entries["E2"].active is False


def test_a_state_directory_written_before_reads_and_carries_on(tmp_path: Path) -> None:
    root = tmp_path / "state"
    shutil.copytree(FIXTURE, root)
    store = LocalStateStore(root, heartbeat=False)
    # The directory store names a record index by the generation in its manifest, so
    # journals that kept the version a run was planned from still match it.
    assert store.load_records("employees").version == GEN
    _check_reads_fixture(store)


@pytest.mark.azurite
def test_a_state_container_written_before_reads_and_carries_on(azurite: str) -> None:
    suffix = uuid.uuid4().hex[:12]
    service = BlobServiceClient.from_connection_string(azurite)
    state = service.create_container(f"state-{suffix}")
    reports = service.create_container(f"reports-{suffix}")
    for name, data in _fixture_files().items():
        if name.startswith("reports/"):
            reports.upload_blob(name.removeprefix("reports/"), data)
        else:
            state.upload_blob(name, data)
    store = BlobStateStore(
        service, state_container=f"state-{suffix}", reports_container=f"reports-{suffix}"
    )
    # The Blob store names a record index by its manifest's ETag.
    manifest_etag = state.get_blob_client("records/employees/manifest.json").get_blob_properties()
    assert store.load_records("employees").version == manifest_etag.etag
    _check_reads_fixture(store)
    service.close()


def _write_everything(store: StateStore) -> None:
    store.save_records(index("employees", 3), payloads={"E0001": payload("E0001")})
    store.put_document("runs/employees/r1.json", {"state": "done"})
    store.add_call_counts({"2026-01-01T00": 1})
    store.write_artifact("employees/r1/report.html", b"<html></html>")


_GEN_FILE = re.compile(r"^records/employees/(index|payloads)-[0-9a-f]{32}\.jsonl\.gz$")


def test_a_directory_store_writes_the_same_file_names(tmp_path: Path) -> None:
    store = LocalStateStore(tmp_path, heartbeat=False)
    _write_everything(store)
    with store.lock("employees"):
        names = sorted(
            p.relative_to(tmp_path).as_posix()
            for p in tmp_path.rglob("*")
            if p.is_file() and not p.name.startswith(".")
        )
    generations = [n for n in names if _GEN_FILE.match(n)]
    assert len(generations) == 2
    assert sorted(set(names) - set(generations)) == [
        "counters/calls.json",
        "documents/runs/employees/r1.json",
        "locks/employees.lock",
        "records/employees/manifest.json",
        "reports/employees/r1/report.html",
    ]
    guards = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob(".guard"))
    assert guards == [
        "counters/.guard",
        "documents/.guard",
        "locks/.guard",
        "records/employees/.guard",
    ]


@pytest.mark.azurite
def test_a_blob_store_writes_the_same_blob_names(azurite: str) -> None:
    suffix = uuid.uuid4().hex[:12]
    service = BlobServiceClient.from_connection_string(azurite)
    store = BlobStateStore(
        service,
        state_container=f"state-{suffix}",
        reports_container=f"reports-{suffix}",
        heartbeat=False,
    )
    _write_everything(store)
    with store.lock("employees"):
        state = sorted(b.name for b in service.get_container_client(f"state-{suffix}").list_blobs())
    reports = sorted(b.name for b in service.get_container_client(f"reports-{suffix}").list_blobs())
    generations = [n for n in state if _GEN_FILE.match(n)]
    assert len(generations) == 2
    assert sorted(set(state) - set(generations)) == [
        "counters/calls.json",
        "documents/runs/employees/r1.json",
        "locks/employees",
        "records/employees/manifest.json",
    ]
    assert reports == ["employees/r1/report.html"]
    service.close()


def test_a_lock_file_written_before_is_honoured(tmp_path: Path) -> None:
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    (tmp_path / "locks").mkdir()
    (tmp_path / "locks" / "employees.lock").write_bytes(
        orjson.dumps(
            {
                "owner": "host-a:123",
                "token": "0" * 32,
                "pid": 123,
                "host": "host-a",
                "acquired_at": clock.now().isoformat(),
                "expires_at": (clock.now() + timedelta(minutes=5)).isoformat(),
            }
        )
    )
    store = LocalStateStore(tmp_path, clock=clock, heartbeat=False)
    with pytest.raises(ConcurrentRunError, match="host-a:123"), store.lock("employees"):
        pass
    clock.advance(301)
    with store.lock("employees", owner="next"):
        held = orjson.loads((tmp_path / "locks" / "employees.lock").read_bytes())
        assert held["owner"] == "next"
        fields = {"owner", "token", "pid", "host", "acquired_at", "expires_at"}
        holder = {"pid_start", "boot_id", "pid_ns"}  # see connector.state.holder
        assert set(held) == fields | holder
