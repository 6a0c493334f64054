"""Streaming matching of provisioning-log entries to sends, in compact state (pure).

:class:`Matcher` is what :func:`connector.reconcile.reconcile_runs` runs on, and what a
reconciliation pass feeds page by page: every send first (:meth:`Matcher.add`), then the
entries in the order they were read (:meth:`Matcher.feed`), then one run's outcomes at a
time (:meth:`Matcher.outcomes`, a stream). Nothing per entry is kept for a record sent
once (nearly all of them): its most significant entry so far is folded into fixed-size
arrays indexed by send (rank, time, the entry's interned action/status/code/reason, its
id in 16 bytes when GUID-shaped). Only records sent more than once keep their entries,
because their entries are shared among the sends by order (:func:`assign_entries`).

The fold gives what sorting the entries by time and then taking the most significant one
(later wins on a tie) gives: an entry replaces the kept one when its rank is higher, or
equal and its time is not earlier (an entry fed later comes later among equal times, as
a stable sort by time keeps it).
"""

from __future__ import annotations

import array
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from connector.reconcile import (
    DEFAULT_DEADLINE,
    DEFAULT_SKEW,
    LogEntry,
    RecordOutcome,
    SentRecord,
    _decide,
    _outcome_of,
    _rank,
    assign_entries,
)

__all__ = ["Matcher"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NONE = -(2**63)
"""``after``/``line`` sentinel for None in the ``q`` arrays."""
_HEX = frozenset("0123456789abcdef")


def _us(moment: datetime) -> int:
    """Microseconds since the epoch (naive times are read as UTC)."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return (aware - _EPOCH) // timedelta(microseconds=1)


def _at(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _guid_bytes(ident: str) -> bytes | None:
    """16 bytes for a lower-case GUID-shaped id (``8-4-4-4-12``), else None."""
    if len(ident) != 36 or ident[8] != "-" or ident[13] != "-" or ident[18] != "-":
        return None
    if ident[23] != "-":
        return None
    digits = ident.replace("-", "")
    if len(digits) != 32 or not _HEX.issuperset(digits):
        return None
    return bytes.fromhex(digits)


def _guid_text(raw: bytes) -> str:
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class Matcher:
    """Sends of one or more runs matched to log entries fed one at a time (pure).

    All sends are added before the first entry is fed. ``skew`` is the clock-skew margin
    of :func:`assign_entries`; entries of another job than ``job_id`` (when given) and
    entries of records not sent are ignored.
    """

    def __init__(self, *, job_id: str | None = None, skew: timedelta = DEFAULT_SKEW) -> None:
        self.job_id = job_id
        self._skew = skew // timedelta(microseconds=1)
        self._heads: dict[str, int] = {}
        """externalId → its first send (insertion order: the order records were sent)."""
        self._more: dict[int, list[int]] = {}
        """First send → the record's later sends (records sent more than once)."""
        self._ext: list[str] = []
        self._batch = array.array("i")
        self._batches: list[tuple[str, datetime, str | None]] = []
        self._batch_of: dict[tuple[str, datetime, str | None], int] = {}
        self._sent = array.array("q")
        self._after = array.array("q")
        self._line = array.array("q")
        self._action = array.array("B")
        self._actions: list[str] = []
        self._runs: dict[str, None] = {}
        # The fold, per send (sized when the first entry comes).
        self._rank = array.array("b")
        self._time = array.array("q")
        self._info = array.array("i")
        self._infos: list[tuple[str, str, str | None, str | None, str | None]] = []
        self._info_of: dict[tuple[str, str, str | None, str | None, str | None], int] = {}
        self._ids = bytearray()
        self._odd_ids: dict[int, str] = {}
        self._entries: dict[int, list[LogEntry]] = {}
        """Records sent more than once: their entries, in the order fed."""

    def __len__(self) -> int:
        """How many sends were added."""
        return len(self._sent)

    def runs(self) -> list[str]:
        """Run ids of the sends, in the order first seen."""
        return list(self._runs)

    def add(self, sent: SentRecord) -> None:
        """One send (a run's records in send order, runs oldest first)."""
        if self._rank:
            raise ValueError("every send is added before the first log entry is fed")
        key = (sent.run_id, sent.sent_at, sent.request_id)
        batch = self._batch_of.get(key)
        if batch is None:
            batch = self._batch_of[key] = len(self._batches)
            self._batches.append(key)
            self._runs.setdefault(sent.run_id)
        index = len(self._sent)
        head = self._heads.setdefault(sent.external_id, index)
        if head != index:
            self._more.setdefault(head, []).append(index)
        self._ext.append(sent.external_id)
        self._batch.append(batch)
        self._sent.append(_us(sent.sent_at))
        self._after.append(_NONE if sent.after is None else _us(sent.after))
        self._line.append(_NONE if sent.line is None else sent.line)
        if sent.action not in self._actions:
            self._actions.append(sent.action)
        self._action.append(self._actions.index(sent.action))

    def feed(self, entry: LogEntry) -> None:
        """One log entry, in the order read (entries of one read oldest or newest first)."""
        head = self._heads.get(entry.external_id)
        if head is None:
            return
        if self.job_id is not None and entry.job_id is not None and entry.job_id != self.job_id:
            return
        if not self._rank:
            self._start()
        if head in self._more:
            self._entries.setdefault(head, []).append(entry)
            return
        when = _us(entry.activity_at)
        if when < self._sent[head] - self._skew:
            return
        after = self._after[head]
        if after != _NONE and when <= after:
            return
        outcome = _outcome_of(entry, self._actions[self._action[head]])
        rank = _rank(outcome, entry.error_code)
        kept = self._rank[head]
        if rank < kept or (rank == kept and when < self._time[head]):
            return
        self._rank[head] = rank
        self._time[head] = when
        info = (
            entry.provisioning_action,
            entry.status,
            entry.error_code,
            entry.reason,
            entry.job_id,
        )
        number = self._info_of.get(info)
        if number is None:
            number = self._info_of[info] = len(self._infos)
            self._infos.append(info)
        self._info[head] = number
        packed = _guid_bytes(entry.id)
        if packed is None:
            self._odd_ids[head] = entry.id
        else:
            self._odd_ids.pop(head, None)
            self._ids[head * 16 : head * 16 + 16] = packed

    def _start(self) -> None:
        n = len(self._sent)
        self._rank = array.array("b", [-1]) * n
        self._time = array.array("q", bytes(8 * n))
        self._info = array.array("i", bytes(4 * n))
        self._ids = bytearray(16 * n)

    def outcomes(
        self, run_id: str, *, now: datetime, deadline: timedelta = DEFAULT_DEADLINE
    ) -> Iterator[RecordOutcome]:
        """The outcome of each send of ``run_id``, in the order its records were sent."""
        for head in self._heads.values():
            more = self._more.get(head)
            if more is None:
                if self._batches[self._batch[head]][0] == run_id:
                    yield self._single(head, now, deadline)
                continue
            chain = sorted([head, *more], key=lambda i: self._sent[i])
            sends = [self._send(i) for i in chain]
            found = sorted(self._entries.get(head, ()), key=lambda e: e.activity_at)
            shares = assign_entries(sends, found, _delta(self._skew))
            for send, matched in zip(sends, shares, strict=True):
                if send.run_id == run_id:
                    yield _decide(send, matched, now, deadline)

    def _send(self, i: int) -> SentRecord:
        run, sent_at, request = self._batches[self._batch[i]]
        after, line = self._after[i], self._line[i]
        return SentRecord(
            self._ext[i],
            sent_at,
            request,
            self._actions[self._action[i]],
            None if line == _NONE else line,
            None if after == _NONE else _at(after),
            run,
        )

    def _single(self, i: int, now: datetime, deadline: timedelta) -> RecordOutcome:
        send = self._send(i)
        if not self._rank or self._rank[i] < 0:
            return _decide(send, (), now, deadline)
        action, status, code, reason, job = self._infos[self._info[i]]
        ident = self._odd_ids.get(i)
        if ident is None:
            ident = _guid_text(bytes(self._ids[i * 16 : i * 16 + 16]))
        when = _at(self._time[i])
        entry = LogEntry(ident, when, send.external_id, action, status, code, reason, job)
        return _decide(send, (entry,), now, deadline)


def _delta(us: int) -> timedelta:
    return timedelta(microseconds=us)
