"""NCRONTAB schedules (six fields, as Azure Functions timers use) and "is a pull due?".

``{second} {minute} {hour} {day} {month} {day-of-week}``: each field is ``*``, a number,
a range ``a-b``, a list ``a,b``, or any of these with a step ``/n``; months and days of
the week may be named (``Jan``, ``Mon``); Sunday is 0 (7 is accepted too). A moment
matches when every field matches (day and day-of-week both, as NCrontab does). Times are
UTC, as on the Flex Consumption plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

__all__ = ["Schedule", "parse_schedule"]

_MONTHS: Final = [
    "jan",
    "feb",
    "mar",
    "apr",
    "may",
    "jun",
    "jul",
    "aug",
    "sep",
    "oct",
    "nov",
    "dec",
]
_DAYS: Final = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
_FIELDS: Final = (
    ("second", 0, 59, ()),
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day", 1, 31, ()),
    ("month", 1, 12, tuple(_MONTHS)),
    ("day-of-week", 0, 7, tuple(_DAYS)),
)
_HORIZON_DAYS: Final = 366 * 5


def _number(text: str, low: int, names: tuple[str, ...], field: str) -> int:
    key = text.lower()
    if key in names:
        return names.index(key) + low
    if not text.isdigit():
        raise ValueError(f"{field}: {text!r} is not a number{' or name' if names else ''}")
    return int(text)


def _field(text: str, field: str, low: int, high: int, names: tuple[str, ...]) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        body, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) < 1:
                raise ValueError(f"{field}: step {step_text!r} must be a positive number")
            step = int(step_text)
        if body == "*":
            start, end = low, high
        elif "-" in body:
            a, _, b = body.partition("-")
            start, end = _number(a, low, names, field), _number(b, low, names, field)
        else:
            start = _number(body, low, names, field)
            end = high if step_text else start
        if not (low <= start <= high and low <= end <= high) or start > end:
            raise ValueError(f"{field}: {part!r} is outside {low}-{high}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


@dataclass(frozen=True, slots=True)
class Schedule:
    """A parsed NCRONTAB expression; ``text`` is what the config said."""

    text: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]

    def _day_matches(self, day: datetime) -> bool:
        dow = (day.weekday() + 1) % 7  # Python: Monday 0; cron: Sunday 0
        return day.month in self.months and day.day in self.days and dow in self.weekdays

    def next_after(self, moment: datetime) -> datetime | None:
        """The first matching moment strictly after ``moment`` (None within five years)."""
        start = moment.replace(microsecond=0) + timedelta(seconds=1)
        day = start.replace(hour=0, minute=0, second=0)
        for _ in range(_HORIZON_DAYS):
            if self._day_matches(day):
                for h in sorted(self.hours):
                    for m in sorted(self.minutes):
                        for s in sorted(self.seconds):
                            candidate = day.replace(hour=h, minute=m, second=s)
                            if candidate >= start:
                                return candidate
            day += timedelta(days=1)
        return None

    def is_due(self, last_pull: datetime | None, now: datetime) -> bool:
        """True when a scheduled moment has passed since ``last_pull`` (always, if never)."""
        if last_pull is None:
            return True
        upcoming = self.next_after(last_pull)
        return upcoming is not None and upcoming <= now


def parse_schedule(text: str) -> Schedule:
    """Parse a six-field NCRONTAB expression; ``ValueError`` says which field is wrong."""
    parts = text.split()
    if len(parts) != 6:
        raise ValueError(
            "schedule must be six NCRONTAB fields '{second} {minute} {hour} {day} {month}"
            f" {{day-of-week}}', e.g. '0 0 2 * * *' (02:00 UTC daily); got {len(parts)} fields"
        )
    sets = [
        _field(p, name, low, high, names)
        for p, (name, low, high, names) in zip(parts, _FIELDS, strict=True)
    ]
    weekdays = frozenset(d % 7 for d in sets[5])
    return Schedule(text, sets[0], sets[1], sets[2], sets[3], sets[4], weekdays)
