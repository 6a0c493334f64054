"""Graph targets as wired for a function invocation: bounded retry waits, one per loop."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from connector.functions import wiring

from .conftest import extract_bytes

pytestmark = pytest.mark.azurite


# -- bounded waits on 429 ------------------------------------------------------------------------


def test_a_long_retry_after_is_not_waited_for_in_a_function(
    make_world: Any, tmp_path: Path
) -> None:
    """429 with Retry-After 100 s: the default client policy would wait 100 s per batch."""
    data = extract_bytes(tmp_path, 200, seed=24)  # 4 batches
    limit = {"rate_limit_calls": 1, "rate_limit_window_seconds": 100}
    with make_world(emulator=limit) as w:
        w.drop_and_deliver("employees/hr.csv", data)
        [run] = w.runs()
        assert run.state == "uploading"
        assert run.waiting_reason == "quota"  # a Retry-After over 30 s means: come back later
        assert sum(w.clock.slept) < 1
        assert run.batches_done == 1

        for _ in range(12):  # the timer continues it, one paced step at a time
            w.tick(minutes=15)
        [done] = w.runs()
        assert done.state in ("uploaded", "reconciling", "done")
        assert len(w.emu.users()) == 200


def test_total_retry_waiting_in_one_invocation_is_bounded(make_world: Any, tmp_path: Path) -> None:
    """429 with Retry-After 20 s on nearly every call: each short wait is allowed, but the
    invocation stops sending once its waits add up to the budget and leaves the run waiting.

    The engine keeps up to ``window`` batches in flight and each may wait once, so the
    summed waits (the FakeClock adds concurrent sleeps up) stay under the budget plus one
    ``max_retry_after`` per batch in flight; the default client policy waited 5 × 20 s per
    batch, for every batch.
    """
    data = extract_bytes(tmp_path, 800, seed=25)  # 16 batches
    limit = {"rate_limit_calls": 1, "rate_limit_window_seconds": 20}
    policy = wiring.FUNCTIONS_RETRY
    with make_world(emulator=limit) as w:
        bound = wiring.WAIT_BUDGET_SECONDS + w.runtime.engine.window * policy.max_retry_after * (
            policy.max_attempts - 1
        )
        w.drop_and_deliver("employees/hr.csv", data)
        [run] = w.runs()
        assert sum(w.clock.slept) <= bound
        assert max(w.clock.slept) <= policy.max_retry_after
        assert run.state == "uploading"
        assert run.waiting_reason == "throttled"
        assert run.batches_done < 16

        for _ in range(30):
            before = len(w.clock.slept)
            w.tick(minutes=15)
            assert sum(w.clock.slept[before:]) <= 2 * bound  # resume + reconcile, each bounded
            if len(w.emu.users()) == 800:
                break
        assert len(w.emu.users()) == 800


# -- one set of targets per event loop -----------------------------------------------------------


def test_each_invocation_loop_gets_its_own_targets(make_world: Any) -> None:
    """Rate limiters hold an asyncio lock: two invocations (two threads, two loops) must
    not share one; calls within one invocation share it (pacing across a pass)."""
    with make_world() as w:
        src = w.runtime.config.sources[0]

        async def limiters() -> tuple[Any, Any]:
            a, b = w.runtime.targets(src), w.runtime.targets(src)
            try:
                return a._inner.client.limiter, b._inner.client.limiter
            finally:
                await a.aclose()
                await b.aclose()

        found: list[tuple[Any, Any]] = []
        threads = [
            threading.Thread(target=lambda: found.append(asyncio.run(limiters()))) for _ in range(2)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        (a1, b1), (a2, b2) = found
        assert a1 is b1
        assert a2 is b2
        assert a1 is not a2
