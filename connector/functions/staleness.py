"""Which sources are stale: no new file (or pulled run) within their ``expect_every``.

Pure: the timer collects each source's last arrival (the newest run's received time,
else the time the connector started watching the source) and writes it to the status
blob; ``/api/health`` and the timer's ``source_stale`` event both ask
:func:`stale_sources`, so they always agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from connector.config import Source

__all__ = ["Stale", "last_arrival", "stale_sources"]


@dataclass(frozen=True)
class Stale:
    """A source with nothing new for longer than it expects."""

    source: str
    last: datetime
    expected: timedelta

    def hours_since(self, now: datetime) -> int:
        """Whole hours since the last arrival (for the event and the health text)."""
        return int((now - self.last).total_seconds() // 3600)


def stale_sources(
    sources: Iterable[Source], last_arrivals: Mapping[str, datetime | None], now: datetime
) -> list[Stale]:
    """Sources with ``expect_every`` whose last arrival is older than it, by name.

    A source without ``expect_every`` is never stale; one with no arrival on record
    is not judged (the timer records when it started watching, so this only happens
    before the first pass).
    """
    out: list[Stale] = []
    for src in sources:
        last = last_arrivals.get(src.name)
        if src.expect_every is None or last is None:
            continue
        if now - last > src.expect_every:
            out.append(Stale(src.name, last, src.expect_every))
    return sorted(out, key=lambda s: s.source)


def last_arrival(received: Iterable[datetime | None], watching_since: datetime) -> datetime:
    """The newest received time, or when watching started if nothing arrived since."""
    times = [t for t in received if t is not None]
    return max(times) if times else watching_since
