"""Sliding-window limiter and daily budget, on a fake clock."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from connector.clock import FakeClock
from connector.pacing import DailyBudget, InMemoryCallBudgetStore, SlidingWindowLimiter


def _max_in_window(times: list[float], window: float) -> int:
    best = 0
    for i, start in enumerate(times):
        best = max(best, sum(1 for t in times[i:] if t < start + window))
    return best


def test_limiter_never_exceeds_window_with_concurrent_callers() -> None:
    clock = FakeClock()
    limiter = SlidingWindowLimiter(40, 5.0, margin=0.0, clock=clock)
    sent: list[float] = []

    async def caller(n: int) -> None:
        for _ in range(n):
            await limiter.acquire()
            sent.append(clock.monotonic())

    async def main() -> None:
        await asyncio.gather(*(caller(25) for _ in range(8)))

    asyncio.run(main())
    assert len(sent) == 200
    assert _max_in_window(sorted(sent), 5.0) == 40
    # Full speed: 200 calls need exactly 4 further windows after the first burst.
    assert max(sent) == pytest.approx(20.0)


def test_limiter_margin_widens_window() -> None:
    clock = FakeClock()
    limiter = SlidingWindowLimiter(2, 1.0, margin=0.5, clock=clock)

    async def main() -> list[float]:
        out = []
        for _ in range(3):
            await limiter.acquire()
            out.append(clock.monotonic())
        return out

    assert asyncio.run(main()) == [0.0, 0.0, 1.5]


def test_limiter_pause_holds_every_caller() -> None:
    clock = FakeClock()
    limiter = SlidingWindowLimiter(100, 5.0, clock=clock)

    async def main() -> float:
        await limiter.acquire()
        limiter.pause(7.0)
        limiter.pause(2.0)  # never shortens
        await limiter.acquire()
        return clock.monotonic()

    assert asyncio.run(main()) == pytest.approx(7.0)


def test_limiter_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="max_calls"):
        SlidingWindowLimiter(0, 5.0)
    with pytest.raises(ValueError, match="window"):
        SlidingWindowLimiter(1, 0.0)


def test_budget_counts_across_instances_and_rolls_over() -> None:
    clock = FakeClock(datetime(2026, 3, 1, 10, 30, tzinfo=UTC))
    store = InMemoryCallBudgetStore()

    async def main() -> None:
        first = DailyBudget(3, store, clock=clock)
        assert [await first.try_acquire() for _ in range(2)] == [True, True]
        second = DailyBudget(3, store, clock=clock)  # a later run, same store
        assert await second.remaining() == 1
        assert await second.try_acquire() is True
        assert await second.try_acquire() is False
        assert await second.used() == 3
        clock.advance(timedelta(hours=24, minutes=31).total_seconds())
        third = DailyBudget(3, store, clock=clock)
        assert await third.remaining() == 3
        assert await third.try_acquire(2) is True

    asyncio.run(main())
    # Old hourly buckets are pruned on save.
    assert list(store.counts) == ["2026-03-02T11"]


def test_budget_rolling_window_is_never_shorter_than_24_hours() -> None:
    clock = FakeClock(datetime(2026, 3, 1, 23, 50, tzinfo=UTC))
    store = InMemoryCallBudgetStore()

    async def main() -> bool:
        budget = DailyBudget(2, store, clock=clock)
        assert await budget.try_acquire(2)
        clock.advance(20 * 60)  # next calendar day, 20 minutes later
        return await DailyBudget(2, store, clock=clock).try_acquire()

    assert asyncio.run(main()) is False


def test_budget_persist_every_batches_writes_and_flush_saves_rest() -> None:
    clock = FakeClock()
    store = InMemoryCallBudgetStore()

    async def main() -> None:
        budget = DailyBudget(100, store, clock=clock, persist_every=10)
        for _ in range(25):
            assert await budget.try_acquire()
        assert store.saves == 2
        await budget.flush()
        assert store.saves == 3

    asyncio.run(main())
    assert sum(store.counts.values()) == 25
