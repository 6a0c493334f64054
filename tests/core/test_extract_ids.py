"""Duplicate and empty ids: every row with a repeated id rejected, across blocks, and the
id pass proving a file over the cap before any row is handed out."""

from __future__ import annotations

import io
from collections import Counter

import pytest

from connector.errors import TooManyRejectedRowsError
from connector.extract import ExtractProfile, RejectReason, read_extract
from connector.extract_header import header_reader
from connector.extract_ids import MASK, count_ids, new_buckets, repeats

from .helpers import filler, rows_of, stream


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


@pytest.mark.parametrize("id_col", ["Id", "Other"])
def test_duplicates_and_bad_rows_across_blocks(id_col: str) -> None:
    """Duplicates far apart, empty ids and wrong field counts in clean and mixed blocks."""
    head = "Id,Name,Other\n"
    a = filler(2500)
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


def test_repeats_names_each_repeated_hash_and_how_many_rows_carry_it() -> None:
    buckets = new_buckets()
    for ext in ["a", "b", "a", "c", "a", "u", "u"]:
        h = hash(ext)
        buckets[h & MASK].append(h)
    dups, rows = repeats(buckets, {hash("u")})  # "u" is unprintable: rejected as that
    assert (dups, rows) == ({hash("a")}, 3)
    assert not any(buckets)  # each bucket freed once counted


def _counted(text: str, idx: int = 0) -> tuple[set[int], int, int]:
    data = io.StringIO(text)
    reader, header, delim = header_reader(data, None, "x.csv")
    return count_ids(data, reader, len(header), idx, delim, "x.csv").result()


def test_block_line_by_line_and_csv_counts_of_the_ids_agree() -> None:
    body = "".join(f"{i % 1500},n\n" for i in range(2000)) + ",empty\n7\u200b,n\n"
    dups, rows, bad = _counted("Id,Name\n" + body)  # one block of clean lines
    assert dups == {hash(str(i)) for i in range(500)} | {hash("7\u200b")}
    assert (rows, bad) == (2002, 1000 + 2)  # ids 0-499 twice, an empty and an unprintable id
    assert _counted("Id,Name\n1,2,3\n" + body) == (dups, rows + 1, bad + 1)  # line by line
    assert _counted('Id,Name\n"q",n\n' + body) == (dups, rows + 1, bad)  # the csv reader
