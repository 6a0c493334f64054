"""The csv module under the reader: its field limit only ever raised, and which parse
errors are a malformed row and which an unterminated quote (file-level)."""

from __future__ import annotations

import csv
from collections.abc import Iterator

import pytest

from connector.errors import ExtractError
from connector.extract_csv import check_csv_error, ensure_field_limit


@pytest.fixture
def field_limit() -> Iterator[int]:
    """The process-wide limit, put back afterwards."""
    before = csv.field_size_limit()
    yield before
    csv.field_size_limit(before)


def test_the_field_limit_is_raised_above_the_byte_cap_and_never_lowered(field_limit: int) -> None:
    csv.field_size_limit(10 * 1024 * 1024)
    ensure_field_limit(4096)
    assert csv.field_size_limit() == 10 * 1024 * 1024
    ensure_field_limit(20 * 1024 * 1024)
    assert csv.field_size_limit() == 20 * 1024 * 1024 + 1


def test_a_parse_error_within_one_line_is_left_to_the_caller() -> None:
    check_csv_error(csv.Error("',' expected after '\"'"), 5, 5, columns=2, label="x.csv")


@pytest.mark.parametrize(
    ("message", "first", "last", "detail"),
    [
        ("unexpected end of data", 5, 5, "the file ends inside the quoted value"),
        ("',' expected after '\"'", 5, 9, "a quote on line 9 closes it and text follows"),
        ("field larger than field limit (131072)", 5, 9, "the quoted value grew over"),
    ],
)
def test_a_parse_error_over_several_lines_is_an_unterminated_quote(
    message: str, first: int, last: int, detail: str
) -> None:
    with pytest.raises(ExtractError) as info:
        check_csv_error(csv.Error(message), first, last, columns=2, label="x.csv")
    assert f"unterminated quote starting at line {first} (lines {first}\u2013{last})" in str(
        info.value
    )
    assert detail in str(info.value)
    assert info.value.line == first
