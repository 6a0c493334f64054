"""A run interrupted (a crash while reading, after planning, mid-upload) is continued
or planned again."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from connector.errors import ConcurrentRunError
from connector.scim import BulkPayload
from connector.sync.journal_doc import journal_to_doc
from connector.sync.targets import BatchReceipt
from tests.sync.fakes import Crash, FakeTarget, people
from tests.sync.world import World


def test_crash_after_planning_is_continued_by_resume_waiting(tmp_path: Path) -> None:
    w = World(tmp_path)
    real = w.engine.turns.decide

    async def crash(*a: Any, **k: Any) -> Any:
        raise Crash("killed after planning")

    w.engine.turns.decide = crash  # type: ignore[method-assign]
    with pytest.raises(Crash):
        w.sync("hr_20260302.csv", people(60))
    [run] = w.engine.list_runs()
    assert run.state == "planned"
    w.engine.turns.decide = real  # type: ignore[method-assign]
    [out] = asyncio.run(w.engine.resume_waiting())
    assert out.state == "uploaded"
    assert len(w.service.users) == 60


def test_crash_while_reading_leaves_a_run_that_redelivery_plans_again(tmp_path: Path) -> None:
    w = World(tmp_path)
    real = w.engine.records

    def crash(*a: Any) -> Any:
        raise Crash("killed while reading")

    w.engine.records = crash
    with pytest.raises(Crash):
        w.sync("hr_20260302.csv", people(20))
    assert w.engine.list_runs()[0].state == "received"
    w.engine.records = real
    again = w.sync("hr_20260302.csv", people(20))
    assert not again.duplicate
    assert again.state == "uploaded"
    assert len(w.service.users) == 20


def test_a_received_run_can_be_discarded(tmp_path: Path) -> None:
    w = World(tmp_path)

    def crash(*a: Any) -> Any:
        raise Crash("killed while reading")

    w.engine.records = crash
    with pytest.raises(Crash):
        w.sync("hr_20260302.csv", people(5))
    run = w.engine.list_runs()[0]
    assert w.engine.discard(run.run_id).state == "discarded"


class _Racing(FakeTarget):
    """Batch 0 stays in flight until batch 1 is acknowledged, then the process dies;
    batch 2 is still in flight at that moment (it never returns)."""

    async def send(self, payload: BulkPayload) -> BatchReceipt:
        ids = list(payload.external_ids)
        if "E0001" in ids:
            while not any("E0051" in c for c in self.service.calls):
                await asyncio.sleep(0)
            for _ in range(5):  # let batch 1's acknowledgement be journaled
                await asyncio.sleep(0)
            self.service.calls.append(ids)
            raise Crash("process killed while batch 0 was in flight")
        if "E0101" in ids:
            await asyncio.Event().wait()  # in flight when the process dies
        return await super().send(payload)


def test_a_crash_after_a_later_batch_was_acknowledged_resends_only_the_others(
    tmp_path: Path,
) -> None:
    w = World(tmp_path, max_changes_percent=1000, max_changes=100000)
    w.engine = w.new_engine(window=1)
    w.sync("hr_20260302.csv", people(150))
    w.clock.advance(86400)
    real = w.service.target
    w.service.target = lambda src: _Racing(w.service)  # type: ignore[method-assign]
    w.engine = w.new_engine(window=3)
    with pytest.raises(Crash):
        w.sync("hr_20260303.csv", people(150, dept="Ops"))  # 150 movers: 3 batches
    [run] = [r for r in w.engine.list_runs() if r.file_name == "hr_20260303.csv"]
    doc = journal_to_doc(w.engine.get_run(run.run_id))
    assert [b["i"] for b in doc["batches"]] == [1]  # only batch 1 was acknowledged
    w.service.target = real  # type: ignore[method-assign]
    w.engine = w.new_engine(window=1)
    before = len(w.service.calls)
    [resumed] = asyncio.run(w.engine.resume_waiting())
    assert resumed.state == "uploaded"
    again = w.service.calls[before:]
    assert [c[0] for c in again] == ["E0001", "E0101"]  # batches 0 and 2, once each
    assert not any("E0051" in c for c in again)  # the acknowledged batch is not re-sent
    assert sorted(b["i"] for b in journal_to_doc(w.engine.get_run(run.run_id))["batches"]) == [
        0,
        1,
        2,
    ]
    assert {u["department"] for u in w.service.users.values()} == {"Ops"}


def test_a_redelivered_file_whose_run_waits_resumes_it(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.service.quota = 2
    first = w.sync("hr_20260302.csv", people(200))
    assert first.state == "uploading"
    assert first.batches_done == 2
    again = w.sync("hr_20260302.csv", people(200))  # without the rule: a no-op duplicate
    assert again.duplicate
    assert again.resumed is None
    w.service.quota = None
    resumed = w.sync("hr_20260302.csv", people(200), resume_waiting=True)
    assert resumed.resumed is True
    assert not resumed.duplicate
    assert resumed.run_id == first.run_id
    assert resumed.state == "uploaded"
    assert resumed.batches_done == 4


def test_a_redelivered_waiting_run_is_left_to_the_next_pass_when_its_source_is_busy(
    tmp_path: Path,
) -> None:
    w = World(tmp_path)
    w.service.quota = 2
    first = w.sync("hr_20260302.csv", people(200))
    w.service.quota = None
    real = w.engine.resume

    async def busy(*a: object, **k: object) -> object:
        raise ConcurrentRunError("employees is locked by another run")

    w.engine.resume = busy  # type: ignore[method-assign]
    out = w.sync("hr_20260302.csv", people(200), resume_waiting=True)
    w.engine.resume = real  # type: ignore[method-assign]
    assert out.resumed is False
    assert out.duplicate
    assert out.state == "uploading"
    assert out.run_id == first.run_id
    assert out.batches_done == 2


def test_a_redelivery_of_a_finished_run_is_not_resumed(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.sync("hr_20260302.csv", people(20))
    again = w.sync("hr_20260302.csv", people(20), resume_waiting=True)
    assert again.duplicate
    assert again.resumed is None
    assert again.state == "uploaded"
