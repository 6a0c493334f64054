"""The extract reader: encodings, delimiters, quoting, header rules, row rejection."""

from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path

import pytest

from connector.errors import ExtractError, TooManyRejectedRowsError
from connector.extract import (
    ExtractProfile,
    ExtractReader,
    RejectReason,
    encoding_problem,
    read_extract,
)

from .helpers import stream

LENIENT = ExtractProfile(max_rejected_share=1.0)


def rows_of(
    data: io.BytesIO | Path, profile: ExtractProfile = LENIENT, id_column: str | None = "Id"
) -> tuple[ExtractReader, list[tuple[int, dict[str, str]]]]:
    reader = read_extract(data, profile, id_column=id_column)
    return reader, [(r.line, r.values) for r in reader]


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


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_delimiter_is_sniffed_from_header(delimiter: str) -> None:
    text = delimiter.join(["Id", "Name", "City"]) + "\n" + delimiter.join(["1", "A", "B"]) + "\n"
    reader, rows = rows_of(stream(text))
    assert reader.delimiter == delimiter
    assert rows == [(2, {"Id": "1", "Name": "A", "City": "B"})]


def test_sniff_ignores_delimiters_inside_quotes() -> None:
    reader, _ = rows_of(stream('"Id;x","Name;y"\n1,2\n'), id_column=None)
    assert reader.delimiter == ","
    assert reader.header == ["Id;x", "Name;y"]


def test_configured_delimiter_wins() -> None:
    reader, rows = rows_of(
        stream("Id;Name,Full\n1;a,b\n"), ExtractProfile(delimiter=";", max_rejected_share=1)
    )
    assert reader.header == ["Id", "Name,Full"]
    assert rows == [(2, {"Id": "1", "Name,Full": "a,b"})]


def test_quoting_crlf_last_line_and_trailing_whitespace() -> None:
    text = 'Id,Note,City\r\n1,"a, ""quoted""\r\nsecond line",Paris  \r\n2,plain,Oslo \r\n3,x,Rome '
    reader, rows = rows_of(stream(text))
    assert rows == [
        (2, {"Id": "1", "Note": 'a, "quoted"\r\nsecond line', "City": "Paris"}),
        (4, {"Id": "2", "Note": "plain", "City": "Oslo"}),
        (5, {"Id": "3", "Note": "x", "City": "Rome"}),
    ]
    assert reader.stats.rows_read == 3


def test_logic_app_sample_shape() -> None:
    """CSV2SCIM's csv-with-5-records.txt: CRLF and a trailing space on the last row."""
    header = "WorkerID,WorkerStatus,ManagerID"
    body = "\r\n".join(["1222,Active,", "1223,Active,1222", "1224,Active,1222 "])
    _, rows = rows_of(stream(header + "\r\n" + body + " "), id_column="WorkerID")
    assert [r[1]["ManagerID"] for r in rows] == ["", "1222", "1222"]


def test_header_is_cleaned() -> None:
    reader, _ = rows_of(stream('\ufeff"Id" , \'Name\' ,"  City "\n1,a,b\n'), id_column=None)
    assert reader.header == ["Id", "Name", "City"]


@pytest.mark.parametrize(
    ("header", "fragment"),
    [
        ("Id,Name,Id\n", "the same column name at positions 1, 3"),
        ("Id,,Name\n", "empty column name at position 2"),
    ],
)
def test_bad_header_is_a_file_error(header: str, fragment: str) -> None:
    with pytest.raises(ExtractError) as info:
        read_extract(stream(header + "1,2,3\n"))
    assert fragment in str(info.value)
    assert info.value.line == 1


def test_empty_file_is_an_error() -> None:
    with pytest.raises(ExtractError, match="empty"):
        read_extract(io.BytesIO(b""))


def test_missing_id_column_is_an_error() -> None:
    with pytest.raises(ExtractError, match="id column 'WorkerID' is not among the 2 columns"):
        read_extract(stream("Id,Name\n"), id_column="WorkerID")


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ExtractError, match="file not found"):
        read_extract(tmp_path / "nope.csv")


def test_row_rejections_carry_line_and_reason() -> None:
    text = "Id,Name,Note\n1,a,b\n2,b\n,c,d\n4,d," + "x" * 5000 + "\n5,e,f\n\n6,f,g\n"
    reader, rows = rows_of(stream(text))
    assert [r[0] for r in rows] == [2, 6, 8]
    got = [(r.line, r.external_id, r.reason_code) for r in reader.rejected]
    assert got == [
        (3, "2", RejectReason.FIELD_COUNT),
        (4, "", RejectReason.EMPTY_EXTERNAL_ID),
        (5, "4", RejectReason.FIELD_TOO_LARGE),
    ]
    assert reader.stats.to_dict() == {
        "rows_read": 6,
        "rows_accepted": 3,
        "rows_rejected": 3,
        "rejected_by_reason": {"empty_external_id": 1, "field_count": 1, "field_too_large": 1},
    }
    assert "x" * 10 not in " ".join(r.message for r in reader.rejected)


def test_field_cap_counts_utf8_bytes() -> None:
    profile = ExtractProfile(max_field_bytes=8, max_rejected_share=1.0)
    reader, rows = rows_of(stream("Id,Name\n1,abcdefgh\n2,éééé\n3,ééééé\n"), profile)
    assert [r[0] for r in rows] == [2, 3]
    assert [r.line for r in reader.rejected] == [4]


def test_duplicate_ids_reject_every_occurrence() -> None:
    text = "Id,Name\n1222,Talya\n1513,Ginnie\n1222,Aurelie\n7,x\n1222,Gaylene\n1513,y\n"
    reader, rows = rows_of(stream(text))
    assert rows == [(5, {"Id": "7", "Name": "x"})]
    dupes = [(r.line, r.external_id) for r in reader.rejected]
    assert dupes == [(2, "1222"), (3, "1513"), (4, "1222"), (6, "1222"), (7, "1513")]
    assert {r.reason_code for r in reader.rejected} == {RejectReason.DUPLICATE_EXTERNAL_ID}


def test_ids_are_compared_after_trimming() -> None:
    reader, rows = rows_of(stream("Id,Name\n1 ,a\n 1,b\n2,c\n"))
    assert [r[0] for r in rows] == [4]
    assert len(reader.rejected) == 2


def test_share_cap_raises_before_any_row_when_ids_prove_it() -> None:
    text = "Id,Name\n" + "".join(f"{i % 3},n\n" for i in range(10))
    reader = read_extract(stream(text), ExtractProfile(), id_column="Id")
    it = iter(reader)
    with pytest.raises(TooManyRejectedRowsError, match=r"10 of 10 rows rejected"):
        next(it)


def test_share_cap_raises_after_last_row() -> None:
    """Oversized fields are only found in the data pass, so the cap fires at the end."""
    profile = ExtractProfile(max_rejected_share=0.05, max_field_bytes=4)
    good = "".join(f"{i},n\n" for i in range(19))
    data = stream("Id,Name\n" + good + "20,toolong\n21,toolong\n")
    reader = read_extract(data, profile, id_column="Id")
    seen = []
    with pytest.raises(TooManyRejectedRowsError, match="2 of 21 rows rejected"):
        seen.extend(reader)
    assert len(seen) == 19
    # exactly at the cap is allowed
    ok = read_extract(stream("Id,Name\n" + good + "20,toolong\n"), profile, id_column="Id")
    assert len(list(ok)) == 19


def test_share_check_can_be_left_to_the_caller() -> None:
    text = "Id,Name\n1,toolong\n2,c\n"
    profile = ExtractProfile(max_field_bytes=4)
    reader = read_extract(stream(text), profile, id_column="Id", check_rejected_share=False)
    assert len(list(reader)) == 1


def test_malformed_row_is_rejected_and_reading_goes_on() -> None:
    big = "y" * 200_000  # over the csv module's own field limit
    text = f"Id,Name\n1,a\n2,{big}\n3,c\n"
    reader, rows = rows_of(stream(text))
    assert [r[1]["Id"] for r in rows] == ["1", "3"]
    assert reader.rejected[0].line == 3
    assert reader.rejected[0].reason_code in {
        RejectReason.MALFORMED_ROW,
        RejectReason.FIELD_TOO_LARGE,
    }


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
    ("kwargs", "fragment"),
    [
        ({"encoding": "nope-8"}, "unknown encoding"),
        ({"delimiter": ";;"}, "one character"),
        ({"delimiter": '"'}, "one character"),
        ({"max_field_bytes": 0}, "at least 1"),
        ({"max_rejected_share": 1.5}, "between 0 and 1"),
    ],
)
def test_profile_rejects_bad_settings(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        ExtractProfile(**kwargs)  # type: ignore[arg-type]


# -- large files: the reader works on blocks of lines, so rules must hold across blocks --------


def _filler(n: int, start: int = 0, ncols: int = 3) -> str:
    return "".join(f"{i},{'n' * 40},{'v' * 30}\n" for i in range(start, start + n))


@pytest.mark.parametrize("kind", ["long_line", "quoted_short_lines"])
def test_oversized_fields_are_found_after_the_first_blocks(kind: str) -> None:
    """Sizes are checked per block; a long line or long quoted field far down is still caught."""
    profile = ExtractProfile(max_field_bytes=100, max_rejected_share=1.0)
    if kind == "long_line":
        big, height = f"100001,{'x' * 101},v\n", 1
    else:  # every line shorter than max_field_bytes / 4, the field 125 characters
        big, height = '100001,"' + "\n".join(["y" * 20] * 6) + '",v\n', 6
    text = "Id,Name,Other\n" + _filler(3000) + big + _filler(3000, 3000) + "999999,a,b\n"
    reader, rows = rows_of(stream(text), profile)
    got = [(r.line, r.external_id, r.reason_code) for r in reader.rejected]
    assert got == [(3002, "100001", RejectReason.FIELD_TOO_LARGE)]
    assert rows[-1] == (6002 + height, {"Id": "999999", "Name": "a", "Other": "b"})
    assert len(rows) == 6001


@pytest.mark.parametrize("id_col", ["Id", "Other"])
def test_duplicates_and_bad_rows_across_blocks(id_col: str) -> None:
    """Duplicates far apart, empty ids and wrong field counts in clean and mixed blocks."""
    head = "Id,Name,Other\n"
    a = _filler(2500)
    if id_col == "Other":  # ids in the last column, with a CRLF line
        a = "".join(f"x,{'n' * 40},{i}\n" for i in range(2500))
    bad = "5,n\n" if id_col == "Id" else "x,n\n"
    empty = ",n,v\n" if id_col == "Id" else "x,n,\r\n"
    dup = "17,n,v\n" if id_col == "Id" else "x,n,17\r\n"
    quoted = '"9000","q,q",v\n' if id_col == "Id" else 'x,"q,q","9000"\n'
    text = head + a + bad + empty + a[: a.index("\n", 200) + 1] + dup + quoted + empty
    reader, rows = rows_of(stream(text), id_column=id_col)
    reasons = Counter(r.reason_code for r in reader.rejected)
    dup_rows = 2 + sum(1 for line in a[: a.index("\n", 200) + 1].splitlines())
    assert reasons[RejectReason.FIELD_COUNT] == 1
    assert reasons[RejectReason.EMPTY_EXTERNAL_ID] == 2
    # every first-block row that appears twice, plus both rows with id 17, is rejected
    assert reasons[RejectReason.DUPLICATE_EXTERNAL_ID] == 2 * (dup_rows - 2) + 2
    assert reader.stats.rows_read == 2500 + 1 + 1 + (dup_rows - 2) + 1 + 1 + 1
    assert rows[-1][1][id_col] == "9000"


def test_early_cap_across_blocks_counts_every_row() -> None:
    text = "Id,Name\n" + "".join(f"{i % 1000},n\n" for i in range(5000))
    reader = read_extract(stream(text), ExtractProfile(), id_column="Id")
    with pytest.raises(TooManyRejectedRowsError, match="5000 of 5000 rows rejected"):
        list(reader)


def test_early_cap_counts_empty_ids_in_large_blocks() -> None:
    text = "Id,Name\n" + "".join(f"{i if i % 2 else ''},n\n" for i in range(5000))
    reader = read_extract(stream(text), ExtractProfile(), id_column="Id")
    with pytest.raises(TooManyRejectedRowsError, match="2500 of 5000 rows rejected"):
        next(iter(reader))


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


@pytest.mark.parametrize("codec", ["rot13", "base64", "hex", "zlib_codec", "bz2_codec", "uu"])
def test_a_codec_that_is_not_a_text_encoding_is_refused(codec: str) -> None:
    problem = encoding_problem(codec)
    assert problem is not None
    assert "is not a text encoding" in problem
    with pytest.raises(ValueError, match="not a text encoding"):
        ExtractProfile(encoding=codec)


@pytest.mark.parametrize("name", ["utf-8", "cp1252", "latin-1", "utf-16", "UTF8"])
def test_text_encodings_are_accepted(name: str) -> None:
    assert encoding_problem(name) is None


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
