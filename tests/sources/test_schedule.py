"""NCRONTAB schedules of pulled sources: parsing, the next moment and "is a pull due?"."""

from __future__ import annotations

from datetime import datetime

import pytest

from connector.sources.schedule import parse_schedule


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_a_daily_schedule_is_next_due_at_its_time() -> None:
    s = parse_schedule("0 0 2 * * *")
    assert s.next_after(_t("2026-03-01T01:59:59")) == _t("2026-03-01T02:00:00")
    assert s.next_after(_t("2026-03-01T02:00:00")) == _t("2026-03-02T02:00:00")


def test_steps_ranges_lists_and_names() -> None:
    s = parse_schedule("30 */15 8-17 * Jan,Mar Mon-Fri")
    assert s.minutes == frozenset({0, 15, 30, 45})
    assert s.hours == frozenset(range(8, 18))
    assert s.months == frozenset({1, 3})
    assert s.weekdays == frozenset({1, 2, 3, 4, 5})
    # 2026-03-07 is a Saturday: the next moment is Monday 08:00:30
    assert s.next_after(_t("2026-03-06T17:45:30")) == _t("2026-03-09T08:00:30")


def test_sunday_is_0_or_7() -> None:
    assert parse_schedule("0 0 0 * * 7").weekdays == frozenset({0})


def test_is_due_once_a_scheduled_moment_has_passed_since_the_last_pull() -> None:
    s = parse_schedule("0 0 2 * * *")
    assert s.is_due(None, _t("2026-03-01T00:00:00"))
    assert not s.is_due(_t("2026-03-01T02:00:05"), _t("2026-03-02T01:59:59"))
    assert s.is_due(_t("2026-03-01T02:00:05"), _t("2026-03-02T02:00:00"))


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("0 2 * * *", "six NCRONTAB fields"),
        ("0 60 * * * *", "minute: '60' is outside 0-59"),
        ("0 0 0 0 * *", "day: '0' is outside 1-31"),
        ("0 0 0 * Foo *", "month: 'Foo' is not a number or name"),
        ("*/0 * * * * *", "second: step '0'"),
        ("0 0 5-2 * * *", "hour: '5-2' is outside"),
    ],
)
def test_bad_schedules_say_which_field(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_schedule(text)


def test_an_impossible_date_never_comes() -> None:
    assert parse_schedule("0 0 0 31 2 *").next_after(_t("2026-01-01T00:00:00")) is None
