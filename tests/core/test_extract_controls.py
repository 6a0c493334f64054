"""Control characters: an id with one is not the id it looks like; no value may hold NUL."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.cli.core import run_preview
from connector.errors import RejectedShareExceededError
from connector.extract import ExtractProfile, RejectReason, read_extract
from connector.extract_controls import NulWatch, control_columns, shown_id
from tests.core.helpers import DEFAULT_MAPPING, HR_EXTRACT, stream

LENIENT = ExtractProfile(max_rejected_share=1.0)
C0_FORBIDDEN = [chr(c) for c in range(32) if chr(c) not in "\t\n\r"]
C0_KEPT_IN_VALUES = [c for c in C0_FORBIDDEN if c != "\0"]


def _read(text: str, encoding: str = "utf-8") -> tuple[list[tuple[int, str]], list[tuple]]:
    reader = read_extract(stream(text, encoding), LENIENT, id_column="Id")
    rows = [(r.line, r.values["Id"]) for r in reader]
    return rows, [(r.line, r.external_id, r.reason_code) for r in reader.rejected]


@pytest.mark.parametrize("encoding", ["utf-8", "cp1252", "utf-16-le"])
@pytest.mark.parametrize("quoted", [False, True], ids=["split-path", "csv-path"])
def test_an_id_with_a_nul_is_rejected_and_the_real_id_stays(encoding: str, quoted: bool) -> None:
    """The issue's case: 100004\\0 next to 100004 must not be a new person."""
    q = '"' if quoted else ""
    text = f"Id,Name\n100003,a\n{q}100004{q},Jane\n{q}100004\0{q},Jane\n100005,b\n"
    rows, rejected = _read(text, encoding)
    assert rows == [(2, "100003"), (3, "100004"), (5, "100005")]
    assert rejected == [(4, "100004\\u0000", RejectReason.CONTROL_CHARACTER)]


@pytest.mark.parametrize("char", [*C0_FORBIDDEN, "\t", "\x7f", "\x85", "\u200b", "\ufeff"])
def test_any_unprintable_character_inside_an_id_rejects_the_row(char: str) -> None:
    rows, rejected = _read(f'Id,Name\n"10{char}06",x\n100007,y\n')
    assert rows == [(3, "100007")]
    assert [(line, reason) for line, _, reason in rejected] == [(2, RejectReason.CONTROL_CHARACTER)]


def test_a_nul_in_any_value_rejects_the_row_naming_the_column() -> None:
    reader = read_extract(stream("Id,Name,City\n1,a\0b,c\n2,d,e\n"), LENIENT, id_column="Id")
    assert [r.values["Id"] for r in reader] == ["2"]
    [rej] = reader.rejected
    assert (rej.line, rej.external_id, rej.reason_code) == (2, "1", "control_character")
    assert rej.message == "Name (U+0000): a NUL character; fix the extract"


@pytest.mark.parametrize("char", C0_KEPT_IN_VALUES)
def test_other_c0_controls_in_values_other_than_the_id_are_text(char: str) -> None:
    """Documented: only NUL is looked for in every value (the JSON escapes the others)."""
    reader = read_extract(stream(f"Id,Name\n1,a{char}b\n"), LENIENT, id_column="Id")
    assert [r.values["Name"] for r in reader] == [f"a{char}b".strip()]
    assert not reader.rejected


def test_tab_and_line_breaks_inside_a_quoted_value_are_text() -> None:
    reader = read_extract(
        stream('Id,Street,Note\n1,"Gran\tVía 28","two\nlines"\n2,"a\r\nb",c\n'),
        LENIENT,
        id_column="Id",
    )
    assert [r.values["Street"] for r in reader] == ["Gran\tVía 28", "a\r\nb"]
    assert not reader.rejected


def test_a_control_late_in_a_large_file_is_found_after_clean_blocks() -> None:
    body = "".join(f"{i},name{i},city\n" for i in range(20_000))
    reader = read_extract(
        stream("Id,Name,City\n" + body + "20000,x\x00y,z\n20001,ok,z\n"), LENIENT, id_column="Id"
    )
    ids = [r.values["Id"] for r in reader]
    assert len(ids) == 20_001
    assert "20000" not in ids
    assert [(r.line, r.reason_code) for r in reader.rejected] == [(20_002, "control_character")]


def test_many_nul_ids_refuse_the_file_before_any_row_is_handed_out() -> None:
    text = (
        "Id,Name\n"
        + "".join(f"{i}\0,x\n" for i in range(10))
        + "".join(f"{i},y\n" for i in range(100, 110))
    )
    reader = read_extract(stream(text), id_column="Id")
    with pytest.raises(RejectedShareExceededError) as info:
        next(iter(reader))
    assert {r.reason_code for r in info.value.rejected} == {"control_character"}


def test_preview_lists_a_nul_id_with_its_line_and_reason(tmp_path: Path) -> None:
    lines = HR_EXTRACT.read_text(encoding="utf-8").splitlines(keepends=True)
    extract = tmp_path / "nul.csv"
    fake = lines[4].replace(lines[4].split(",")[0], lines[4].split(",")[0] + "\0", 1)
    extract.write_text("".join([*lines, fake]), encoding="utf-8")
    summary = run_preview(DEFAULT_MAPPING, extract, tmp_path / "out")
    assert summary.rejected_by_reason == {"control_character": 1}
    assert summary.rows_accepted == len(lines) - 1
    text = (tmp_path / "out" / "rejected.csv").read_text(encoding="utf-8")
    assert f"{len(lines) + 1},{lines[4].split(',')[0]}\\u0000,control_character," in text
    assert "\0" not in text


def test_nul_watch_notes_a_nul_in_any_block_it_hands_on() -> None:
    watch = NulWatch()
    assert watch.needs_csv('a,"b"\n')
    assert not watch.needs_csv("a,b\tc\r\n")
    assert not watch.found
    later = io.StringIO("3,c\n4,d\x00\n")
    blocks = watch.blocks(["1,a\n", "2,b\n"], later, 4)
    assert next(blocks) == ["1,a\n", "2,b\n"]
    assert not watch.found
    assert [line for block in blocks for line in block] == ["3,c\n", "4,d\x00\n"]
    assert watch.found
    assert watch.needs_csv("a,b\n")  # from then on every block is parsed and checked


def test_a_nul_in_a_utf16_file_is_found_a_zero_byte_is_not_a_nul() -> None:
    rows, rejected = _read("Id,Name\n1,a\n2,b\x00c\n3,d\n", "utf-16-le")
    assert rows == [(2, "1"), (4, "3")]
    assert rejected == [(3, "2", "control_character")]


def test_helpers_name_code_points_never_values() -> None:
    assert control_columns(["Id", "Name"], ["1", "Ja\x00ne"]) == ["Name (U+0000)"]
    assert control_columns(["Id", "Name"], ["1", "Ja\x1bne"]) == []
    assert shown_id("12\x003") == "12\\u00003"
    assert shown_id("Zoë") == "Zoë"


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.text(st.characters(codec="utf-8"), max_size=6), min_size=1, max_size=6),
    quoted=st.booleans(),
)
def test_a_row_is_accepted_exactly_when_no_value_holds_nul(values: list[str], quoted: bool) -> None:
    import csv

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n", quoting=csv.QUOTE_ALL if quoted else 0)
    writer.writerow(["Id", "V"])
    writer.writerows([[f"id{n}", v] for n, v in enumerate(values)])
    reader = read_extract(stream(buf.getvalue()), LENIENT, id_column="Id")
    accepted = [r.values["V"] for r in reader]
    assert accepted == [v.strip() for v in values if "\0" not in v]
    assert all(r.reason_code == "control_character" for r in reader.rejected)
