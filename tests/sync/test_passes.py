"""Resuming one run, and passes over every source that skip a busy one."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from connector.errors import (
    ConcurrentRunError,
    RunError,
)
from connector.state.local import LocalStateStore
from connector.sync.summary import PassResult
from connector.sync.waiting import WaitingReason
from tests.sync.fakes import people
from tests.sync.world import World


def test_resume_continues_one_run(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.service.quota = 1
    run = w.sync("hr_20260302.csv", people(120))
    assert run.waiting_reason is WaitingReason.QUOTA
    w.service.quota = None
    out = asyncio.run(w.engine.resume(run.run_id))
    assert out.state == "uploaded"
    assert out.waiting_reason is None
    with pytest.raises(RunError):
        asyncio.run(w.engine.resume("employees-nope"))


def test_busy_source_is_skipped_and_reported(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.service.quota = 1
    w.sync("hr_20260302.csv", people(120))
    w.service.quota = None
    other = LocalStateStore(tmp_path / "state", clock=w.clock, heartbeat=False)
    with other.lock("employees", owner="someone-else"):
        out = asyncio.run(w.engine.resume_waiting())
        assert isinstance(out, PassResult)
        assert list(out) == []
        assert "employees" in out.skipped
        rec = asyncio.run(w.engine.reconcile_open_runs())
        assert isinstance(rec, PassResult)
    with pytest.raises(ConcurrentRunError), other.lock("employees"):
        asyncio.run(w.engine.resume(w.engine.list_runs()[0].run_id))
    [done] = asyncio.run(w.engine.resume_waiting())
    assert done.state == "uploaded"
