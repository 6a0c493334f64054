"""What a source's job logged, read once and kept for the runs not yet done (pure).

A reconciliation pass reads the provisioning logs **once per source**, only what is new
since the last pass (:class:`~connector.graph.logs.LogCursor`), and matches the entries
to every run that sent records since the oldest unfinished run's first send. Entries
read once stay matchable to runs that become reconcilable later (a run still uploading
when its first entries were read, a run held open by one late record): the book keeps a
compact copy of every entry of the job from ``kept_from`` on, and drops what is older
than the oldest unfinished run's first send (less the skew margin) after each pass.

The entries are never held as objects: they stay compressed, one JSON row per line in
the order they were read, and a pass streams them (:meth:`LogBook.replay`) and appends
what its read brought (:meth:`LogBook.take`), so memory does not grow with the book.
Matching does not need them sorted (:mod:`connector.reconcile_match`).

Stored as one gzip artifact per source and job (``RunStore.save_log_book``): a header
member (``{"format": 2, "cursor": …, "keptFrom": …}``) then the rows. A book stored
before (one JSON object with an ``entries`` list) is read too.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from connector.errors import StateError
from connector.graph.logs import LogCursor, odata_datetime
from connector.reconcile import LogEntry

__all__ = ["LOG_LAG", "LogBook"]

LOG_LAG = timedelta(minutes=10)
"""How much later than a newer entry an older one may still appear in the logs. The
team reference (Entra known issues, "logs lag 5–10 min") gives the lag; that entries
appear out of order by at most that much is our assumption. Each read goes back
``skew + LOG_LAG`` before the newest entry seen and drops the ids it already has."""

FORMAT = 2
_CHUNK = 1 << 20


class _Rows:
    """Rows compressed as they come: one gzip member, finished by :meth:`close`."""

    def __init__(self) -> None:
        self._packer = zlib.compressobj(5, zlib.DEFLATED, 31)
        self._parts: list[bytes] = []
        self._buf = bytearray()
        self.count = 0

    def write(self, entry: LogEntry) -> None:
        self._buf += orjson.dumps(_row(entry)) + b"\n"
        self.count += 1
        if len(self._buf) >= _CHUNK:
            self._parts.append(self._packer.compress(bytes(self._buf)))
            self._buf.clear()

    def close(self) -> bytes:
        if not self.count:
            return b""
        self._parts += [self._packer.compress(bytes(self._buf)), self._packer.flush()]
        return b"".join(self._parts)


@dataclass(slots=True)
class LogBook:
    """The entries of one job kept between passes, in the order read, and how far they go."""

    cursor: LogCursor = field(default_factory=LogCursor)
    kept_from: datetime | None = None
    """Every entry of the job at or after this time that was logged by the last read is
    here; None before the first read."""
    rows: bytes = b""
    """The kept entries: gzip members of JSON rows, one per line (see :func:`_row`)."""
    _known: set[str] = field(default_factory=set)
    _new: _Rows | None = None
    _newest: tuple[str, datetime] | None = None
    _oldest: datetime | None = None
    _scanned: bool = False
    """Whether ``_oldest`` is the oldest time in ``rows`` (None: no rows)."""

    def entries(self) -> Iterator[LogEntry]:
        """The kept entries, streamed in the order they were read."""
        if not self.rows:
            return
        with gzip.GzipFile(fileobj=io.BytesIO(self.rows)) as lines:
            for raw in lines:
                if raw.strip():
                    yield _entry(orjson.loads(raw))

    def read_from(self, horizon: datetime, margin: timedelta) -> datetime:
        """Where the next read starts: what is new since the cursor (less ``margin``),
        or ``horizon`` when the book does not reach back that far (then it starts
        afresh from there, keeping what it has)."""
        since = self.cursor.since(margin)
        if self.kept_from is None or since is None or horizon < self.kept_from:
            return horizon
        return max(since, horizon)

    def replay(self, started: datetime) -> Iterator[LogEntry]:
        """Stream the kept entries before a read that starts at ``started``, noting the
        ids the read may bring again (those at or after ``started``: a read returns
        nothing older)."""
        self._known = set()
        self._new = _Rows()
        self._newest = None
        self._scanned = False
        oldest: datetime | None = None
        for entry in self.entries():
            if entry.id and entry.activity_at >= started:
                self._known.add(entry.id)
            if oldest is None or entry.activity_at < oldest:
                oldest = entry.activity_at
            yield entry
        self._oldest, self._scanned = oldest, True

    def take(self, entry: LogEntry) -> bool:
        """Keep one entry of the read (after :meth:`replay`); False when already kept."""
        if self._new is None:
            raise ValueError("replay the book before taking a read's entries")
        if self._newest is None or entry.activity_at > self._newest[1]:
            self._newest = (entry.id, entry.activity_at)
        if entry.id:
            if entry.id in self._known:
                return False
            self._known.add(entry.id)
        self._new.write(entry)
        if self._oldest is None or entry.activity_at < self._oldest:
            self._oldest = entry.activity_at
        return True

    def end(self, *, started: datetime, margin: timedelta) -> int:
        """Close a read that started at ``started``; returns how many entries were new."""
        if self._new is None:
            raise ValueError("replay the book before ending a read")
        new = self._new.count
        self.rows += self._new.close()
        self._new = None
        self._known = set()
        if self._newest is not None:
            # Only the newest entry moves the cursor: the book, not the cursor's
            # boundary ids, is what tells entries already kept from new ones.
            self.cursor = self.cursor.advanced([self._newest], margin)
        if self.kept_from is None or started < self.kept_from:
            self.kept_from = started
        return new

    def add(self, read: Iterable[LogEntry], *, started: datetime, margin: timedelta) -> int:
        """Keep the entries of a read that started at ``started`` (a whole read at once);
        returns how many were new."""
        for _ in self.replay(started):
            pass
        for entry in read:
            self.take(entry)
        return self.end(started=started, margin=margin)

    def prune(self, floor: datetime) -> None:
        """Forget entries older than ``floor`` (no unfinished run can need them)."""
        if self.rows and (not self._scanned or self._oldest is None or self._oldest < floor):
            kept = _Rows()
            oldest: datetime | None = None
            for entry in self.entries():
                if entry.activity_at >= floor:
                    kept.write(entry)
                    if oldest is None or entry.activity_at < oldest:
                        oldest = entry.activity_at
            self.rows = kept.close()
            self._oldest, self._scanned = oldest, True
        if self.kept_from is None or floor > self.kept_from:
            self.kept_from = floor

    def to_bytes(self) -> bytes:
        header = {
            "format": FORMAT,
            "cursor": self.cursor.to_json(),
            "keptFrom": None if self.kept_from is None else odata_datetime(self.kept_from),
        }
        return gzip.compress(orjson.dumps(header) + b"\n", compresslevel=5) + self.rows

    @classmethod
    def from_bytes(cls, blob: bytes) -> LogBook:
        """Read what :meth:`to_bytes` wrote, or a book stored before (one JSON object
        with its entries); StateError names what is wrong."""
        unpack = zlib.decompressobj(31)
        try:
            first = unpack.decompress(blob)
            raw = orjson.loads(first)
        except (zlib.error, orjson.JSONDecodeError) as exc:
            raise StateError(f"log book: unreadable ({type(exc).__name__})") from exc
        if not isinstance(raw, dict):
            raise StateError("log book: not a JSON object")
        book = cls.from_json(raw)
        if "entries" not in raw:
            book.rows = unpack.unused_data
        return book

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> LogBook:
        """The header (and, in a book stored before, the entries); StateError names what
        is wrong."""
        cursor = raw.get("cursor") or {}
        kept = raw.get("keptFrom")
        rows = raw.get("entries") or []
        if not isinstance(cursor, Mapping) or not isinstance(rows, list):
            raise StateError("log book: 'cursor' must be an object and 'entries' a list")
        if kept is not None and not isinstance(kept, str):
            raise StateError("log book: 'keptFrom' must be an ISO date-time or null")
        book = cls(LogCursor.from_json(cursor), None if kept is None else _time(kept))
        if rows:
            out = _Rows()
            for row in rows:
                out.write(_entry(row))
            book.rows = out.close()
        return book


def _row(e: LogEntry) -> list[Any]:
    return [
        e.id,
        odata_datetime(e.activity_at),
        e.external_id,
        e.provisioning_action,
        e.status,
        e.error_code,
        e.reason,
        e.job_id,
    ]


def _entry(row: Any) -> LogEntry:
    if not isinstance(row, Sequence) or isinstance(row, str) or len(row) != 8:
        raise StateError("log book: each entry must be a list of 8 fields")
    ident, when, ext, action, status, code, reason, job = row
    if not all(isinstance(v, str) for v in (ident, when, ext, action, status)):
        raise StateError("log book: an entry's id, time, externalId, action, status: strings")
    return LogEntry(
        id=ident,
        activity_at=_time(when),
        external_id=ext,
        provisioning_action=action,
        status=status,
        error_code=_opt(code),
        reason=_opt(reason),
        job_id=_opt(job),
    )


def _opt(value: Any) -> str | None:
    return None if value is None else str(value)


def _time(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise StateError(f"log book: {text!r} is not an ISO date-time") from exc
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
