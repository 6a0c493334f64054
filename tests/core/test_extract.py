"""The extract reader: quoting and line endings, and the rejected-row cap (before the
first row or after the last, or left to the caller)."""

from __future__ import annotations

import pytest

from connector.errors import TooManyRejectedRowsError
from connector.extract import (
    ExtractProfile,
    read_extract,
)

from .helpers import rows_of, stream


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
