"""Duplicate ids counted while the rows are read (``ids_in_pass``): one read, or two on a repeat.

Every case is read both ways, the id column first (the default) and in one pass with a
second read when an id repeats; what is accepted and rejected must be the same.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from connector.errors import ReadAgainError, RejectedShareExceededError
from connector.extract import ExtractProfile, ExtractReader, read_extract
from connector.mapping import load_mapping
from connector.records import iter_records

LENIENT = ExtractProfile(max_rejected_share=1.0)
MAPPING = Path(__file__).resolve().parents[2] / "samples" / "mappings" / "default.yaml"

Outcome = tuple[list[tuple[int, dict[str, str]]], list[tuple[int, str, str]]]


def _outcome(reader: ExtractReader, rows: list[Any]) -> Outcome:
    rejected = [(r.line, r.external_id, r.reason_code) for r in reader.rejected]
    return [(r.line, r.values) for r in rows], sorted(rejected)


def _first(data: bytes, profile: ExtractProfile = LENIENT) -> Outcome:
    reader = read_extract(io.BytesIO(data), profile, id_column="Id")
    return _outcome(reader, list(reader))


def _in_pass(data: bytes, profile: ExtractProfile = LENIENT) -> tuple[Outcome, int]:
    """The outcome read with ``ids_in_pass``, and how many times the file was read."""
    reader = read_extract(io.BytesIO(data), profile, id_column="Id")
    try:
        return _outcome(reader, list(reader.iter_mapped(None, ids_in_pass=True))), 1
    except ReadAgainError as exc:
        again = read_extract(io.BytesIO(data), profile, id_column="Id")
        rows = list(again.iter_mapped(None, duplicates=exc.duplicates))
        return _outcome(again, rows), 2


CASES = {
    "clean": "Id,Name\n1,Ann\n2,Bob\n3,Cy\n",
    "repeat": "Id,Name\n1,Ann\n2,Bob\n 1 ,Cy\n3,Di\n",
    "empty and short": "Id,Name\n,Ann\n2\n2,Bob\n3,Cy\n",
    "unprintable": "Id,Name\n1\x07,Ann\n1\x07,Bob\n2,Cy\n",
    "quoted repeat": 'Id,Name\n"1","Ann"\n"2","Bob"\n"1","Cy"\n',
    "repeat of a too-large row": 'Id,Name\n1,Ann\n"1","' + "x" * 40 + '"\n2,Bob\n',
    "repeat after a malformed row": 'Id,Name\n1,Ann\n"2"x,Bob\n3,Cy\n1,Di\n',
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_ids_in_pass_accept_and_reject_what_the_id_pass_does(name: str) -> None:
    profile = ExtractProfile(max_rejected_share=1.0, max_field_bytes=16)
    data = CASES[name].encode()
    got, _ = _in_pass(data, profile)
    assert got == _first(data, profile)


def test_a_file_without_repeats_is_read_once() -> None:
    data = CASES["clean"].encode()
    (rows, rejected), reads = _in_pass(data)
    assert reads == 1
    assert [line for line, _ in rows] == [2, 3, 4]
    assert rejected == []


def test_a_repeat_is_found_after_the_last_row_and_the_second_read_rejects_each() -> None:
    data = CASES["repeat"].encode()
    reader = read_extract(io.BytesIO(data), LENIENT, id_column="Id")
    handed: list[int] = []

    def read() -> None:
        for row in reader.iter_mapped(None, ids_in_pass=True):
            handed.append(row.line)

    with pytest.raises(ReadAgainError) as caught:
        read()
    assert handed == [2, 3, 4, 5]  # every row went by before the repeat was known
    assert "Id repeats" in str(caught.value)
    (rows, rejected), reads = _in_pass(data)
    assert reads == 2
    assert [line for line, _ in rows] == [3, 5]
    assert rejected == [(2, "1", "duplicate_external_id"), (4, "1", "duplicate_external_id")]


def test_the_share_cap_is_checked_on_the_second_read_not_the_first() -> None:
    data = b"Id,Name\n1,Ann\n1,Bob\n2,Cy\n"
    strict = ExtractProfile(max_rejected_share=0.5)
    reader = read_extract(io.BytesIO(data), strict, id_column="Id")
    with pytest.raises(ReadAgainError) as caught:
        list(reader.iter_mapped(None, ids_in_pass=True))
    again = read_extract(io.BytesIO(data), strict, id_column="Id")
    with pytest.raises(RejectedShareExceededError, match="2 of 3 rows rejected"):
        list(again.iter_mapped(None, duplicates=caught.value.duplicates))


def test_records_read_in_pass_match_the_default_read(tmp_path: Path) -> None:
    extract = tmp_path / "hr.csv"
    extract.write_text(
        "EmployeeId,Status,FirstName,LastName,WorkEmail\n"
        "1,Active,Ann,Lee,ann@contoso.com\n"
        "2,Active,Bob,Roe,bob@contoso.com\n"
        "1,Active,Cy,Poe,cy@contoso.com\n",
        encoding="utf-8",
    )
    mapping = load_mapping(MAPPING).without_columns(
        [c for c in load_mapping(MAPPING).required_columns if c not in ("EmployeeId", "Status")]
    )
    default = iter_records(extract, mapping, profile=LENIENT)
    expected = [(r.line, r.data) for r in default]
    with pytest.raises(ReadAgainError) as caught:
        list(iter_records(extract, mapping, profile=LENIENT, ids_in_pass=True))
    again = iter_records(extract, mapping, profile=LENIENT, duplicates=caught.value.duplicates)
    assert [(r.line, r.data) for r in again] == expected == [(3, expected[0][1])]
    assert [r.reason_code for r in again.rejected] == [r.reason_code for r in default.rejected]
