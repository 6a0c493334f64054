"""Sliding-window limiter and daily budget, on a fake clock."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.clock import FakeClock
from connector.errors import StateError
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
            (await limiter.acquire()).sent()
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
            (await limiter.acquire()).sent()
            out.append(clock.monotonic())
        return out

    assert asyncio.run(main()) == [0.0, 0.0, 1.5]


def test_limiter_pause_holds_every_caller() -> None:
    clock = FakeClock()
    limiter = SlidingWindowLimiter(100, 5.0, clock=clock)

    async def main() -> float:
        (await limiter.acquire()).sent()
        limiter.pause(7.0)
        limiter.pause(2.0)  # never shortens
        (await limiter.acquire()).sent()
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


def _gaps_hold(times: list[float], max_calls: int, span: float) -> bool:
    """No ``max_calls + 1`` times within less than ``span`` of each other."""
    times = sorted(times)
    return all(
        times[i + max_calls] - times[i] >= span - 1e-9 for i in range(len(times) - max_calls)
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    max_calls=st.sampled_from([1, 2, 3, 6, 40]),
    margin=st.sampled_from([0.0, 0.1]),
    calls=st.lists(
        st.tuples(
            st.floats(0.0, 3.0),  # stall between the slot and the write
            st.floats(0.0, 1.0),  # the call's answer after the write
            st.booleans(),  # whether the write is seen (a tracing transport)
        ),
        min_size=1,
        max_size=100,
    ),
    callers=st.integers(1, 12),
)
def test_calls_never_exceed_the_window_measured_on_when_they_went_out(
    max_calls: int, margin: float, calls: list[tuple[float, float, bool]], callers: int
) -> None:
    """Whatever happens between a slot and its write, the writes keep the window."""
    clock = FakeClock()
    limiter = SlidingWindowLimiter(max_calls, 5.0, margin=margin, clock=clock)
    todo = iter(calls)
    written: list[float] = []

    async def caller() -> None:
        for stall, answer, seen in todo:
            slot = await limiter.acquire()
            await clock.sleep(stall)
            if seen:
                slot.sent()
            written.append(clock.monotonic())
            await clock.sleep(answer)
            slot.sent()  # the end of the call: a no-op when the write was seen
            if not seen:
                written[-1] = clock.monotonic()

    async def main() -> None:
        await asyncio.gather(*(caller() for _ in range(callers)))

    asyncio.run(main())
    assert len(written) == len(calls)
    assert _gaps_hold(written, max_calls, 5.0 + margin)


def test_a_stall_before_the_write_moves_the_window_with_it() -> None:
    """Regression: slots used to count from when they were granted, so a call held up
    before its write (a state write, a token refresh) let the next ones come too early."""
    clock = FakeClock()
    limiter = SlidingWindowLimiter(2, 1.0, margin=0.0, clock=clock)

    async def main() -> list[float]:
        held = await limiter.acquire()
        prompt = await limiter.acquire()
        prompt.sent()  # at 0.0
        clock.advance(0.9)
        held.sent()  # at 0.9: it went out late
        out = []
        for _ in range(2):
            (await limiter.acquire()).sent()
            out.append(clock.monotonic())
        return out

    # The third call waits for the prompt one to leave (1.0), the fourth for the held one
    # (1.9); counted from the grants both would have gone at 1.0: three calls within 1 s.
    assert asyncio.run(main()) == [pytest.approx(1.0), pytest.approx(1.9)]


def test_an_open_slot_counts_as_sent_now_until_it_is_written() -> None:
    clock = FakeClock()
    limiter = SlidingWindowLimiter(1, 1.0, margin=0.0, clock=clock)

    async def main() -> float:
        slot = await limiter.acquire()

        async def write_later() -> None:
            await clock.sleep(2.5)
            slot.sent()

        writer = asyncio.create_task(write_later())
        second = await limiter.acquire()  # waits for the write (2.5), then a window
        second.sent()
        await writer
        return clock.monotonic()

    assert asyncio.run(main()) >= 3.5


def test_the_limiter_waits_exactly_until_the_oldest_call_leaves() -> None:
    """Pacing precision: no call waits longer than the window needs (no idle slots)."""
    clock = FakeClock()
    limiter = SlidingWindowLimiter(3, 5.0, margin=0.1, clock=clock)

    async def main() -> list[float]:
        out = []
        for stall in (0.0, 0.7, 1.3, 0.0, 0.0, 0.0):
            clock.advance(stall)
            (await limiter.acquire()).sent()
            out.append(clock.monotonic())
        return out

    assert asyncio.run(main()) == [pytest.approx(t) for t in (0.0, 0.7, 2.0, 5.1, 5.8, 7.1)]


class _GatedStore(InMemoryCallBudgetStore):
    """Call counts in memory whose writes wait for the test; a write may fail."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.fail: Exception | None = None

    async def save(self, counts: Mapping[str, int]) -> None:
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        await super().save(counts)


def test_units_taken_at_once_are_persisted_by_two_writes_not_one_each() -> None:
    """A window's first burst: twenty calls take their unit together. Each call goes only
    once a write holding its unit succeeded, but the writes are not made one per call."""
    clock = FakeClock()
    store = _GatedStore()
    held: list[int] = []

    async def call(budget: DailyBudget) -> None:
        assert await budget.try_acquire()
        held.append(sum(store.counts.values()))  # what the store held when it went

    async def main() -> None:
        budget = DailyBudget(100, store, clock=clock)
        calls = [asyncio.create_task(call(budget)) for _ in range(20)]
        while budget._taken < 20:
            await asyncio.sleep(0)
        assert held == []  # none goes before its unit is written
        store.gate.set()
        await asyncio.gather(*calls)

    asyncio.run(main())
    assert store.saves == 2
    assert held == [1] + [20] * 19
    assert sum(store.counts.values()) == 20


def test_a_failed_count_write_is_raised_to_the_call_and_its_unit_written_next_time() -> None:
    clock = FakeClock()
    store = _GatedStore()
    store.gate.set()

    async def main() -> None:
        budget = DailyBudget(100, store, clock=clock)
        store.fail = StateError("the state store is unreachable")
        with pytest.raises(StateError):
            await budget.try_acquire()
        store.fail = None
        assert await budget.try_acquire()

    asyncio.run(main())
    assert sum(store.counts.values()) == 2
