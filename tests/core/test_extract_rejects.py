"""Rejected rows: line, id and reason of each, counts, and messages without values."""

from __future__ import annotations

import pytest

from connector.extract import ExtractProfile, RejectReason
from connector.extract_rejects import Rejections

from .helpers import rows_of, stream


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


def test_every_rejection_is_counted_though_only_keep_are_listed() -> None:
    rejections = Rejections(["Id", "Name"], "Id", ",")
    rejections.keep = 2
    for line in range(2, 7):
        rejections.bad_id(line, "")
    assert [r.line for r in rejections.rejected] == [2, 3]
    assert rejections.stats.rejected_by_reason == {RejectReason.EMPTY_EXTERNAL_ID: 5}


@pytest.mark.parametrize("ext", ["1,Ann Lee", "1\nAnn", "9" * 257])
def test_an_id_that_may_be_a_run_of_fields_is_not_shown(ext: str) -> None:
    rejections = Rejections(["Id", "Name"], "Id", ",")
    rejections.add(2, ext, RejectReason.FIELD_COUNT, "3 fields, the header has 2")
    assert rejections.rejected[0].external_id == ""


def test_an_unprintable_id_is_shown_escaped_and_the_message_names_the_code_point() -> None:
    rejections = Rejections(["Id", "Name"], "Id", ",")
    rejections.bad_id(4, "100004\x00")
    row = rejections.rejected[0]
    assert (row.external_id, row.reason_code) == ("100004\\u0000", RejectReason.CONTROL_CHARACTER)
    assert "U+0000" in row.message
