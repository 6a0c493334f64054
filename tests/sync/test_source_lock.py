"""Every operation that holds a source takes its lock, repairs what an interruption left,
then runs; the lock is released on every exit, and a busy source is not repaired."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest

from connector.errors import ConcurrentRunError, RunError
from connector.state.base import SourceLock
from connector.state.local import LocalStateStore
from connector.sync.engine import Engine
from connector.sync.journal import Journal, RunState
from connector.sync.receiving import already_received
from connector.sync.waiting import WaitingReason
from tests.sync.fakes import people, write_extract
from tests.sync.world import World

Operation = Callable[[Engine, str, Path], Awaitable[Any]]


async def _discard(engine: Engine, run_id: str, _: Path) -> Any:
    return engine.discard(run_id)


OPERATIONS: dict[str, Operation] = {
    "ingest": lambda e, _, path: e.ingest("employees", "hr_20260303.csv", path),
    "resume": lambda e, run_id, _: e.resume(run_id),
    "resume_waiting": lambda e, _, __: e.resume_waiting(),
    "reconcile_open_runs": lambda e, _, __: e.reconcile_open_runs(),
    "approve": lambda e, run_id, _: e.approve(run_id),
    "discard": _discard,
    "retry_failed": lambda e, run_id, _: e.retry_failed(run_id),
}


def _waiting_run(tmp_path: Path) -> tuple[World, str, Path]:
    """A run left waiting (uploading) after one batch, a second file to ingest."""
    w = World(tmp_path)
    w.service.quota = 1
    run = w.sync("hr_20260302.csv", people(120))
    assert run.waiting_reason is WaitingReason.QUOTA
    w.service.quota = None
    return w, run.run_id, write_extract(tmp_path / "hr_20260303.csv", people(121))


def _record(engine: Engine, events: list[str]) -> None:
    """Record when the source's lock is taken and released and when repair runs."""
    take = engine.runs.lock
    repair = engine.sender.repair

    @contextmanager
    def lock(source: str, owner: str) -> Iterator[SourceLock]:
        with take(source, owner) as held:
            events.append("locked")
            try:
                yield held
            finally:
                events.append("released")

    def repaired(source: str) -> None:
        events.append("repaired")
        repair(source)

    engine.runs.lock = lock  # type: ignore[method-assign]
    engine.sender.repair = repaired  # type: ignore[method-assign]


@pytest.mark.parametrize("name", list(OPERATIONS))
def test_an_operation_repairs_under_the_lock_before_its_body_and_releases_it(
    tmp_path: Path, name: str
) -> None:
    w, run_id, path = _waiting_run(tmp_path)
    if name == "reconcile_open_runs":
        # Only sent runs are reconciled: with none, the source is not even locked.
        assert asyncio.run(w.engine.resume(run_id)).state == "uploaded"
    events: list[str] = []
    _record(w.engine, events)
    # Refused for the run's state (approve of a run not held, nothing to retry): refused
    # under the lock, after the repair.
    with suppress(RunError):
        asyncio.run(OPERATIONS[name](w.engine, run_id, path))
    assert events[:2] == ["locked", "repaired"]
    assert events == ["locked", "repaired", "released"] * (len(events) // 3)


@pytest.mark.parametrize("name", ["ingest", "resume", "approve", "discard", "retry_failed"])
def test_a_busy_source_is_refused_and_not_repaired(tmp_path: Path, name: str) -> None:
    w, run_id, path = _waiting_run(tmp_path)
    events: list[str] = []
    _record(w.engine, events)
    other = LocalStateStore(tmp_path / "state", clock=w.clock, heartbeat=False)
    held: AbstractContextManager[SourceLock] = other.lock("employees", owner="someone-else")
    with held, pytest.raises(ConcurrentRunError):
        asyncio.run(OPERATIONS[name](w.engine, run_id, path))
    assert events == []
    assert w.engine.get_run(run_id).state is RunState.UPLOADING


def test_a_run_past_planning_or_with_sent_batches_was_already_received(tmp_path: Path) -> None:
    w, run_id, _ = _waiting_run(tmp_path)
    assert already_received(w.engine.get_run(run_id))
    assert not already_received(None)
    for state in RunState:
        journal = Journal(run_id="employees-x", source="employees", state=state)
        replannable = state in (RunState.RECEIVED, RunState.PLANNED, RunState.FAILED)
        assert already_received(journal) is not replannable
