"""Database and JSON values become the text a CSV export of the same data would hold."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from uuid import UUID

import pytest

from connector.errors import UnconvertibleValueError
from connector.sources.values import to_text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, ""),
        ("", ""),
        ("x", "x"),
        (True, "true"),
        (False, "false"),
        (0, "0"),
        (-12, "-12"),
        (0.1, "0.1"),
        (0.1 + 0.2, "0.30000000000000004"),
        (3.0, "3"),
        (1e20, "1e+20"),
        (Decimal("12.50"), "12.50"),
        (Decimal("1E+3"), "1000"),
        (Decimal("0.000001"), "0.000001"),
        (date(2026, 1, 5), "2026-01-05"),
        (datetime(2026, 1, 5, 8, 30), "2026-01-05T08:30:00"),
        (datetime(2026, 1, 5, 8, 30, 0, 120, tzinfo=UTC), "2026-01-05T08:30:00.000120+00:00"),
        (
            datetime(2026, 1, 5, 8, 30, tzinfo=timezone(timedelta(hours=2))),
            "2026-01-05T08:30:00+02:00",
        ),
        (time(9, 15), "09:15:00"),
        (UUID(int=1), "00000000-0000-0000-0000-000000000001"),
        ({"a": [1, "b"]}, '{"a":[1,"b"]}'),
    ],
)
def test_values_become_text_by_the_documented_rules(value: object, text: str) -> None:
    assert to_text(value, "col") == text


@pytest.mark.parametrize("value", [b"\x00", bytearray(b"x"), memoryview(b"x")])
def test_binary_values_are_refused_naming_the_column_not_the_value(value: object) -> None:
    with pytest.raises(UnconvertibleValueError, match="column 'Photo' holds binary") as info:
        to_text(value, "Photo")
    assert info.value.column == "Photo"


@pytest.mark.parametrize("value", [float("nan"), float("inf"), Decimal("NaN")])
def test_non_finite_numbers_are_refused(value: object) -> None:
    with pytest.raises(UnconvertibleValueError, match="non-finite"):
        to_text(value, "Score")
