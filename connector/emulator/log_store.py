"""The emulator's provisioning log, kept in ``(activityDateTime, seq)`` order as it grows.

A page of ``/auditLogs/provisioning`` costs time in proportion to the entries it walks,
not to the size of the log: the bounds of the ``activityDateTime`` clauses (``gt``,
``ge``, ``lt``, ``eq``), the log delay and the skiptoken's last key are found by
bisection, then the entries between them are walked in the requested order and every
clause is applied to each (a filter on another property walks past the entries it rejects).

Entries are appended with a non-decreasing ``seq``; one whose time is not before the last
entry's is appended at the end, one stamped earlier (a clock stepped back) is inserted
at its place, so the order is always the one a full sort by ``(activityDateTime, seq)``
gives. A page is exactly the page a filter-sort-slice over the whole log gives.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, overload

from connector.emulator.odata import Clause

if TYPE_CHECKING:
    from connector.emulator.log_entry import LogEntry

__all__ = ["LogStore"]


def _time(entry: LogEntry) -> datetime:
    return entry.activity


def _key(entry: LogEntry) -> tuple[datetime, int]:
    return entry.activity, entry.seq


class LogStore(Sequence["LogEntry"]):
    """Log entries in ``(activity, seq)`` order; pages found by bisection, not by a scan."""

    __slots__ = ("_entries",)

    def __init__(self) -> None:
        self._entries: list[LogEntry] = []

    def append(self, entry: LogEntry) -> None:
        entries = self._entries
        if not entries or _key(entries[-1]) <= _key(entry):
            entries.append(entry)
        else:
            insort(entries, entry, key=_key)

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[LogEntry]:
        return iter(self._entries)

    @overload
    def __getitem__(self, index: int) -> LogEntry: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[LogEntry]: ...
    def __getitem__(self, index: int | slice) -> LogEntry | Sequence[LogEntry]:
        return self._entries[index]

    def visible(self, cutoff: datetime) -> Sequence[LogEntry]:
        """Entries stamped at or before ``cutoff`` (the log delay has passed for them)."""
        end = bisect_right(self._entries, cutoff, key=_time)
        return self._entries if end == len(self._entries) else self._entries[:end]

    def page(
        self,
        clauses: Sequence[Clause],
        *,
        descending: bool,
        top: int,
        after: tuple[datetime, int] | None,
        cutoff: datetime,
    ) -> tuple[list[LogEntry], bool]:
        """Up to ``top`` visible entries matching every clause, past ``after`` in the order.

        ``after`` is the last ``(activity, seq)`` of the previous page; the second value
        says whether more entries follow the page.
        """
        entries = self._entries
        lo, hi = self._bounds(clauses, cutoff)
        if after is not None:
            if descending:
                hi = min(hi, bisect_left(entries, after, lo, hi, key=_key))
            else:
                lo = max(lo, bisect_right(entries, after, lo, hi, key=_key))
        indices = range(hi - 1, lo - 1, -1) if descending else range(lo, hi)
        page: list[LogEntry] = []
        for i in indices:
            entry = entries[i]
            if all(c.matches(entry.value) for c in clauses):
                if len(page) == top:
                    return page, True
                page.append(entry)
        return page, False

    def _bounds(self, clauses: Sequence[Clause], cutoff: datetime) -> tuple[int, int]:
        """Index range ``[lo, hi)`` outside which no visible entry can match the clauses."""
        entries = self._entries
        lo, hi = 0, bisect_right(entries, cutoff, key=_time)
        for c in clauses:
            if c.field != "activityDateTime" or not isinstance(c.value, datetime):
                continue
            if c.op in ("ge", "eq"):  # first entry at or after the value
                lo = max(lo, bisect_left(entries, c.value, 0, hi, key=_time))
            elif c.op == "gt":
                lo = max(lo, bisect_right(entries, c.value, 0, hi, key=_time))
            if c.op == "eq":  # past the last entry at the value
                hi = min(hi, bisect_right(entries, c.value, 0, hi, key=_time))
            elif c.op == "lt":
                hi = min(hi, bisect_left(entries, c.value, 0, hi, key=_time))
        return lo, max(lo, hi)
