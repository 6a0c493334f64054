"""Opening an extract: encodings by BOM or by name, undecodable bytes, paths and streams."""

from __future__ import annotations

import codecs
import io
from pathlib import Path

import pytest

from connector.errors import ExtractError
from connector.extract import ExtractProfile, read_extract
from connector.extract_source import detect_encoding

from .helpers import LENIENT, rows_of, stream


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16-le", "utf-16-be", "utf-16"])
def test_encodings_detected_by_bom(encoding: str) -> None:
    reader, rows = rows_of(stream("Id,Name\n1,Zoë\n2,Łukasz\n", encoding))
    assert reader.header == ["Id", "Name"]
    assert rows == [(2, {"Id": "1", "Name": "Zoë"}), (3, {"Id": "2", "Name": "Łukasz"})]


def test_undecodable_bytes_name_the_line() -> None:
    data = io.BytesIO("Id,Name\n1,Ann\n2,Ren\xe9e\n".encode("latin-1"))
    with pytest.raises(ExtractError) as info:
        rows_of(data)
    assert info.value.line == 3
    assert "cannot decode as utf-8" in str(info.value)
    assert "extract.encoding" in str(info.value)


def test_undecodable_header_fails_at_open() -> None:
    with pytest.raises(ExtractError) as info:
        read_extract(io.BytesIO(b"Id,N\xe4me\n1,a\n"))
    assert info.value.line == 1


def test_named_encoding_is_used() -> None:
    data = io.BytesIO("Id;Name\n1;Renée\n".encode("cp1252"))
    _, rows = rows_of(data, ExtractProfile(encoding="cp1252", max_rejected_share=1.0))
    assert rows == [(2, {"Id": "1", "Name": "Renée"})]


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ExtractError, match="file not found"):
        read_extract(tmp_path / "nope.csv")


class _Pipe(io.RawIOBase):
    """A non-seekable stream, like a socket or a pipe."""

    def __init__(self, data: bytes) -> None:
        self._buf = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[no-untyped-def]
        chunk = self._buf.read(min(len(b), 7))
        b[: len(chunk)] = chunk
        return len(chunk)


def test_non_seekable_stream_is_spooled() -> None:
    raw = io.BufferedReader(_Pipe(b"Id,Name\n1,a\n1,b\n2,c\n"))
    with read_extract(raw, LENIENT, id_column="Id") as reader:  # type: ignore[arg-type]
        assert [r.values["Id"] for r in reader] == ["2"]
        assert len(reader.rejected) == 2


def test_callers_stream_is_left_open_and_reader_iterates_once() -> None:
    data = stream("Id,Name\n1,a\n")
    reader = read_extract(data, id_column="Id")
    assert len(list(reader)) == 1
    assert not data.closed
    with pytest.raises(RuntimeError):
        list(reader)


def test_path_source(tmp_path: Path) -> None:
    p = tmp_path / "x.csv"
    p.write_bytes("Id|Name\r\n1|Å\r\n".encode("utf-16"))
    reader, rows = rows_of(p)
    assert reader.encoding == "utf-16"
    assert rows == [(2, {"Id": "1", "Name": "Å"})]


@pytest.mark.parametrize(
    ("head", "named", "encoding"),
    [
        (codecs.BOM_UTF8 + b"Id", "cp1252", "utf-8-sig"),  # a BOM wins over the profile
        (codecs.BOM_UTF16_LE + b"I\x00", None, "utf-16"),
        (b"Id,N", None, "utf-8-sig"),  # no BOM, none named: UTF-8, a BOM optional
        (b"Id,N", "UTF8", "utf-8-sig"),
        (b"Id,N", "cp1252", "cp1252"),
    ],
)
def test_a_byte_order_mark_decides_the_encoding_else_the_profile_or_utf8(
    head: bytes, named: str | None, encoding: str
) -> None:
    assert detect_encoding(head, named) == encoding
