"""Pacing for the bulkUpload API: a sliding-window rate limiter and a daily call budget.

Documented limits (Entra "inbound provisioning API issues", 2025/2026): at most
**40 calls in any 5-second window** (more → 429) and a tenant-level budget of
**2,000 calls per 24 hours** on P1/P2 or **6,000** on Governance.

Our choices, where the documentation is silent:

- Every call made counts, retries included: the limit is on calls, and whether the
  service counted a call it answered 5xx (or whose connection dropped) is not documented.
- The window is measured on the times the requests went out (:class:`Slot`), plus a
  small ``margin``, so that jitter between our writes and the service's arrival times
  cannot squeeze 41 calls into the service's 5 seconds.
- "24-hour period" is read as a *rolling* 24 hours (the cautious reading): calls are
  counted in hourly buckets and the last 24 buckets (plus the current one) are summed,
  which never under-counts a rolling day.
- The daily count lives outside the process (the sync engine keeps it with its state)
  behind :class:`CallBudgetStore`, so it is counted across runs and restarts.

Provisioning-log reads have their own, separate limit (Graph throttling limits,
"Identity and access reports service limits": "Five requests per 10 seconds" per app per
tenant, covering ``auditLogRoot`` and ``provisioningObjectSummary``). :func:`report_limiter`
hands out one :class:`ReservingLimiter` per process and Graph origin, shared by every
log read of the process (CLI, reconcile passes, health), whatever job it reads. Our
choice: a process runs as one identity, so "per origin" is "per app per tenant" or
stricter (a process talking to two tenants on one host shares one window: cautious).
Clients on an injected clock (tests) share a limiter per clock instead.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections import deque
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Protocol

from connector.clock import Clock, SystemClock

__all__ = [
    "DEFAULT_DAILY_CALLS",
    "DEFAULT_MARGIN_SECONDS",
    "DEFAULT_MAX_CALLS",
    "DEFAULT_WINDOW_SECONDS",
    "GOVERNANCE_DAILY_CALLS",
    "REPORT_MAX_CALLS",
    "REPORT_WINDOW_SECONDS",
    "CallBudgetStore",
    "DailyBudget",
    "InMemoryCallBudgetStore",
    "RateLimiter",
    "ReservingLimiter",
    "SlidingWindowLimiter",
    "Slot",
    "report_limiter",
]

DEFAULT_MAX_CALLS = 40
DEFAULT_WINDOW_SECONDS = 5.0
DEFAULT_MARGIN_SECONDS = 0.1
OPEN_SLOT_POLL_SECONDS = 0.01
DEFAULT_DAILY_CALLS = 2_000
GOVERNANCE_DAILY_CALLS = 6_000
REPORT_MAX_CALLS = 5
REPORT_WINDOW_SECONDS = 10.0

_BUCKET_FORMAT = "%Y-%m-%dT%H"


class Slot:
    """One call's place in a limiter's window, from the moment it is granted.

    While it is *open* the call counts as being sent right now. :meth:`sent` fixes its
    time to the moment it is called: the client calls it as soon as the request is
    written to the connection, and again when the call is over (a no-op by then; a call
    whose write was not seen counts from its end, the latest it can have gone out).
    """

    __slots__ = ("_limiter", "open")

    def __init__(self, limiter: SlidingWindowLimiter | None) -> None:
        self._limiter = limiter
        self.open = limiter is not None

    def sent(self) -> None:
        """The request went out now (only the first call counts)."""
        if self.open:
            self.open = False
            if self._limiter is not None:
                self._limiter._settle()


SETTLED = Slot(None)
"""A slot whose time was fixed when it was granted (the report limiter's reservations)."""


class RateLimiter(Protocol):
    """What the Graph client needs from a limiter: wait for a slot, and pause on a 429."""

    async def acquire(self) -> Slot: ...

    def pause(self, seconds: float) -> None: ...


class SlidingWindowLimiter:
    """At most ``max_calls`` calls in any ``window`` seconds, shared by concurrent tasks.

    The window is measured on the times the requests *went out* (:class:`Slot`), not on
    the times their slots were granted: whatever holds the event loop between the two
    (a state write, a token refresh, opening a connection) cannot squeeze a 41st call
    into the service's 5 seconds. A slot granted but not yet sent counts as sent now.
    Callers are served first come, first served (one lock); a caller waits exactly
    until the oldest call in the window leaves it, so with enough requests in flight the
    limiter hands out slots as fast as the window allows, and no faster. ``pause`` blocks
    every caller until a point in time, which is how a ``Retry-After`` seen by one
    request slows all of them down.
    """

    def __init__(
        self,
        max_calls: int = DEFAULT_MAX_CALLS,
        window: float = DEFAULT_WINDOW_SECONDS,
        *,
        margin: float = DEFAULT_MARGIN_SECONDS,
        clock: Clock | None = None,
    ) -> None:
        if max_calls < 1:
            raise ValueError("max_calls must be at least 1")
        if window <= 0 or margin < 0:
            raise ValueError("window must be positive and margin not negative")
        self.max_calls = max_calls
        self.window = window
        self.margin = margin
        self._clock: Clock = clock or SystemClock()
        self._sent: deque[float] = deque()
        """When the calls in the window went out, oldest first (slots settle in time order)."""
        self._open = 0
        self._paused_until = 0.0
        self._lock = asyncio.Lock()
        self.waited = 0.0

    @property
    def span(self) -> float:
        """The effective window: the documented one plus our safety margin."""
        return self.window + self.margin

    def pause(self, seconds: float) -> None:
        """Hold every caller for ``seconds`` from now (never shortens an existing pause)."""
        until = self._clock.monotonic() + max(0.0, seconds)
        self._paused_until = max(self._paused_until, until)

    def _settle(self) -> None:
        self._open -= 1
        self._sent.append(self._clock.monotonic())

    def _wait(self, now: float) -> float | None:
        """Seconds until one more call fits (<= 0: now); None while only open slots fill it."""
        sent = self._sent
        while sent and now - sent[0] >= self.span:
            sent.popleft()
        wait = self._paused_until - now
        over = self._open + len(sent) - self.max_calls
        if over < 0:
            return wait
        if over >= len(sent):
            return None
        return max(wait, sent[over] + self.span - now)

    async def acquire(self) -> Slot:
        """Wait until one more call fits in the window; the slot counts as sent from now on."""
        async with self._lock:
            while True:
                now = self._clock.monotonic()
                wait = self._wait(now)
                if wait is not None and wait <= 0:
                    self._open += 1
                    return Slot(self)
                # Only open slots fill the window: look again once one may have gone out.
                step = OPEN_SLOT_POLL_SECONDS if wait is None else wait
                self.waited += step
                await self._clock.sleep(step)


class CallBudgetStore(Protocol):
    """Where the daily call count is kept between runs: hourly bucket key → calls made.

    Keys are UTC hours formatted ``YYYY-MM-DDTHH``. ``load`` returns what was saved;
    ``save`` replaces it (the budget prunes buckets older than its window before saving).
    The sync engine implements this on its state store.
    """

    async def load(self) -> Mapping[str, int]: ...

    async def save(self, counts: Mapping[str, int]) -> None: ...


class InMemoryCallBudgetStore:
    """A :class:`CallBudgetStore` in memory: for tests, the CLI and single-process use."""

    def __init__(self, counts: Mapping[str, int] | None = None) -> None:
        self.counts: dict[str, int] = dict(counts or {})
        self.saves = 0

    async def load(self) -> Mapping[str, int]:
        return dict(self.counts)

    async def save(self, counts: Mapping[str, int]) -> None:
        self.counts = dict(counts)
        self.saves += 1


class DailyBudget:
    """A rolling 24-hour call budget, persisted through a :class:`CallBudgetStore`.

    Every HTTP call to bulkUpload (first tries, retries and isolation calls alike)
    takes one unit *before* it is sent, because the service counts calls, not
    successes. ``persist_every`` trades durability for store writes: with the default
    of 1 a crash can never lose a counted call (:meth:`try_acquire` returns once a write
    holding the unit succeeded, and raises that write's error).

    Writes are made one at a time, in order, outside the lock that counts: units taken
    while a write is in flight are persisted together by the next one, so calls that go
    at once (a window's first burst) wait for about two writes, not one write each.

    Concurrent runs against the same store may race (load, add, save); the service's
    own 429 remains the backstop, and the sync engine serialises runs per source.
    """

    def __init__(
        self,
        limit: int = DEFAULT_DAILY_CALLS,
        store: CallBudgetStore | None = None,
        *,
        clock: Clock | None = None,
        window: timedelta = timedelta(hours=24),
        persist_every: int = 1,
    ) -> None:
        if limit < 0:
            raise ValueError("limit must not be negative")
        if persist_every < 1:
            raise ValueError("persist_every must be at least 1")
        self.limit = limit
        self.store: CallBudgetStore = store or InMemoryCallBudgetStore()
        self._clock: Clock = clock or SystemClock()
        self._window = window
        self._persist_every = persist_every
        self._counts: dict[str, int] | None = None
        self._taken = 0
        """Units taken by this budget so far (a running total)."""
        self._saved = 0
        """Of those, the units the last successful write holds."""
        self._lock = asyncio.Lock()
        self._write_lock = asyncio.Lock()

    @staticmethod
    def bucket_key(moment: datetime) -> str:
        """The hourly bucket a moment falls in (UTC)."""
        aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
        return aware.strftime(_BUCKET_FORMAT)

    def _oldest_key(self, now: datetime) -> str:
        return self.bucket_key(now - self._window)

    async def _loaded(self) -> dict[str, int]:
        if self._counts is None:
            raw = await self.store.load()
            self._counts = {str(k): int(v) for k, v in raw.items()}
        return self._counts

    def _used(self, counts: Mapping[str, int], now: datetime) -> int:
        oldest = self._oldest_key(now)
        return sum(v for k, v in counts.items() if k >= oldest)

    async def used(self) -> int:
        """Calls counted in the current rolling window."""
        async with self._lock:
            return self._used(await self._loaded(), self._clock.now())

    async def remaining(self) -> int:
        """Calls still allowed in the current rolling window."""
        return max(0, self.limit - await self.used())

    async def try_acquire(self, calls: int = 1) -> bool:
        """Take ``calls`` units if they fit; False (and nothing taken) when the budget is spent."""
        async with self._lock:
            counts = await self._loaded()
            now = self._clock.now()
            if self._used(counts, now) + calls > self.limit:
                return False
            key = self.bucket_key(now)
            counts[key] = counts.get(key, 0) + calls
            self._taken += calls
            taken = self._taken
            if taken - self._saved < self._persist_every:
                return True
        await self._persist(taken)
        return True

    async def flush(self) -> None:
        """Write counts not yet persisted (call at the end of a run)."""
        if self._counts is not None and self._taken > self._saved:
            await self._persist(self._taken)

    async def _persist(self, taken: int) -> None:
        """Return once a write holding the first ``taken`` units succeeded: one write at a
        time; a write started after they were taken holds them (and every unit since)."""
        async with self._write_lock:
            if self._saved >= taken or self._counts is None:
                return
            holds = self._taken
            counts = self._counts
            oldest = self._oldest_key(self._clock.now())
            for key in [k for k in counts if k < oldest]:
                del counts[key]
            await self.store.save(dict(counts))
            self._saved = max(self._saved, holds)


class ReservingLimiter(SlidingWindowLimiter):
    """At most ``max_calls`` in any ``window`` seconds, by reserving a send time per caller.

    Unlike :class:`SlidingWindowLimiter` it waits without an asyncio lock (a thread lock
    guards only the reservation, never an ``await``), so one instance can be shared by
    every event loop and thread of a process: the report limiter is process-wide.
    """

    def __init__(
        self,
        max_calls: int = REPORT_MAX_CALLS,
        window: float = REPORT_WINDOW_SECONDS,
        *,
        margin: float = 0.1,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(max_calls, window, margin=margin, clock=clock)
        self._thread_lock = threading.Lock()
        self.acquired = 0

    def pause(self, seconds: float) -> None:
        """No slot starts before ``seconds`` from now (a ``Retry-After``)."""
        with self._thread_lock:
            super().pause(seconds)

    def reserve(self) -> float:
        """Reserve the next free send time; returns how long to wait for it (pure bookkeeping)."""
        with self._thread_lock:
            now = self._clock.monotonic()
            while self._sent and now - self._sent[0] >= self.span:
                self._sent.popleft()
            slot = max(now, self._paused_until)
            if len(self._sent) >= self.max_calls:
                slot = max(slot, self._sent[-self.max_calls] + self.span)
            self._sent.append(slot)
            self.acquired += 1
            wait = slot - now
            self.waited += wait
            return wait

    async def acquire(self) -> Slot:
        wait = self.reserve()
        if wait > 0:
            await self._clock.sleep(wait)
        return SETTLED


_REPORT_LOCK = threading.Lock()
_REPORT_SYSTEM: dict[str, ReservingLimiter] = {}
_REPORT_BY_CLOCK: weakref.WeakKeyDictionary[object, dict[str, ReservingLimiter]] = (
    weakref.WeakKeyDictionary()
)


def report_limiter(origin: str, clock: Clock | None = None) -> ReservingLimiter:
    """The process-wide limiter for report (provisioning-log) reads against ``origin``.

    Every caller with the real clock and the same origin (``https://graph.microsoft.com``)
    gets the same limiter: 5 reads per 10 s plus the usual margin. A caller with an
    injected clock gets the limiter of that clock (tests keep their own time).
    """
    key = origin.lower().rstrip("/")
    with _REPORT_LOCK:
        if clock is None or isinstance(clock, SystemClock):
            table = _REPORT_SYSTEM
        else:
            table = _REPORT_BY_CLOCK.setdefault(clock, {})
        limiter = table.get(key)
        if limiter is None:
            limiter = ReservingLimiter(clock=clock)
            table[key] = limiter
        return limiter
