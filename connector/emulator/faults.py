"""Seeded fault injection on bulkUpload: the lottery drawn once per call (500/503, a
connection dropped before or after queueing, added latency), and the dropped connection
itself. None of it is documented by Microsoft for this endpoint: it is what a client must
survive from any Graph call (docs/emulator.md, *Faults*).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.responses import Response

from connector.emulator.config import EmulatorConfig

__all__ = ["Dropped", "Fault", "FaultLottery", "TransportTap"]


class Fault:
    """Outcomes of the fault lottery, drawn once per bulkUpload call."""

    NONE = "none"
    ERROR_500 = "500"
    ERROR_503 = "503"
    DROP_BEFORE = "drop_before"
    DROP_AFTER = "drop_after"


class FaultLottery:
    """The seeded draws: the same seed and the same call order give the same outcomes."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)

    def draw(self) -> tuple[str, float]:
        """Which fault (if any) this call gets, and its added latency (s)."""
        cfg = self.config
        r = self.rng.random()
        kind = self.rng.random()
        jitter = self.rng.random()
        latency = (cfg.latency_ms + jitter * cfg.latency_jitter_ms) / 1000.0
        if r < cfg.fault_rate:
            return (Fault.ERROR_500 if kind < 0.5 else Fault.ERROR_503), latency
        r -= cfg.fault_rate
        if r < cfg.drop_before_rate:
            return Fault.DROP_BEFORE, latency
        r -= cfg.drop_before_rate
        if r < cfg.drop_after_rate:
            return Fault.DROP_AFTER, latency
        return Fault.NONE, latency


class Dropped(Response):
    """Sends nothing: the connection is closed without a response."""

    def __init__(self) -> None:
        super().__init__(b"", 500)

    async def __call__(
        self,
        scope: Any,
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        transport = scope.get("emulator.transport")
        if transport is None:
            raise ConnectionAbortedError("fault injection: connection dropped")
        transport.close()
        # Wait for uvicorn to notice the disconnect, so it does not try to answer.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(receive(), timeout=5)


class TransportTap:
    """Outermost ASGI layer: remembers the connection's transport, so ``Dropped`` can
    close it."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            cycle = getattr(receive, "__self__", None)
            scope["emulator.transport"] = getattr(cycle, "transport", None)
        await self.app(scope, receive, send)
