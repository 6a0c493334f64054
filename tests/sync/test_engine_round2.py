"""Engine fixes of the second review: reference re-sends vs held plans (item 10), a crash
with a later batch acknowledged before an earlier one (11), discard's parameters (12),
and no reports from a stale journal after the lock was lost (8)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from connector.errors import RunError
from connector.scim import BulkPayload
from connector.state.base import Outcome
from connector.sync.journal import RunState, WaitingReason
from connector.sync.references import UNRESOLVED_REFERENCE
from connector.sync.targets import BatchReceipt
from tests.sync.fakes import Crash, FakeTarget, people
from tests.sync.test_pipeline import World


def test_reference_resends_leave_records_a_held_run_carries(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.sync("hr_20260302.csv", people(10))  # E0001 manages everyone
    w.clock.advance(86400)
    day2 = people(5)
    day2[4] = (*day2[4][:3], "Ops", *day2[4][4:])  # E0005 moves; E0006..E0010 leave
    held = w.sync("hr_20260303.csv", day2)
    assert held.state == "held"
    # E0005 was skipped for an unresolved manager by an earlier run
    index = w.store.load_records("employees")
    entry = index.entries["E0005"]
    entry.outcome = Outcome.SKIPPED.value
    entry.error_code = UNRESOLVED_REFERENCE
    entry.run_id = "employees-earlier"
    w.store.save_records(index)
    calls = len(w.service.calls)
    w.reconcile()  # E0001 confirmed: E0005 could be re-sent — but the held run has it
    assert [r.run_id for r in w.engine.list_runs() if "-refs" in r.run_id] == []
    assert len(w.service.calls) == calls
    assert w.service.users["E0005"]["department"] == "Sales"


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
    doc = w.engine.get_run(run.run_id).to_doc()
    assert [b["i"] for b in doc["batches"]] == [1]  # only batch 1 was acknowledged
    w.service.target = real  # type: ignore[method-assign]
    w.engine = w.new_engine(window=1)
    before = len(w.service.calls)
    [resumed] = asyncio.run(w.engine.resume_waiting())
    assert resumed.state == "uploaded"
    again = w.service.calls[before:]
    assert [c[0] for c in again] == ["E0001", "E0101"]  # batches 0 and 2, once each
    assert not any("E0051" in c for c in again)  # the acknowledged batch is not re-sent
    assert sorted(b["i"] for b in w.engine.get_run(run.run_id).to_doc()["batches"]) == [0, 1, 2]
    assert {u["department"] for u in w.service.users.values()} == {"Ops"}


def test_discard_records_the_reason_and_honours_allowed_states(tmp_path: Path) -> None:
    w = World(tmp_path, max_changes_percent=1000, max_changes=100000)
    w.sync("hr_20260302.csv", people(100))
    w.clock.advance(86400)
    w.service.quota = len(w.service.calls) + 1
    waiting = w.sync("hr_20260303.csv", people(100, dept="Ops"))
    assert waiting.state == "uploading"
    with pytest.raises(RunError, match="held"):
        w.engine.discard(waiting.run_id, by="ops", allowed_states={RunState.HELD})
    assert w.engine.get_run(waiting.run_id).state == "uploading"
    out = w.engine.discard(waiting.run_id, by="ops", reason="wrong\nfile")
    assert out.state == "uploaded"  # its delivered batch is still reconciled
    doc = w.engine.get_run(waiting.run_id).to_doc()
    assert doc["discardedReason"] == "discarded by ops (reason: wrong file)"


def test_no_reports_are_written_from_a_journal_whose_lock_was_lost(tmp_path: Path) -> None:
    w = World(tmp_path)
    held: list[Any] = []
    real_lock = w.store.lock

    @contextmanager
    def capturing(source: str, *, owner: str | None = None) -> Iterator[Any]:
        with real_lock(source, owner=owner) as lock:
            held.append(lock)
            yield lock

    w.store.lock = capturing  # type: ignore[method-assign]
    real_send = FakeTarget.send

    async def losing(self: FakeTarget, payload: BulkPayload) -> BatchReceipt:
        receipt = await real_send(self, payload)
        held[-1].lost = True  # e.g. renewals stuck: another instance may hold it now
        return receipt

    FakeTarget.send = losing  # type: ignore[method-assign]
    try:
        run = w.sync("hr_20260302.csv", people(120))
    finally:
        FakeTarget.send = real_send  # type: ignore[method-assign]
    assert run.waiting_reason is WaitingReason.LOCK_LOST
    assert w.store.list_artifacts(f"employees/{run.run_id}/report") == []


def test_loggable_keeps_type_and_code_and_drops_emails_and_upns() -> None:
    from connector.errors import BadRequestError
    from connector.sync.summary import loggable

    exc = BadRequestError(
        "userPrincipalName 'jane.doe@contoso.com' conflicts with <j.roe@fabrikam.onmicrosoft.com>",
        status=400,
        code="InvalidRequest",
    )
    text = loggable(exc)
    assert text.startswith("BadRequestError[InvalidRequest]: userPrincipalName")
    assert "@" not in text
    assert text.count("<redacted>") == 2
    assert loggable(RuntimeError("")) == "RuntimeError"
