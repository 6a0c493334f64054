"""LogCursor: incremental log reads that neither miss late entries nor count one twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from connector.errors import StateError
from connector.graph.logs import LogCursor

T0 = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
SKEW = timedelta(minutes=5)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_an_empty_cursor_reads_from_the_start_and_keeps_nothing() -> None:
    cursor = LogCursor()
    assert cursor.since(SKEW) is None
    assert cursor.is_new("a")
    assert cursor.advanced([], SKEW) == cursor


def test_the_next_pass_starts_one_skew_before_the_newest_entry() -> None:
    cursor = LogCursor().advanced([("a", at(0)), ("b", at(600)), ("c", at(500))], SKEW)
    assert cursor.newest == at(600)
    assert cursor.since(SKEW) == at(300)
    # only entries inside the margin are remembered: older ones cannot come back
    assert cursor.boundary == (("b", at(600)), ("c", at(500)))
    assert not cursor.is_new("b")
    assert not cursor.is_new("c")
    assert cursor.is_new("a")  # below the next query's since: never returned again


def test_a_late_entry_older_than_the_newest_is_read_once() -> None:
    first = LogCursor().advanced([("a", at(600))], SKEW)
    # next pass: the service returns a again, plus a late entry written for t=590
    returned = [("a", at(600)), ("late", at(590))]
    fresh = [e for e in returned if first.is_new(e[0])]
    assert fresh == [("late", at(590))]
    second = first.advanced(fresh, SKEW)
    assert not second.is_new("late")
    assert not second.is_new("a")
    assert second.newest == at(600)


def test_entries_at_the_same_instant_are_all_remembered() -> None:
    cursor = LogCursor().advanced([(f"e{i}", at(100)) for i in range(3)], SKEW)
    assert [cursor.is_new(f"e{i}") for i in range(4)] == [False, False, False, True]


def test_round_trip_through_json() -> None:
    cursor = LogCursor().advanced([("a", at(0.5)), ("b", at(10))], SKEW)
    again = LogCursor.from_json(cursor.to_json())
    assert again == cursor
    assert not again.is_new("a")
    assert LogCursor.from_json({"newest": None}) == LogCursor()


@pytest.mark.parametrize(
    "raw",
    [
        {"newest": 5},
        {"newest": None, "boundary": [["a"]]},
        {"boundary": "x"},
        {"newest": "yesterday"},
    ],
)
def test_bad_json_is_a_clear_error(raw: dict[str, object]) -> None:
    with pytest.raises(StateError, match="log cursor"):
        LogCursor.from_json(raw)
