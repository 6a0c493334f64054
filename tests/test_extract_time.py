"""The extract time: a date in the file name, else the file's time, else the arrival."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.config import parse_sources
from connector.extract_time import (
    ARRIVAL_WARNING,
    date_in_name,
    decide_extract_time,
    ordering_warning,
)

ARRIVED = datetime(2026, 5, 5, 12, 0, tzinfo=UTC)
FILE_TIME = datetime(2026, 5, 4, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("hr_2026-01-31.csv", datetime(2026, 1, 31, tzinfo=UTC)),
        ("hr_20260131.csv", datetime(2026, 1, 31, tzinfo=UTC)),
        ("employees/hr_2026-01-31T020304.csv", datetime(2026, 1, 31, 2, 3, 4, tzinfo=UTC)),
        ("hr_2026-01-31T02:03:04Z.csv", datetime(2026, 1, 31, 2, 3, 4, tzinfo=UTC)),
        ("hr_20260131_020304.csv", datetime(2026, 1, 31, 2, 3, 4, tzinfo=UTC)),
        ("hr_20260131-0203.csv", datetime(2026, 1, 31, 2, 3, tzinfo=UTC)),
        ("hr_2026-01-31 02-03-04.csv", datetime(2026, 1, 31, 2, 3, 4, tzinfo=UTC)),
        ("hr_2026-01-31T020304+0200.csv", datetime(2026, 1, 31, 0, 3, 4, tzinfo=UTC)),
        ("hr_2026-01-31T02:03:04-05:00.csv", datetime(2026, 1, 31, 7, 3, 4, tzinfo=UTC)),
        ("2026-01-31.csv", datetime(2026, 1, 31, tzinfo=UTC)),
        ("x\\hr_20260131.csv", datetime(2026, 1, 31, tzinfo=UTC)),
    ],
)
def test_a_date_in_the_file_name_is_the_extract_time(name: str, expected: datetime) -> None:
    assert date_in_name(name) == expected


@pytest.mark.parametrize(
    "name",
    [
        "hr_latest.csv",
        "hr_31-01-2026.csv",  # day first: not guessed
        "hr_01-31-2026.csv",  # month first: not guessed
        "hr_31012026.csv",
        "hr_260131.csv",  # two-digit year
        "hr_20261399.csv",  # no such date
        "hr_2026-0131.csv",  # mixed separators
        "export_1202601311.csv",  # digits touching: an id, not a date
        "hr_20260131_to_20260201.csv",  # two different dates: ambiguous
        "2026-01-31/hr.csv",  # a folder's date is not the file's
        "",
    ],
)
def test_ambiguous_or_impossible_names_give_no_date(name: str) -> None:
    assert date_in_name(name) is None


def test_the_same_date_twice_in_a_name_is_that_date() -> None:
    assert date_in_name("hr_20260131_2026-01-31.csv") == datetime(2026, 1, 31, tzinfo=UTC)


def test_precedence_is_pattern_then_name_then_file_time_then_arrival() -> None:
    pattern_time = datetime(2025, 1, 1, tzinfo=UTC)
    got = decide_extract_time(pattern_time, "hr_20260131.csv", FILE_TIME, ARRIVED)
    assert (got.at, got.basis) == (pattern_time, "name-pattern")
    got = decide_extract_time(None, "hr_20260131.csv", FILE_TIME, ARRIVED)
    assert (got.at, got.basis) == (datetime(2026, 1, 31, tzinfo=UTC), "name")
    got = decide_extract_time(None, "hr.csv", FILE_TIME, ARRIVED)
    assert (got.at, got.basis) == (FILE_TIME, "file-time")
    got = decide_extract_time(None, "hr.csv", None, ARRIVED)
    assert (got.at, got.basis) == (ARRIVED, "arrival")


def test_only_an_arrival_time_carries_the_ordering_warning() -> None:
    assert ordering_warning("arrival") == ARRIVAL_WARNING
    for basis in ("name-pattern", "name", "file-time", None):
        assert ordering_warning(basis) is None


CONFIG = """
sources:
  - name: employees
    match: employees/
    mapping: m.yaml
    endpoint: https://graph.microsoft.com/v1.0/servicePrincipals/sp/synchronization/jobs/j/bulkUpload
    extract_timestamp: {pattern: '_(?P<ts>\\d{8}T\\d{6})\\.csv$', format: '%Y%m%dT%H%M%S'}
  - name: contractors
    match: vendors/
    mapping: m.yaml
    endpoint: https://graph.microsoft.com/v1.0/servicePrincipals/sp/synchronization/jobs/j/bulkUpload
"""


def test_a_source_without_a_pattern_reads_the_date_in_the_name_by_default() -> None:
    con = parse_sources(CONFIG).source("contractors")
    got = con.extract_time_of("vendors/hr_2026-01-31.csv", ARRIVED)
    assert (got.at, got.basis) == (datetime(2026, 1, 31, tzinfo=UTC), "name")
    got = con.extract_time_of("vendors/hr.csv", ARRIVED, FILE_TIME)
    assert (got.at, got.basis) == (FILE_TIME, "file-time")


def test_a_configured_pattern_that_does_not_match_falls_back_to_the_defaults() -> None:
    emp = parse_sources(CONFIG).source("employees")
    got = emp.extract_time_of("employees/hr_20260101T020304.csv", ARRIVED)
    assert (got.at, got.basis) == (datetime(2026, 1, 1, 2, 3, 4, tzinfo=UTC), "name-pattern")
    got = emp.extract_time_of("employees/hr_2026-02-01.csv", ARRIVED)
    assert (got.at, got.basis) == (datetime(2026, 2, 1, tzinfo=UTC), "name")


@settings(max_examples=300, derandomize=True)
@given(
    st.text(alphabet="0123456789-_T :Z+/\\.hrcsv", max_size=40),
)
def test_any_file_name_gives_a_utc_time_or_none(name: str) -> None:
    got = date_in_name(name)
    assert got is None or got.utcoffset() == timedelta(0)


@settings(max_examples=200, derandomize=True)
@given(st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2099, 12, 31)))
def test_a_written_time_reads_back(ts: datetime) -> None:
    ts = ts.replace(microsecond=0, tzinfo=UTC)
    assert date_in_name(f"hr_{ts:%Y%m%dT%H%M%S}.csv") == ts
    assert date_in_name(f"hr_{ts:%Y-%m-%d}.csv") == ts.replace(hour=0, minute=0, second=0)
