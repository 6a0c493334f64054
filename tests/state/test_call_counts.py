"""Call counts behind the daily Graph budget: atomic adds that concurrent runs never lose."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from connector.clock import FakeClock
from connector.pacing import DailyBudget
from connector.state.store import StateStore, StoreCallBudget


def test_call_counts_add_and_prune(store: StateStore) -> None:
    assert store.load_call_counts() == {}
    assert store.add_call_counts({"2026-01-01T00": 3}) == {"2026-01-01T00": 3}
    store.add_call_counts({"2026-01-01T00": 2, "2026-01-02T05": 1})
    assert store.load_call_counts() == {"2026-01-01T00": 5, "2026-01-02T05": 1}
    store.add_call_counts({}, prune=["2026-01-01T00"])
    assert store.load_call_counts() == {"2026-01-02T05": 1}


def test_concurrent_call_counts_lose_nothing(store: StateStore) -> None:
    def work() -> None:
        for _ in range(5):
            store.add_call_counts({"2026-01-01T00": 1})

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.load_call_counts() == {"2026-01-01T00": 20}


def test_daily_budget_on_the_store_counts_concurrent_runs(store: StateStore) -> None:
    import asyncio

    clock = FakeClock(datetime(2026, 3, 1, 9, 30, tzinfo=UTC))

    async def scenario() -> None:
        a = DailyBudget(10, StoreCallBudget(store), clock=clock)
        b = DailyBudget(10, StoreCallBudget(store), clock=clock)
        assert await a.try_acquire(3)
        assert await b.try_acquire(4)  # b loads after a saved: it starts from 3
        assert await a.try_acquire(1)
        # A third run sees every call made by the other two.
        c = DailyBudget(10, StoreCallBudget(store), clock=clock)
        assert await c.used() == 8
        assert not await c.try_acquire(3)
        clock.advance(timedelta(hours=25).total_seconds())
        assert await c.try_acquire(3)

    asyncio.run(scenario())
    counts = store.load_call_counts()
    assert counts.get("2026-03-02T10") == 3
    assert "2026-03-01T09" not in counts  # pruned once out of the window


def test_a_call_count_write_does_not_hold_the_event_loop(store: StateStore) -> None:
    """Regression: the budget's store write ran on the event loop before every call, so
    paced calls of other tasks due meanwhile went late. Here the write waits until the
    event loop has run other work; made on the loop it would wait in vain."""
    import asyncio
    import time

    add = store.add_call_counts
    ticks = 0
    saw: list[bool] = []

    def slow_add(*args: object, **kw: object) -> dict[str, int]:
        start = ticks
        for _ in range(10_000):  # at most ~10 s, only so a regression cannot hang
            if ticks >= start + 5:
                break
            time.sleep(0.001)
        saw.append(ticks >= start + 5)
        return add(*args, **kw)  # type: ignore[arg-type]

    store.add_call_counts = slow_add  # type: ignore[method-assign]
    clock = FakeClock(datetime(2026, 3, 1, 9, 30, tzinfo=UTC))

    async def scenario() -> bool:
        nonlocal ticks
        budget = DailyBudget(10, StoreCallBudget(store), clock=clock)
        taken = asyncio.create_task(budget.try_acquire())
        while not taken.done():
            ticks += 1
            await asyncio.sleep(0)
        return await taken

    assert asyncio.run(scenario())
    assert saw == [True]
    assert store.load_call_counts() == {"2026-03-01T09": 1}
