"""What a source's job logged, read once and kept for the runs not yet done (pure).

A reconciliation pass reads the provisioning logs **once per source**, only what is new
since the last pass (:class:`~connector.graph.logs.LogCursor`), and matches the entries
to every run that sent records since the oldest unfinished run's first send. Entries
read once stay matchable to runs that become reconcilable later (a run still uploading
when its first entries were read, a run held open by one late record): the book keeps a
compact copy of every entry of the job from ``kept_from`` on, and drops what is older
than the oldest unfinished run's first send (less the skew margin) after each pass.

Stored as one gzip JSON artifact per source and job (``RunStore.save_log_book``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from connector.errors import StateError
from connector.graph.logs import LogCursor, odata_datetime
from connector.reconcile import LogEntry

__all__ = ["LOG_LAG", "LogBook"]

LOG_LAG = timedelta(minutes=10)
"""How much later than a newer entry an older one may still appear in the logs. The
team reference (Entra known issues, "logs lag 5–10 min") gives the lag; that entries
appear out of order by at most that much is our assumption. Each read goes back
``skew + LOG_LAG`` before the newest entry seen and drops the ids it already has."""


@dataclass(slots=True)
class LogBook:
    """The entries of one job kept between passes, oldest first, and how far they go."""

    cursor: LogCursor = field(default_factory=LogCursor)
    kept_from: datetime | None = None
    """Every entry of the job at or after this time that was logged by the last read is
    here; None before the first read."""
    entries: list[LogEntry] = field(default_factory=list)

    def read_from(self, horizon: datetime, margin: timedelta) -> datetime:
        """Where the next read starts: what is new since the cursor (less ``margin``),
        or ``horizon`` when the book does not reach back that far (then it starts
        afresh from there, keeping what it has)."""
        since = self.cursor.since(margin)
        if self.kept_from is None or since is None or horizon < self.kept_from:
            return horizon
        return max(since, horizon)

    def add(
        self, read: Iterable[LogEntry], *, started: datetime, margin: timedelta
    ) -> list[LogEntry]:
        """Keep the entries of a read that started at ``started``; returns the new ones."""
        known = {e.id for e in self.entries if e.id}
        seen: list[tuple[str, datetime]] = []
        new: list[LogEntry] = []
        for entry in read:
            seen.append((entry.id, entry.activity_at))
            if entry.id and entry.id in known:
                continue
            if entry.id:
                known.add(entry.id)
            new.append(entry)
        if new:
            # Stable: entries with equal times keep the order the service listed them.
            self.entries = sorted([*self.entries, *new], key=lambda e: e.activity_at)
        self.cursor = self.cursor.advanced(seen, margin)
        if self.kept_from is None or started < self.kept_from:
            self.kept_from = started
        return new

    def prune(self, floor: datetime) -> None:
        """Forget entries older than ``floor`` (no unfinished run can need them)."""
        self.entries = [e for e in self.entries if e.activity_at >= floor]
        if self.kept_from is None or floor > self.kept_from:
            self.kept_from = floor

    def to_json(self) -> dict[str, Any]:
        return {
            "cursor": self.cursor.to_json(),
            "keptFrom": None if self.kept_from is None else odata_datetime(self.kept_from),
            "entries": [_row(e) for e in self.entries],
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> LogBook:
        """Read what ``to_json`` wrote; StateError names what is wrong."""
        cursor = raw.get("cursor") or {}
        kept = raw.get("keptFrom")
        rows = raw.get("entries") or []
        if not isinstance(cursor, Mapping) or not isinstance(rows, list):
            raise StateError("log book: 'cursor' must be an object and 'entries' a list")
        if kept is not None and not isinstance(kept, str):
            raise StateError("log book: 'keptFrom' must be an ISO date-time or null")
        return cls(
            LogCursor.from_json(cursor),
            None if kept is None else _time(kept),
            [_entry(r) for r in rows],
        )


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
