"""Quotes left open, ids that are really runs of fields, and fields over the parser's limit.

A quote that is never closed (or closed by some later, unrelated quote) makes the csv
parser read the following lines as one value. Those people would vanish from the file,
and a full sync would disable them as leavers, so such a file is refused as a whole.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from typer.testing import CliRunner

from connector.cli import core
from connector.errors import ExtractError
from connector.extract import ExtractProfile, RejectReason, read_extract
from connector.mapping import load_mapping
from connector.records import iter_records
from connector.sample import generate_extract

from .helpers import DEFAULT_MAPPING, stream

LENIENT = ExtractProfile(max_rejected_share=1.0)


def _sample_with_open_quote(path: Path, rows: int = 200, line: int = 51, column: int = 7) -> None:
    """A generated extract whose ``line`` gets an unclosed quote at the start of ``column``."""
    buf = io.StringIO()
    generate_extract(buf, rows, seed=3)
    lines = buf.getvalue().splitlines(keepends=True)
    fields = lines[line - 1].split(",")
    fields[column - 1] = '"Senior ' + fields[column - 1]
    lines[line - 1] = ",".join(fields)
    path.write_text("".join(lines), encoding="utf-8")


def test_open_quote_in_a_generated_extract_refuses_the_file_before_any_record(
    tmp_path: Path,
) -> None:
    extract = tmp_path / "hr.csv"
    _sample_with_open_quote(extract)
    stream_ = iter_records(extract, load_mapping(DEFAULT_MAPPING))
    with pytest.raises(ExtractError) as info:
        next(iter(stream_))  # the id pass finds it: no record is handed out at all
    assert info.value.line == 51
    assert "unterminated quote starting at line 51 (lines 51\u2013201)" in str(info.value)
    assert "the file ends inside the quoted value" in str(info.value)
    assert stream_.stats.rows_accepted == 0


def test_preview_of_a_file_with_an_open_quote_fails(tmp_path: Path) -> None:
    extract = tmp_path / "hr.csv"
    _sample_with_open_quote(extract)
    app = core.typer.Typer()
    core.register(app)
    res = CliRunner().invoke(
        app, ["preview", "-m", str(DEFAULT_MAPPING), str(extract), "-o", str(tmp_path / "out")]
    )
    assert res.exit_code == 1
    assert "unterminated quote starting at line 51" in res.stderr
    assert not list((tmp_path / "out").glob("bulk-*.json"))


@pytest.mark.parametrize("id_column", ["Id", None])
def test_quote_closed_by_a_later_quoted_value_is_caught(id_column: str | None) -> None:
    """Non-strict parsing would give row 3 the right field count and drop lines 4 and 5."""
    text = 'Id,Name,Title\n1,a,x\n2,b,"Senior\n3,c,x\n4,d,"Lead"\n5,e,x\n'
    reader = read_extract(stream(text), LENIENT, id_column=id_column)
    with pytest.raises(ExtractError) as info:
        list(reader)
    assert info.value.line == 3
    assert "lines 3\u20135" in str(info.value)
    assert "a quote on line 5 closes it" in str(info.value)


@pytest.mark.parametrize("id_column", ["Id", None])
def test_multiline_row_with_the_wrong_field_count_is_an_open_quote(id_column: str | None) -> None:
    # well-formed quoting, but the row over lines 2-4 has an extra field: the file is refused
    text = 'Id,Name,Title\n1,a,"x\n2,b,y\n3,c,z",extra\n4,d,w\n'
    reader = read_extract(stream(text), LENIENT, id_column=id_column)
    with pytest.raises(
        ExtractError, match=r"line 2 \(lines 2\u20134\).*4 fields, the header has 3"
    ):
        list(reader)


def test_open_quote_on_the_last_line_is_refused() -> None:
    reader = read_extract(stream('Id,Name\n1,a\n2,"b'), LENIENT, id_column="Id")
    with pytest.raises(ExtractError, match=r"unterminated quote starting at line 3 \(lines 3"):
        list(reader)


def test_quoted_values_over_several_lines_are_still_read() -> None:
    text = 'Id,Address,City\n1,"1 Main St\nApt 2, rear",Oslo\n2,"x",Bergen\n3,y,"Trond\nheim"\n'
    reader = read_extract(stream(text), LENIENT, id_column="Id")
    rows = [(r.line, r.values["Address"], r.values["City"]) for r in reader]
    assert rows == [
        (2, "1 Main St\nApt 2, rear", "Oslo"),
        (4, "x", "Bergen"),
        (5, "y", "Trond\nheim"),
    ]
    assert not reader.rejected


def test_text_after_a_closing_quote_on_one_line_is_a_malformed_row() -> None:
    """Confined to one line, it swallows nothing: the row is rejected and reading goes on."""
    text = 'Id,Name\n1,"ab"c\n2,d\n'
    reader = read_extract(stream(text), LENIENT, id_column="Id")
    assert [r.values["Id"] for r in reader] == ["2"]
    [rej] = reader.rejected
    assert (rej.line, rej.reason_code) == (2, RejectReason.MALFORMED_ROW)


def test_the_reported_open_quote_example_is_refused_without_personal_data() -> None:
    data = b'id,name\n1,a\n"2,Jane Doe jane@x.com\n3,c\n'
    reader = read_extract(io.BytesIO(data), id_column="id")
    with pytest.raises(ExtractError) as info:
        list(reader)
    assert info.value.line == 3
    assert "Jane" not in str(info.value)
    assert "jane@x.com" not in str(info.value)


@pytest.mark.parametrize("delimiter", [",", ";"])
def test_rejected_rows_never_show_a_run_of_fields_as_the_id(delimiter: str) -> None:
    d = delimiter
    text = (
        f"Id{d}Name{d}Title\n"
        f'"2{d}Jane Doe jane@x.com"{d}x\n'  # one field short; the "id" holds the delimiter
        f"{'9' * 300}{d}n\n"  # an id too long to be one
        f"4{d}n{d}t{d}extra\n"  # a real id on a row with an extra field
    )
    reader = read_extract(stream(text), LENIENT, id_column="Id")
    assert list(reader) == []
    assert [(r.line, r.external_id) for r in reader.rejected] == [(2, ""), (3, ""), (4, "4")]
    # callers rejecting rows after mapping get the same rule
    reader.add_rejected(9, "a\nb", "transform_failed", "x")
    assert reader.rejected[-1].external_id == ""


def test_field_over_the_parsers_old_limit_is_field_too_large_with_its_id() -> None:
    big = "y" * 200_000  # over the csv module's default field limit (131072)
    for text in (f"Id,Name\n1,a\n2,{big}\n3,c\n", f'Id,Name\n1,"a"\n2,{big}\n3,c\n'):
        reader = read_extract(stream(text), LENIENT, id_column="Id")
        assert [r.values["Id"] for r in reader] == ["1", "3"]
        [rej] = reader.rejected
        assert (rej.line, rej.external_id, rej.reason_code) == (3, "2", "field_too_large")
        assert rej.message == "Name over 4096 bytes"


def test_field_over_the_parsers_limit_is_field_too_large() -> None:
    limit = csv.field_size_limit()
    text = f'Id,Name\n1,"a"\n2,{"y" * (limit + 1)}\n3,c\n'
    reader = read_extract(stream(text), LENIENT, id_column="Id")
    assert [r.values["Id"] for r in reader] == ["1", "3"]
    [rej] = reader.rejected
    assert (rej.line, rej.reason_code) == (3, RejectReason.FIELD_TOO_LARGE)
