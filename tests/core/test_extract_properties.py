"""Property: a table written with csv.writer reads back equal, any delimiter and encoding."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from connector.errors import ExtractError
from connector.extract import SNIFFED_DELIMITERS, ExtractProfile, read_extract
from connector.extract_controls import FORBIDDEN

from .helpers import stream

ENCODINGS = ["utf-8", "utf-8-sig", "utf-16-le", "utf-16-be", "cp1252"]


#: a value holding one of these controls is rejected (connector/extract_controls.py)
C0 = "".join(FORBIDDEN)


def _encodable(encoding: str) -> st.SearchStrategy[str]:
    chars = st.characters(
        codec="cp1252" if encoding == "cp1252" else "utf-8", exclude_characters=C0
    )
    return st.text(chars, max_size=12).map(str.strip)


@st.composite
def tables(draw: st.DrawFn, encoding: str) -> tuple[list[str], list[list[str]]]:
    ncols = draw(st.integers(1, 5))
    name = _encodable(encoding).filter(
        lambda s: bool(s) and s[0] not in "\"'\ufeff" and s[-1] not in "\"'"
    )
    header = draw(st.lists(name, min_size=ncols, max_size=ncols, unique=True))
    row = st.lists(_encodable(encoding), min_size=ncols, max_size=ncols)
    rows = draw(st.lists(row, max_size=8))
    if ncols == 1:  # a one-column empty row is written as "" and kept; fine either way
        rows = [r for r in rows if r[0]]
    return header, rows


def _write(
    header: list[str], rows: list[list[str]], delimiter: str, newline: str, quoting: int
) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=delimiter, lineterminator=newline, quoting=quoting)
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    encoding=st.sampled_from(ENCODINGS),
    delimiter=st.sampled_from(SNIFFED_DELIMITERS),
    newline=st.sampled_from(["\n", "\r\n"]),
    quoting=st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]),
)
def test_written_table_reads_back_equal(
    data: st.DataObject, encoding: str, delimiter: str, newline: str, quoting: int
) -> None:
    header, rows = data.draw(tables(encoding))
    if newline == "\n":
        # Python 3.11's csv.writer leaves a lone CR unquoted when the line terminator is
        # LF, so such a file is ambiguous for any reader; CRLF files quote it.
        assume(not any("\r" in v for v in [*header, *(c for r in rows for c in r)]))
    text = _write(header, rows, delimiter, newline, quoting)
    named = "cp1252" if encoding == "cp1252" else None
    profile = ExtractProfile(encoding=named, delimiter=delimiter, max_rejected_share=1.0)
    reader = read_extract(stream(text, encoding), profile)
    assert reader.header == header
    got = list(reader)
    assert [list(r.values.values()) for r in got] == rows
    assert all(list(r.values) == header for r in got)
    lines = [r.line for r in got]
    assert lines == sorted(set(lines))
    assert not reader.rejected


@settings(max_examples=40, deadline=None)
@given(
    ids=st.lists(st.integers(0, 30).map(str), min_size=1, max_size=25),
    delimiter=st.sampled_from(SNIFFED_DELIMITERS),
)
def test_duplicates_never_win_and_delimiter_is_sniffed(ids: list[str], delimiter: str) -> None:
    text = _write(
        ["Id", "Name", "City"], [[i, "n", "c"] for i in ids], delimiter, "\n", csv.QUOTE_MINIMAL
    )
    reader = read_extract(stream(text), ExtractProfile(max_rejected_share=1.0), id_column="Id")
    assert reader.delimiter == delimiter
    accepted = [r.values["Id"] for r in reader]
    assert accepted == [i for i in ids if ids.count(i) == 1]
    assert sorted(r.external_id for r in reader.rejected) == sorted(
        i for i in ids if ids.count(i) > 1
    )
    assert reader.stats.rows_read == len(ids)


@settings(max_examples=80, deadline=None)
@given(
    ids=st.lists(
        st.sampled_from(["1", "2", "a,b", 'q"x', "line\nbreak", " 3", "3", ""]), max_size=20
    ),
    bad=st.lists(st.booleans(), max_size=20),
    delimiter=st.sampled_from(SNIFFED_DELIMITERS),
)
def test_id_pass_agrees_with_csv_module(ids: list[str], bad: list[bool], delimiter: str) -> None:
    """Both id-pass paths (plain lines, then csv from the first quote) match a plain csv read.

    A row running over several lines with the wrong field count is how a quote left open
    shows; the file is then refused as a whole, naming the line the row starts on.
    """
    rows = [
        [i, "n"] + (["extra"] if b else [])
        for i, b in zip(ids, bad + [False] * len(ids), strict=False)
    ]
    text = _write(["Id", "Name"], rows, delimiter, "\n", csv.QUOTE_MINIMAL)
    reader = read_extract(
        stream(text), ExtractProfile(max_rejected_share=1.0, delimiter=delimiter), id_column="Id"
    )
    runaway = [n for n, r in enumerate(rows) if len(r) != 2 and "\n" in r[0]]
    if runaway:
        start = 2 + sum(1 + r[0].count("\n") for r in rows[: runaway[0]])
        with pytest.raises(ExtractError, match="unterminated quote") as info:
            list(reader)
        assert info.value.line == start
        return
    accepted = [r.values["Id"] for r in reader]
    parsed = list(csv.reader(io.StringIO(text), delimiter=delimiter))[1:]
    good = [r[0].strip() for r in parsed if len(r) == 2]
    # an id with a line break is not printable: rejected as control_character
    expected = [i for i in good if i and good.count(i) == 1 and i.isprintable()]
    assert accepted == expected
