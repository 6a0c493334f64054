"""The drop zone against Azurite: archive, quarantine, never delete without a copy."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import orjson
import pytest
from azure.storage.blob import BlobServiceClient

from connector.clock import FakeClock
from connector.functions.blobfile import Content
from connector.functions.dropzone import (
    ARCHIVE,
    CONTAINERS,
    INCOMING,
    QUARANTINE,
    DropZone,
    QuarantineProblem,
    archive_blob_name,
    quarantine_blob_names,
    split_incoming_name,
)

pytestmark = pytest.mark.azurite

CSV = b"employeeId,givenName\n1001,Ada\n1002,Grace\n"
WHEN = datetime(2026, 11, 26, 23, 30, tzinfo=UTC)


def _zone(service: BlobServiceClient) -> DropZone:
    zone = DropZone(service, clock=FakeClock(WHEN))
    zone.ensure_containers()
    return zone


def _drop(service: BlobServiceClient, name: str, data: bytes) -> None:
    service.get_blob_client(INCOMING, name).upload_blob(data, overwrite=True)


def _names(service: BlobServiceClient, container: str) -> set[str]:
    return {b.name for b in service.get_container_client(container).list_blobs()}


def _read(service: BlobServiceClient, container: str, name: str) -> bytes:
    return service.get_blob_client(container, name).download_blob().readall()


# -- pure naming ------------------------------------------------------------------------


def test_split_incoming_name_accepts_both_forms_and_refuses_traversal() -> None:
    assert split_incoming_name("incoming/employees/a.csv") == "employees/a.csv"
    assert split_incoming_name("employees/a.csv") == "employees/a.csv"
    for bad in ("", "incoming/", "a/../b.csv", "a//b.csv"):
        with pytest.raises(ValueError, match="not a usable blob name"):
            split_incoming_name(bad)


def test_archive_name_uses_the_utc_upload_day_and_strips_the_source_folder() -> None:
    late_evening_in_new_york = datetime.fromisoformat("2026-11-26T21:00:00-05:00")
    assert (
        archive_blob_name("employees", "employees/sub/x.csv", late_evening_in_new_york)
        == "employees/2026/11/27/sub/x.csv"
    )
    # matched by pattern, not by folder: the whole name is kept
    assert archive_blob_name("employees", "hr_2026.csv", WHEN) == "employees/2026/11/26/hr_2026.csv"


def test_quarantine_names_keep_the_dropped_folder_for_unknown_sources() -> None:
    assert quarantine_blob_names(None, "vendors/x.csv") == (
        "vendors/x.csv",
        "vendors/x.csv.error.json",
    )
    assert quarantine_blob_names(None, "x.csv") == ("_unknown/x.csv", "_unknown/x.csv.error.json")
    assert quarantine_blob_names("employees", "employees/x.csv")[0] == "employees/x.csv"


# -- storage ----------------------------------------------------------------------------


def test_ensure_containers_creates_the_missing_ones(blob_service: BlobServiceClient) -> None:
    DropZone(blob_service).ensure_containers()
    blob_service.delete_container(ARCHIVE)
    zone = DropZone(blob_service)
    assert zone.ensure_containers() == [ARCHIVE]
    assert set(CONTAINERS) <= {c.name for c in blob_service.list_containers()}
    assert zone.ensure_containers() == []  # idempotent


def test_archive_copies_then_deletes_and_is_idempotent(blob_service: BlobServiceClient) -> None:
    zone = _zone(blob_service)
    _drop(blob_service, "employees/hr.csv", CSV)
    incoming = zone.incoming("employees/hr.csv")
    assert incoming is not None
    assert incoming.size == len(CSV)

    day = incoming.received_at  # the blob's own time (WHEN would break across midnight)
    placed = zone.archive(
        source="employees",
        blob_name="employees/hr.csv",
        data=Content.of_bytes(CSV),
        received_at=day,
        run_id="r1",
    )
    expected = f"employees/{day:%Y}/{day:%m}/{day:%d}/hr.csv"
    assert (placed.blob_name, placed.written, placed.incoming_deleted) == (expected, True, True)
    assert _read(blob_service, ARCHIVE, expected) == CSV
    props = blob_service.get_blob_client(ARCHIVE, expected).get_blob_properties()
    assert props.metadata["sha256"] == hashlib.sha256(CSV).hexdigest()
    assert props.metadata["run_id"] == "r1"
    assert _names(blob_service, INCOMING) == set()

    # redelivery of the same event: nothing new written, nothing deleted, no error
    again = zone.archive(
        source="employees",
        blob_name="employees/hr.csv",
        data=Content.of_bytes(CSV),
        received_at=day,
        run_id="r1",
    )
    assert (again.blob_name, again.written, again.incoming_deleted) == (expected, False, False)
    assert _names(blob_service, ARCHIVE) == {expected}


def test_a_different_file_under_a_taken_archive_name_is_not_overwritten(
    blob_service: BlobServiceClient,
) -> None:
    zone = _zone(blob_service)
    other = CSV + b"1003,Linus\n"
    first = zone.archive(
        source="employees",
        blob_name="employees/hr.csv",
        data=Content.of_bytes(CSV),
        received_at=WHEN,
        run_id="r1",
    )
    second = zone.archive(
        source="employees",
        blob_name="employees/hr.csv",
        data=Content.of_bytes(other),
        received_at=WHEN,
        run_id="r2",
    )
    assert first.blob_name == "employees/2026/11/26/hr.csv"
    assert second.blob_name == "employees/2026/11/26/r2/hr.csv"  # the run id keeps them apart
    assert _read(blob_service, ARCHIVE, first.blob_name) == CSV
    assert _read(blob_service, ARCHIVE, second.blob_name) == other


def test_three_different_files_under_one_name_on_one_day_are_all_archived(
    blob_service: BlobServiceClient,
) -> None:
    zone = _zone(blob_service)
    files = [CSV, CSV + b"1003,Linus\n", CSV + b"1004,Ken\n"]
    placed = [
        zone.archive(
            source="employees",
            blob_name="employees/hr.csv",
            data=Content.of_bytes(data),
            received_at=WHEN,
            run_id=f"employees-{hashlib.sha256(data).hexdigest()[:20]}",
        )
        for data in files
    ]
    assert len({p.blob_name for p in placed}) == 3
    for p, data in zip(placed, files, strict=True):
        assert _read(blob_service, ARCHIVE, p.blob_name) == data


def test_archive_never_fails_on_a_name_even_when_every_candidate_is_taken(
    blob_service: BlobServiceClient,
) -> None:
    """Foreign blobs (no checksum metadata) at both names: archive still stores the file.

    The run is already applied when the file is archived, so a name must never fail it.
    """
    zone = _zone(blob_service)
    archive = blob_service.get_container_client(ARCHIVE)
    archive.upload_blob("employees/2026/11/26/hr.csv", b"someone else's file")
    archive.upload_blob("employees/2026/11/26/r1/hr.csv", b"another foreign file")
    _drop(blob_service, "employees/hr.csv", CSV)

    placed = zone.archive(
        source="employees",
        blob_name="employees/hr.csv",
        data=Content.of_bytes(CSV),
        received_at=WHEN,
        run_id="r1",
    )
    assert placed.written
    assert placed.incoming_deleted
    assert placed.blob_name.startswith("employees/2026/11/26/hr.")
    assert _read(blob_service, ARCHIVE, placed.blob_name) == CSV
    assert _read(blob_service, ARCHIVE, "employees/2026/11/26/hr.csv") == b"someone else's file"
    again = zone.archive(
        source="employees",
        blob_name="employees/hr.csv",
        data=Content.of_bytes(CSV),
        received_at=WHEN,
        run_id="r1",
    )
    assert again.blob_name == placed.blob_name  # a redelivery finds its copy: nothing written
    assert again.written is False


def test_newer_upload_under_the_same_name_is_never_deleted(blob_service: BlobServiceClient) -> None:
    """An old event archives its bytes but must leave the newer upload for its own event."""
    zone = _zone(blob_service)
    newer = b"employeeId,givenName\n2001,Barbara\n"
    _drop(blob_service, "employees/hr.csv", newer)  # overwrote what the old event read

    placed = zone.archive(
        source="employees",
        blob_name="employees/hr.csv",
        data=Content.of_bytes(CSV),
        received_at=WHEN,
        run_id="r1",
    )
    assert placed.written
    assert not placed.incoming_deleted
    assert _read(blob_service, INCOMING, "employees/hr.csv") == newer
    assert _read(blob_service, ARCHIVE, placed.blob_name) == CSV


def test_same_size_different_bytes_without_md5_is_detected(
    blob_service: BlobServiceClient,
) -> None:
    zone = _zone(blob_service)
    same_size = CSV.replace(b"Ada", b"Eve")
    # a block-list upload has no Content-MD5, forcing the read-back comparison
    blob = blob_service.get_blob_client(INCOMING, "employees/hr.csv")
    blob.stage_block("b1", same_size)
    blob.commit_block_list(["b1"])
    assert zone.incoming("employees/hr.csv").content_md5 is None  # type: ignore[union-attr]

    placed = zone.archive(
        source="employees",
        blob_name="employees/hr.csv",
        data=Content.of_bytes(CSV),
        received_at=WHEN,
        run_id="r1",
    )
    assert not placed.incoming_deleted
    assert _read(blob_service, INCOMING, "employees/hr.csv") == same_size

    # and the identical bytes uploaded as blocks are deleted after the read-back check
    blob.stage_block("b2", CSV)
    blob.commit_block_list(["b2"])
    assert zone.archive(
        source="employees",
        blob_name="employees/hr.csv",
        data=Content.of_bytes(CSV),
        received_at=WHEN,
        run_id="r1",
    ).incoming_deleted


def test_quarantine_writes_the_file_and_an_error_file(blob_service: BlobServiceClient) -> None:
    zone = _zone(blob_service)
    _drop(blob_service, "vendors/x.csv", CSV)
    placed = zone.quarantine(
        source=None,
        blob_name="vendors/x.csv",
        data=Content.of_bytes(CSV),
        reason="no source matches 'vendors/x.csv'",
        problems=[QuarantineProblem("bad date", line=3), QuarantineProblem("missing id", line=2)],
        run_id="run-9",
        received_at=WHEN,
    )
    assert placed.container == QUARANTINE
    assert placed.incoming_deleted
    assert _names(blob_service, QUARANTINE) == {"vendors/x.csv", "vendors/x.csv.error.json"}
    assert _read(blob_service, QUARANTINE, "vendors/x.csv") == CSV
    err = orjson.loads(_read(blob_service, QUARANTINE, "vendors/x.csv.error.json"))
    assert err["reason"] == "no source matches 'vendors/x.csv'"
    assert err["line_numbers"] == [2, 3]
    assert err["run_id"] == "run-9"
    assert err["incoming_blob"] == "incoming/vendors/x.csv"
    assert err["quarantined_at"] == WHEN.isoformat()
    assert _names(blob_service, INCOMING) == set()

    # redelivery: same placement, still exactly one copy
    again = zone.quarantine(
        source=None,
        blob_name="vendors/x.csv",
        data=Content.of_bytes(CSV),
        reason="no source",
        received_at=WHEN,
    )
    assert not again.written
    assert not again.incoming_deleted
    assert _names(blob_service, QUARANTINE) == {"vendors/x.csv", "vendors/x.csv.error.json"}


def test_json_status_round_trip_and_probe(blob_service: BlobServiceClient) -> None:
    zone = _zone(blob_service)
    assert zone.read_json("reports", "_connector/status.json") is None
    zone.write_json("reports", "_connector/status.json", {"a": 1})
    assert zone.read_json("reports", "_connector/status.json") == {"a": 1}
    assert zone.probe() is True
    dead = DropZone(
        BlobServiceClient("http://127.0.0.1:9/devstoreaccount1", credential=None, retry_total=0)
    )
    assert dead.probe() is False
