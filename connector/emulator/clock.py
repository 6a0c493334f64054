"""The emulator's time: the injected clock plus an offset that tests, the demo and the
introspection API move from any thread, and Graph's timestamp form.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from connector.clock import Clock, SystemClock

__all__ = ["EmulatorClock", "iso"]


def iso(value: datetime) -> str:
    """Graph's UTC timestamp form: ``2026-01-01T00:00:00.123Z`` (milliseconds)."""
    return (
        value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    )


class EmulatorClock:
    """A clock that can be moved forward from any thread (``advance``/``set_offset``).

    Wraps the injected clock (``FakeClock`` in tests), so the introspection API's
    time offset and a test's ``FakeClock.advance`` both move the emulator's time.
    """

    def __init__(self, base: Clock | None = None) -> None:
        self._base: Clock = base or SystemClock()
        self._offset = 0.0
        self._lock = threading.Lock()

    @property
    def offset(self) -> float:
        return self._offset

    def now(self) -> datetime:
        return self._base.now() + timedelta(seconds=self._offset)

    def monotonic(self) -> float:
        return self._base.monotonic() + self._offset

    async def sleep(self, seconds: float) -> None:
        await self._base.sleep(seconds)

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("time only moves forward; use set_offset to go back")
        with self._lock:
            self._offset += seconds

    def set_offset(self, seconds: float) -> None:
        with self._lock:
            self._offset = seconds
