"""The str.split fast path: blocks of lines read exactly as the csv module reads them,
with every rule holding across blocks and where the csv reader takes over."""

from __future__ import annotations

import csv
import io

import pytest

from connector.extract import ExtractProfile, RejectReason
from connector.extract_blocks import quoted_rows, split_block
from connector.extract_controls import NulWatch

from .helpers import filler, rows_of, stream


@pytest.mark.parametrize("kind", ["long_line", "quoted_short_lines"])
def test_oversized_fields_are_found_after_the_first_blocks(kind: str) -> None:
    """Sizes are checked per block; a long line or long quoted field far down is still caught."""
    profile = ExtractProfile(max_field_bytes=100, max_rejected_share=1.0)
    if kind == "long_line":
        big, height = f"100001,{'x' * 101},v\n", 1
    else:  # every line shorter than max_field_bytes / 4, the field 125 characters
        big, height = '100001,"' + "\n".join(["y" * 20] * 6) + '",v\n', 6
    text = "Id,Name,Other\n" + filler(3000) + big + filler(3000, 3000) + "999999,a,b\n"
    reader, rows = rows_of(stream(text), profile)
    got = [(r.line, r.external_id, r.reason_code) for r in reader.rejected]
    assert got == [(3002, "100001", RejectReason.FIELD_TOO_LARGE)]
    assert rows[-1] == (6002 + height, {"Id": "999999", "Name": "a", "Other": "b"})
    assert len(rows) == 6001


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_line_numbers_hold_when_quoting_starts_far_down(newline: str) -> None:
    """Quote-free blocks are split directly; from the first quote the csv parser takes over."""
    nl = newline
    clean = "".join(f"{i},name {i} ,x{nl}" for i in range(3000))
    text = (
        f'Id,"Na{nl}me",Other{nl}'  # a header over two lines
        + clean
        + f"3000,only two{nl}"
        + f'3001,"multi{nl}line, quoted",x{nl}'
        + f"{nl}"  # blank line: skipped, still counted
        + f"3002,after,x{nl}"
        + f"3003,too,many,fields{nl}"
        + "3004,last, no newline "
    )
    reader, rows = rows_of(stream(text))
    assert reader.header == ["Id", f"Na{nl}me", "Other"]
    assert rows[0] == (3, {"Id": "0", f"Na{nl}me": "name 0", "Other": "x"})
    assert rows[2999][0] == 3002
    got = [(line, v["Id"]) for line, v in rows[3000:]]
    assert got == [(3004, "3001"), (3007, "3002"), (3009, "3004")]
    assert rows[3000][1][f"Na{nl}me"] == f"multi{nl}line, quoted"
    assert rows[-1][1]["Other"] == "no newline"
    assert [(r.line, r.external_id, r.reason_code) for r in reader.rejected] == [
        (3003, "3000", RejectReason.FIELD_COUNT),
        (3008, "3003", RejectReason.FIELD_COUNT),
    ]


def test_split_and_csv_paths_give_the_same_rows() -> None:
    """The same lines read quote-free (split) and after a quote (csv module) agree."""
    body = "".join(f"{i}, a\u2003b ,\u00a0c,\t d\t\n" for i in range(2000)) + "\n  \n"
    plain_reader, plain = rows_of(stream("Id,A,B,C\n" + body))
    quoted_reader, quoted = rows_of(stream('Id,A,B,C\n"x",y,z,w\n' + body))
    assert plain == [(line - 1, v) for line, v in quoted[1:]]
    assert plain[0][1] == {"Id": "0", "A": "a\u2003b", "B": "c", "C": "d"}
    assert plain_reader.stats.rows_read == quoted_reader.stats.rows_read - 1 == 2000


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_one_column_file_skips_blank_lines(newline: str) -> None:
    text = newline.join(["Id", "1", "", "2", "   ", "3"]) + newline + newline
    reader, rows = rows_of(stream(text))
    assert [(line, v["Id"]) for line, v in rows] == [(2, "1"), (4, "2"), (6, "3")]
    # an empty line is skipped; a line of spaces is a row whose id is empty
    assert [(r.line, r.reason_code) for r in reader.rejected] == [
        (5, RejectReason.EMPTY_EXTERNAL_ID)
    ]


QUOTED_CASES = {
    "every field quoted": '"Id","Name"\n"1","Ann"\n"2",""\n',
    "delimiter inside a quoted value": '"Id","Name"\n"1","Lee, Ann"\n"2","a"",""b"\n',
    "doubled quote": '"Id","Name"\n"1","Ann ""Nan"" Lee"\n"2","Bob"\n',
    "a value over two lines": '"Id","Name"\n"1","Ann\nLee"\n"2","Bob"\n',
    "space outside the quotes": '"Id","Name"\n"1", "Ann"\n"2","Bob"\n',
    "some fields unquoted": '"Id","Name"\n1,"Ann"\n"2",Bob\n',
    "wrong field count": '"Id","Name"\n"1","Ann","x"\n"2","Bob"\n',
    "crlf endings": '"Id","Name"\r\n"1","Ann"\r\n"2","Bob"\r\n',
}


@pytest.mark.parametrize("name", sorted(QUOTED_CASES))
@pytest.mark.parametrize("delimiter", [",", ";"])
def test_quoted_lines_read_as_the_csv_module_reads_them(name: str, delimiter: str) -> None:
    text = QUOTED_CASES[name].replace('","', f'"{delimiter}"')
    expected = [
        [v.strip() for v in row] for row in csv.reader(io.StringIO(text), delimiter=delimiter)
    ][1:]
    reader, rows = rows_of(stream(text, "utf-8"))
    good = [row for row in expected if len(row) == 2]
    assert [list(values.values()) for _, values in rows] == good
    assert len(reader.rejected) == len(expected) - len(good)


def test_a_quoted_block_then_a_block_the_csv_reader_must_parse() -> None:
    """A clean quoted first block is split; a doubled quote far later still parses exactly."""
    clean = "".join(f'"{i}","Name {i}"\n' for i in range(1, 5001))
    text = '"Id","Name"\n' + clean + '"5001","Ann ""Nan"""\n"5002","x\ny"\n'
    reader, rows = rows_of(stream(text, "utf-8"))
    assert len(rows) == 5002
    assert rows[1] == (3, {"Id": "2", "Name": "Name 2"})
    assert rows[-2] == (5002, {"Id": "5001", "Name": 'Ann "Nan"'})
    assert rows[-1] == (5003, {"Id": "5002", "Name": "x\ny"})
    assert not reader.rejected


def test_lines_without_a_quote_split_on_the_delimiter_keeping_the_line_end() -> None:
    rows = split_block(["1,a\n", "2, b\r\n"], 2, 100, ",", NulWatch())
    assert rows is not None
    assert list(rows) == [["1", "a\n"], ["2", " b\r\n"]]


@pytest.mark.parametrize(
    ("lines", "ncols", "quick_cap"),
    [
        (["1\n", "2\n"], 1, 100),  # one column: a blank line is a field, the csv reader decides
        (["1,a\n", "2," + "b" * 30 + "\n"], 2, 25),  # a line longer than a quarter of the cap
        (['1,"a""b"\n'], 2, 100),  # a doubled quote
        (["1,a\x00\n"], 2, 100),  # a control character
    ],
)
def test_a_block_str_split_could_misread_goes_to_the_csv_reader(
    lines: list[str], ncols: int, quick_cap: int
) -> None:
    assert split_block(lines, ncols, quick_cap, ",", NulWatch()) is None


def test_after_a_control_character_every_block_goes_to_the_csv_reader() -> None:
    nul = NulWatch()
    assert split_block(["1,a\x1b\n"], 2, 100, ",", nul) is None
    assert split_block(['"2","b"\n'], 2, 100, ",", nul) is None


def test_fully_quoted_lines_split_on_quote_delimiter_quote() -> None:
    assert quoted_rows(['"1";"Lee, Ann"\n', '"2";""\r\n'], 2, ";") == [
        ["1", "Lee, Ann"],
        ["2", ""],
    ]
    assert quoted_rows(['"1","a"\n', '"2", "b"\n'], 2, ",") is None  # a space outside quotes
    assert quoted_rows(['"1","a","b"\n'], 2, ",") is None  # a field too many
