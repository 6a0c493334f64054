"""Refused files: the rejected-row cap error lists the rows, and every error names the label.

The Functions app reads a dropped blob through a temporary file; the person who dropped
it must see the blob's name and line numbers, never the temporary path.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from connector.errors import ExtractError, TooManyRejectedRowsError
from connector.extract import (
    MAX_REJECTED_IN_ERROR,
    ExtractProfile,
    RejectedShareExceededError,
    RejectReason,
    read_extract,
)
from connector.mapping import load_mapping
from connector.records import iter_records

from .helpers import stream

LABEL = "incoming/hr/workers-2026-11-26.csv"

MAPPING = load_mapping(
    """
externalId: Id
core:
  userName: Upn
  active: {column: Status, transforms: [{lookup: {Active: true, Inactive: false}}]}
"""
)


def _spooled(tmp_path: Path, data: bytes) -> Path:
    """The file as a caller's temporary spool copy (a name the user never saw)."""
    path = tmp_path / "tmp-spool-8f3a1c.csv"
    path.write_bytes(data)
    return path


# -- the cap error carries the rejected rows ----------------------------------------------------


def test_early_refusal_lists_rejected_rows_with_lines_and_reasons() -> None:
    """The id pass alone proves the cap; the rows are still listed, and on the reader too."""
    text = "Id,Name\n1,a\n1,b\n,c\n2,d\n2,e\n3,f\n4,g,extra\n"
    reader = read_extract(stream(text), ExtractProfile(max_rejected_share=0.2), id_column="Id")
    with pytest.raises(TooManyRejectedRowsError) as info:
        list(reader)
    exc = info.value
    assert isinstance(exc, RejectedShareExceededError)
    got = [(r.line, r.external_id, r.reason_code) for r in exc.rejected]
    assert got == [
        (2, "1", RejectReason.DUPLICATE_EXTERNAL_ID),
        (3, "1", RejectReason.DUPLICATE_EXTERNAL_ID),
        (4, "", RejectReason.EMPTY_EXTERNAL_ID),
        (5, "2", RejectReason.DUPLICATE_EXTERNAL_ID),
        (6, "2", RejectReason.DUPLICATE_EXTERNAL_ID),
        (8, "4", RejectReason.FIELD_COUNT),
    ]
    assert exc.stats.rows_read == 7
    assert exc.stats.rows_rejected == 6
    assert exc.stats.rejected_by_reason == {
        RejectReason.DUPLICATE_EXTERNAL_ID: 4,
        RejectReason.EMPTY_EXTERNAL_ID: 1,
        RejectReason.FIELD_COUNT: 1,
    }
    assert exc.rejected_omitted == 0
    assert "6 of 7 rows rejected" in str(exc)
    assert [r.line for r in reader.rejected] == [2, 3, 4, 5, 6, 8]


def test_late_refusal_lists_reader_and_mapping_rejections() -> None:
    """Oversized fields and mapping failures are only known after the rows were read."""
    text = "Id,Upn,Status\n1,a,Active\n2,toolongvalue,Active\n3,c,Nope\n4,d,Inactive\n"
    profile = ExtractProfile(max_rejected_share=0.25, max_field_bytes=8)
    records = iter_records(stream(text), MAPPING, profile=profile)
    with pytest.raises(RejectedShareExceededError) as info:
        list(records)
    exc = info.value
    assert [(r.line, r.external_id, r.reason_code) for r in exc.rejected] == [
        (3, "2", RejectReason.FIELD_TOO_LARGE),
        (4, "3", RejectReason.INVALID_VALUE),
    ]
    assert exc.stats.to_dict() == {
        "rows_read": 4,
        "rows_accepted": 2,
        "rows_rejected": 2,
        "rejected_by_reason": {"field_too_large": 1, "invalid_value": 1},
    }
    assert "toolongvalue" not in " ".join(r.message for r in exc.rejected)


def test_refusal_keeps_the_first_rows_and_counts_the_rest() -> None:
    n = MAX_REJECTED_IN_ERROR + 500
    text = "Id,Name\n" + "".join(f"{i % 7},n\n" for i in range(n))
    reader = read_extract(stream(text), ExtractProfile(), id_column="Id")
    with pytest.raises(RejectedShareExceededError) as info:
        list(reader)
    exc = info.value
    assert len(exc.rejected) == MAX_REJECTED_IN_ERROR
    assert [r.line for r in exc.rejected] == list(range(2, MAX_REJECTED_IN_ERROR + 2))
    assert exc.stats.rows_rejected == n
    assert exc.rejected_omitted == 500
    # the reader keeps no more than the error does on a refused file (memory stays bounded)
    assert len(reader.rejected) == MAX_REJECTED_IN_ERROR


def test_error_snapshot_does_not_change_with_the_reader() -> None:
    text = "Id,Name\n1,a\n1,b\n"
    reader = read_extract(stream(text), ExtractProfile(), id_column="Id")
    with pytest.raises(RejectedShareExceededError) as info:
        list(reader)
    reader.add_rejected(9, "x", RejectReason.INVALID_VALUE, "later")
    assert info.value.stats.rows_rejected == 2
    assert len(info.value.rejected) == 2


# -- every message names the label --------------------------------------------------------------


def _message_of(call: object) -> ExtractError:
    assert callable(call)
    with pytest.raises(ExtractError) as info:
        call()
    return info.value


def _assert_names_label(exc: ExtractError, spool: Path, line: int | None) -> None:
    assert str(exc).startswith(f"{LABEL}")
    assert exc.path == LABEL
    assert str(spool) not in str(exc)
    assert spool.name not in str(exc)
    assert exc.line == line
    if line is not None:
        assert f"{LABEL}, line {line}: " in str(exc)


@pytest.mark.parametrize("via", ["path", "stream", "non_seekable"])
def test_decode_error_names_label_and_line(tmp_path: Path, via: str) -> None:
    data = "Id,Name\n1,Ann\n2,Bob\n3,Ren\xe9e\n".encode("latin-1")
    spool = _spooled(tmp_path, data)

    class Pipe(io.RawIOBase):
        def __init__(self) -> None:
            self._inner = io.BytesIO(data)
            self.name = str(spool)

        def readable(self) -> bool:
            return True

        def seekable(self) -> bool:
            return False

        def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
            chunk = self._inner.read(len(b))
            b[: len(chunk)] = chunk
            return len(chunk)

    source = {
        "path": spool,
        "stream": spool.open("rb"),
        "non_seekable": Pipe(),
    }[via]
    exc = _message_of(lambda: list(read_extract(source, label=LABEL, id_column="Id")))  # type: ignore[arg-type]
    _assert_names_label(exc, spool, 4)
    exc = _message_of(
        lambda: list(iter_records(_spooled(tmp_path, data), MAPPING_NAME_ONLY, label=LABEL))
    )
    _assert_names_label(exc, spool, 4)


MAPPING_NAME_ONLY = load_mapping("externalId: Id\ncore: {userName: Name, active: {const: true}}\n")


def test_decode_error_in_the_header_names_label(tmp_path: Path) -> None:
    spool = _spooled(tmp_path, "Id,N\xe4me\n1,a\n".encode("latin-1"))
    _assert_names_label(_message_of(lambda: read_extract(spool, label=LABEL)), spool, 1)
    _assert_names_label(
        _message_of(lambda: iter_records(spool, MAPPING_NAME_ONLY, label=LABEL)), spool, 1
    )


def test_utf16_decode_error_names_label_and_line(tmp_path: Path) -> None:
    data = "Id,Name\n1,a\n2,b\n".encode("utf-16") + b"\x00\xd8\x41\x00"  # lone surrogate
    spool = _spooled(tmp_path, data)
    exc = _message_of(lambda: list(read_extract(spool, label=LABEL)))
    _assert_names_label(exc, spool, 4)


@pytest.mark.parametrize(
    ("text", "line", "needle"),
    [
        ("", None, "empty"),
        ("Id,Id,\n1,2,3\n", 1, "bad header"),
        ("Key,Name\n1,a\n", 1, "id column 'Id'"),
    ],
)
def test_file_level_errors_name_label(tmp_path: Path, text: str, line: int, needle: str) -> None:
    spool = _spooled(tmp_path, text.encode())
    for call in (
        lambda: read_extract(spool, id_column="Id", label=LABEL),
        lambda: iter_records(spool, MAPPING_NAME_ONLY, label=LABEL),
    ):
        exc = _message_of(call)
        _assert_names_label(exc, spool, line)
        assert needle in str(exc)


def test_missing_mapping_columns_and_missing_file_name_label(tmp_path: Path) -> None:
    spool = _spooled(tmp_path, b"Id,Upn\n1,a\n")
    exc = _message_of(lambda: iter_records(spool, MAPPING, label=LABEL))
    _assert_names_label(exc, spool, 1)
    assert "Status" in str(exc)
    gone = tmp_path / "tmp-gone.csv"
    exc = _message_of(lambda: read_extract(gone, label=LABEL))
    assert exc.path == LABEL
    assert str(gone) not in str(exc)


@pytest.mark.parametrize("early", [True, False])
def test_cap_error_names_label(tmp_path: Path, early: bool) -> None:
    rows = "1,a,Active\n1,b,Active\n" if early else "1,a,Active\n2,b,Nope\n"
    spool = _spooled(tmp_path, ("Id,Upn,Status\n" + rows).encode())
    exc = _message_of(lambda: list(iter_records(spool, MAPPING, label=LABEL)))
    assert isinstance(exc, RejectedShareExceededError)
    _assert_names_label(exc, spool, None)


def test_stream_without_label_uses_its_name_or_a_placeholder(tmp_path: Path) -> None:
    spool = _spooled(tmp_path, b"Id,N\n1,a\n1,b\n")
    with spool.open("rb") as f:
        assert read_extract(f).label == str(spool)
    assert read_extract(io.BytesIO(b"Id\n1\n")).label == "<stream>"
    with open(os.open(spool, os.O_RDONLY), "rb") as fd_file:  # its name is an int
        assert read_extract(fd_file).label == "<stream>"
