"""Control characters: an id with one is not the id it looks like; no value may hold a C0
control other than tab, LF and CR (or DEL)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.cli.preview import run_preview
from connector.errors import RejectedShareExceededError
from connector.extract import ExtractProfile, RejectReason, read_extract
from connector.extract_controls import FORBIDDEN, NulWatch, control_columns, shown_id
from tests.core.helpers import DEFAULT_MAPPING, HR_EXTRACT, stream

LENIENT = ExtractProfile(max_rejected_share=1.0)
C0_FORBIDDEN = [chr(c) for c in range(32) if chr(c) not in "\t\n\r"]


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
    assert rej.message == "Name (U+0000): a control character; fix the extract"


def test_the_forbidden_set_is_c0_without_tab_lf_cr_plus_del() -> None:
    assert sorted(FORBIDDEN) == sorted([*C0_FORBIDDEN, "\x7f"])


@pytest.mark.parametrize("quoted", [False, True], ids=["split-path", "csv-path"])
@pytest.mark.parametrize("char", [*C0_FORBIDDEN, "\x7f"], ids=lambda c: f"U+{ord(c):04X}")
def test_any_c0_control_but_tab_and_line_breaks_in_a_value_rejects_the_row(
    char: str, quoted: bool
) -> None:
    q = '"' if quoted else ""
    text = f"Id,Name,City\n1,a,b\n2,{q}x{char}y{q},c\n3,d,e\n"
    reader = read_extract(stream(text), LENIENT, id_column="Id")
    assert [r.values["Id"] for r in reader] == ["1", "3"]
    [rej] = reader.rejected
    assert (rej.line, rej.external_id, rej.reason_code) == (3, "2", "control_character")
    assert rej.message == f"Name (U+{ord(char):04X}): a control character; fix the extract"


def test_an_escape_in_a_value_is_rejected_naming_the_column_never_the_value() -> None:
    """#17: an ESC (terminal escape sequence) in a name is not text anyone meant to send."""
    reader = read_extract(
        stream("Id,GivenName,Surname\n100003,Ann,Lee\n100004,Secret\x1b[31m,Doe\n"),
        LENIENT,
        id_column="Id",
    )
    assert [r.values["Id"] for r in reader] == ["100003"]
    [rej] = reader.rejected
    assert (rej.line, rej.external_id) == (3, "100004")
    assert rej.message == "GivenName (U+001B): a control character; fix the extract"
    assert "Secret" not in rej.message


def test_an_id_with_a_start_of_heading_character_is_rejected_and_the_real_id_stays() -> None:
    """#17: ``100004\\x01`` next to ``100004`` is not the same person, nor a new one."""
    rows, rejected = _read("Id,Name\n100004,Jane\n100004\x01,Jane\n100005,b\n")
    assert rows == [(2, "100004"), (4, "100005")]
    assert rejected == [(3, "100004\\u0001", RejectReason.CONTROL_CHARACTER)]


def test_a_tab_in_a_value_is_text_quoted_or_not() -> None:
    """Decided: tab (like a line break inside quotes) is legitimate CSV text; see
    docs/mapping.md, Control characters."""
    reader = read_extract(
        stream('Id,Street,Note\n1,"Gran\tVía 28",x\n2,Main\tSt 1,y\n'), LENIENT, id_column="Id"
    )
    assert [r.values["Street"] for r in reader] == ["Gran\tVía 28", "Main\tSt 1"]
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
    escape = NulWatch()
    assert escape.needs_csv("1,a\x1bb\n")
    assert escape.found


def test_a_nul_in_a_utf16_file_is_found_a_zero_byte_is_not_a_nul() -> None:
    rows, rejected = _read("Id,Name\n1,a\n2,b\x00c\n3,d\n", "utf-16-le")
    assert rows == [(2, "1"), (4, "3")]
    assert rejected == [(3, "2", "control_character")]


def test_helpers_name_code_points_never_values() -> None:
    assert control_columns(["Id", "Name"], ["1", "Ja\x00ne"]) == ["Name (U+0000)"]
    assert control_columns(["Id", "Name"], ["1", "Ja\x1bne"]) == ["Name (U+001B)"]
    assert control_columns(["Id", "Name"], ["1", "Ja\tne\r\n"]) == []
    assert shown_id("12\x003") == "12\\u00003"
    assert shown_id("Zoë") == "Zoë"


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.text(st.characters(codec="utf-8"), max_size=6), min_size=1, max_size=6),
    quoted=st.booleans(),
)
def test_a_row_is_accepted_exactly_when_no_value_holds_a_forbidden_control(
    values: list[str], quoted: bool
) -> None:
    import csv

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n", quoting=csv.QUOTE_ALL if quoted else 0)
    writer.writerow(["Id", "V"])
    writer.writerows([[f"id{n}", v] for n, v in enumerate(values)])
    reader = read_extract(stream(buf.getvalue()), LENIENT, id_column="Id")
    accepted = [r.values["V"] for r in reader]
    assert accepted == [v.strip() for v in values if not set(v) & set(FORBIDDEN)]
    assert all(r.reason_code == "control_character" for r in reader.rejected)
