"""A dropped file is read in bounded chunks, on Azurite, through the function the host calls.

The trigger names the blob; the runtime reads it one ranged GET at a time, each pinned to
the version first seen, into a local file the engine reads and the copy is made from.
Quarantine, the archive and redelivery behave as before.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobClient, BlobServiceClient

import function_app
from connector.functions.blobfile import download_to
from connector.functions.dropzone import DropZone

from .conftest import World, extract_bytes, trigger_blob

pytestmark = pytest.mark.azurite

CHUNK = 64 * 1024


class Ranges:
    """Every GET the storage client sends for a blob in ``incoming``: (start, end) inclusive."""

    def __init__(self) -> None:
        self.gets: list[tuple[int, int]] = []
        self.whole: list[str] = []  # GETs with no range: a whole-blob read

    def __call__(self, response: Any) -> None:
        request = response.http_request
        if request.method != "GET" or "/incoming/" not in request.url:
            return
        if "comp=" in request.url or "restype=" in request.url:
            return  # listing, properties: no bytes of the file
        header = request.headers.get("x-ms-range") or request.headers.get("Range")
        if header is None:
            self.whole.append(request.url)
            return
        start, end = header.split("=", 1)[1].split("-")
        self.gets.append((int(start), int(end)))


@pytest.fixture
def chunked(functions_azurite: str) -> Iterator[tuple[Ranges, BlobServiceClient]]:
    ranges = Ranges()
    service = BlobServiceClient.from_connection_string(functions_azurite, raw_response_hook=ranges)
    yield ranges, service
    service.close()


@pytest.fixture
def w(make_world: Any, chunked: tuple[Ranges, BlobServiceClient]) -> Iterator[World]:
    """The app with a drop zone that reads :data:`CHUNK` bytes at a time."""
    _, service = chunked
    with make_world() as world:
        world.runtime.zone = DropZone(service, clock=world.clock, chunk_bytes=CHUNK)
        yield world


def test_the_function_reads_a_dropped_file_in_bounded_chunks_and_archives_it(
    w: World, chunked: tuple[Ranges, BlobServiceClient], tmp_path: Path
) -> None:
    ranges, _ = chunked
    data = extract_bytes(tmp_path, 2000, seed=41)
    assert len(data) > 6 * CHUNK
    w.drop("employees/hr.csv", data)
    function_app.ingest_extract(trigger_blob("employees/hr.csv"))
    w.emu.wait_idle()
    assert ranges.whole == []  # never the whole blob in one response
    assert ranges.gets, "the file was not read through the drop zone"
    assert max(end - start + 1 for start, end in ranges.gets) <= CHUNK
    assert sorted(ranges.gets)[0][0] == 0
    assert sum(end - start + 1 for start, end in ranges.gets) == len(data)  # read once
    [run] = w.runs()
    assert run.state == "uploaded"
    assert len(w.emu.users()) == 2000
    [archived] = w.names("archive")
    assert w.read("archive", archived) == data
    assert w.names("incoming") == set()


def test_a_file_of_an_unknown_source_is_still_quarantined_whole(
    w: World, chunked: tuple[Ranges, BlobServiceClient], tmp_path: Path
) -> None:
    ranges, _ = chunked
    data = extract_bytes(tmp_path, 800, seed=42)
    w.drop_and_deliver("vendors/x.csv", data)
    assert w.names("quarantine") == {"vendors/x.csv", "vendors/x.csv.error.json"}
    assert w.read("quarantine", "vendors/x.csv") == data  # the copy, byte for byte
    error = json.loads(w.read("quarantine", "vendors/x.csv.error.json"))
    assert "no source matches" in error["reason"]
    assert error["size"] == len(data)
    assert w.names("incoming") == set()
    assert max(end - start + 1 for start, end in ranges.gets) <= CHUNK


def test_a_refused_extract_is_quarantined_with_its_reason(
    w: World,
) -> None:
    bad = b"not,the,header,we,need\n" + b"1,2,3,4,5\n" * 20000
    w.drop_and_deliver("employees/bad.csv", bad)
    [run] = w.runs()
    assert run.state == "failed"
    assert "employees/bad.csv" in w.names("quarantine")
    assert w.read("quarantine", "employees/bad.csv") == bad
    assert not w.emu.users()


def test_an_empty_file_is_quarantined_not_crashed_on(
    w: World,
) -> None:
    w.drop_and_deliver("employees/empty.csv", b"")
    assert "employees/empty.csv" in w.names("quarantine")
    assert w.names("incoming") == set()


def test_a_redelivered_event_after_the_file_was_archived_changes_nothing(
    w: World, chunked: tuple[Ranges, BlobServiceClient], tmp_path: Path
) -> None:
    ranges, _ = chunked
    data = extract_bytes(tmp_path, 300, seed=43)
    w.drop_and_deliver("employees/hr.csv", data)
    calls = len(w.bulk_calls())
    read = len(ranges.gets)
    w.deliver("employees/hr.csv")  # Event Grid is at least once
    assert len(ranges.gets) == read  # nothing left to read: the file is archived
    assert len(w.runs()) == 1
    assert len(w.bulk_calls()) == calls
    assert len(w.names("archive")) == 1


def test_a_file_redelivered_while_still_in_incoming_makes_no_second_run(
    w: World, tmp_path: Path
) -> None:
    data = extract_bytes(tmp_path, 200, seed=44)
    w.drop("employees/hr.csv", data)
    real_archive = w.runtime.zone.archive
    w.runtime.zone.archive = _fail  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        w.deliver("employees/hr.csv")  # crashed after planning and sending
    w.runtime.zone.archive = real_archive  # type: ignore[method-assign]
    calls = len(w.bulk_calls())
    w.deliver("employees/hr.csv")  # the host retries the message
    [run] = w.runs()
    assert run.state == "uploaded"
    assert len(w.bulk_calls()) == calls  # the run was not sent again
    assert len(w.names("archive")) == 1
    assert w.names("incoming") == set()


def _fail(**_: Any) -> Any:
    raise RuntimeError("the instance went away")


# -- the download itself ------------------------------------------------------------------


class ReplacedAfter:
    """A BlobClient whose blob is replaced by ``newer`` after ``after`` GETs of it."""

    def __init__(self, blob: BlobClient, newer: list[bytes], after: int) -> None:
        self._blob = blob
        self._newer = list(newer)
        self._after = after
        self._gets = 0
        self.blob_name = blob.blob_name

    def get_blob_properties(self, **kwargs: Any) -> Any:
        return self._blob.get_blob_properties(**kwargs)

    def download_blob(self, **kwargs: Any) -> Any:
        self._gets += 1
        if self._gets % (self._after + 1) == 0 and self._newer:
            self._blob.upload_blob(self._newer.pop(0), overwrite=True)
        return self._blob.download_blob(**kwargs)


def _incoming(service: BlobServiceClient, name: str, data: bytes) -> BlobClient:
    with contextlib.suppress(ResourceExistsError):
        service.create_container("incoming")
    blob = service.get_blob_client("incoming", name)
    blob.upload_blob(data, overwrite=True)
    return blob


def test_a_blob_replaced_mid_read_is_read_again_whole_never_mixed(
    blob_service: BlobServiceClient, tmp_path: Path
) -> None:
    old, new = b"a" * (5 * CHUNK + 7), b"b" * (3 * CHUNK + 1)
    blob = _incoming(blob_service, "employees/x.csv", old)
    got = download_to(ReplacedAfter(blob, [new], after=2), tmp_path, chunk_bytes=CHUNK)  # type: ignore[arg-type]
    assert not isinstance(got, str)
    assert got.path is not None
    assert got.path.name == "x.csv"
    assert got.path.read_bytes() == new
    assert got.size == len(new)


def test_a_blob_that_keeps_changing_is_left_for_its_own_event(
    blob_service: BlobServiceClient, tmp_path: Path
) -> None:
    blob = _incoming(blob_service, "employees/y.csv", b"a" * (4 * CHUNK))
    newer = [bytes([65 + i]) * (4 * CHUNK) for i in range(1, 5)]
    flaky = ReplacedAfter(blob, newer, after=1)
    got = download_to(flaky, tmp_path, chunk_bytes=CHUNK, attempts=3)  # type: ignore[arg-type]
    assert got == "changed"


def test_a_blob_deleted_before_it_is_read_is_gone(
    blob_service: BlobServiceClient, tmp_path: Path
) -> None:
    blob = _incoming(blob_service, "employees/z.csv", b"x")
    blob.delete_blob()
    assert download_to(blob, tmp_path, chunk_bytes=CHUNK) == "gone"
