"""When an extract was taken, which orders a source's runs (pure; no I/O).

A late-arriving older file must not be applied over newer data, so every run carries an
extract time, decided in this order of precedence:

1. ``name-pattern``: the source's own ``extract_timestamp`` pattern, when it matches;
2. ``name``: a date (optionally with a time) in the file name, in one of the documented
   unambiguous forms (:func:`date_in_name`);
3. ``file-time``: the file's own time: the blob's creation time (Functions) or the file's
   modification time (CLI; creation time is not portable across file systems);
4. ``arrival``: when the connector received the bytes. Nothing then orders extracts but
   their arrival, so the run carries :data:`ARRIVAL_WARNING` (plan, journal, reports, CLI).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Final, Literal

__all__ = [
    "ARRIVAL_WARNING",
    "ExtractTime",
    "ExtractTimeBasis",
    "date_in_name",
    "decide_extract_time",
    "ordering_warning",
]

ExtractTimeBasis = Literal["name-pattern", "name", "file-time", "arrival"]

ARRIVAL_WARNING: Final = (
    "extract time unknown: the file name holds no date and no file time was given, so this"
    " run is ordered by arrival time; an older file arriving late would be applied over"
    " newer data (put the extract date in the file name, e.g. hr_2026-01-31.csv)"
)

# A date YYYY-MM-DD or YYYYMMDD (the same separator, or none, on both sides), optionally a
# time HH:MM[:SS] / HHMM[SS] / HH-MM[-SS] after 'T', '_', '-' or a space, optionally a zone
# 'Z' or ±HH[:]MM. Digits may not touch the match on either side (an id is not a date),
# and a time may not run on into more digits (the next date in the name is not a time).
_DATE_IN_NAME: Final = re.compile(
    r"(?<![0-9])"
    r"(?P<y>(?:19|20)\d\d)(?P<s>-?)(?P<mo>\d\d)(?P=s)(?P<d>\d\d)"
    r"(?:[T_ -](?P<h>\d\d)(?P<ts>[:-]?)(?P<mi>\d\d)(?:(?P=ts)(?P<sec>\d\d))?"
    r"(?P<z>Z|[+-]\d\d:?\d\d)?(?![-:]?[0-9]))?"
    r"(?![0-9])"
)


@dataclass(frozen=True, slots=True)
class ExtractTime:
    """An extract time (UTC) and what it was taken from."""

    at: datetime
    basis: ExtractTimeBasis


def _zone(text: str | None) -> timezone:
    if not text or text == "Z":
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    return timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))


def _parse(m: re.Match[str]) -> datetime | None:
    try:
        return datetime(
            int(m["y"]),
            int(m["mo"]),
            int(m["d"]),
            int(m["h"] or 0),
            int(m["mi"] or 0),
            int(m["sec"] or 0),
            tzinfo=_zone(m["z"]),
        ).astimezone(UTC)
    except ValueError:
        return None


def date_in_name(file_name: str) -> datetime | None:
    """The extract time written in ``file_name`` (its last path segment), in UTC.

    Recognised: ``YYYY-MM-DD`` or ``YYYYMMDD`` (years 1900-2099), optionally followed by
    ``T``, ``_``, ``-`` or a space and a time ``HHMMSS``, ``HH:MM:SS``, ``HH-MM-SS`` or the
    same without seconds, optionally followed by ``Z`` or an offset ``±HH:MM``/``±HHMM``
    (without one the time is UTC). Not guessed: day-first or month-first forms
    (``DD-MM-YYYY``, ``MM-DD-YYYY``), two-digit years, impossible dates (``20261399``), and
    names holding two different times: these give None.
    """
    base = file_name.replace("\\", "/").rsplit("/", 1)[-1]
    found = {ts for m in _DATE_IN_NAME.finditer(base) if (ts := _parse(m)) is not None}
    return found.pop() if len(found) == 1 else None


def decide_extract_time(
    name_pattern_time: datetime | None,
    file_name: str,
    file_time: datetime | None,
    arrived_at: datetime,
) -> ExtractTime:
    """The extract time by precedence: the source's pattern, a date in the name, the
    file's own time, the arrival time (see the module docstring)."""
    if name_pattern_time is not None:
        return ExtractTime(name_pattern_time, "name-pattern")
    in_name = date_in_name(file_name)
    if in_name is not None:
        return ExtractTime(in_name, "name")
    if file_time is not None:
        return ExtractTime(file_time.astimezone(UTC), "file-time")
    return ExtractTime(arrived_at, "arrival")


def ordering_warning(basis: str | None) -> str | None:
    """The warning a run carries when only its arrival time orders it (None otherwise,
    and for runs recorded before the basis was kept)."""
    return ARRIVAL_WARNING if basis == "arrival" else None
