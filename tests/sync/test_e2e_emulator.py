"""End to end: the engine, the Graph client and the emulator over loopback, local state."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from benchmarks.emuworld import actual_directory, emu_world, expected_directory, read_rows
from connector.clock import FakeClock
from connector.sample import churn_extract, generate_extract
from connector.state.local import LocalStateStore
from tests.sync.fakes import Crash, CrashAfter


class SeesActiveJob:
    """A target whose job read answers Active (the job is paused just after the check)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.job_id = inner.job_id

    async def send(self, payload: Any) -> Any:
        return await self.inner.send(payload)

    def iter_logs(self, since: Any) -> Any:
        return self.inner.iter_logs(since)

    async def get_job(self) -> dict[str, Any]:
        return {"id": self.job_id, "status": {"code": "Active"}}

    async def aclose(self) -> None:
        await self.inner.aclose()


def local_store(tmp: Path) -> Callable[[FakeClock], Any]:
    return lambda clock: LocalStateStore(tmp / "state", clock=clock, heartbeat=False)


def test_three_extracts_leave_the_directory_in_the_expected_state(tmp_path: Path) -> None:
    day1 = tmp_path / "hr_20260105.csv"
    day2 = tmp_path / "hr_20260106.csv"
    day3 = tmp_path / "hr_20260107.csv"
    generate_extract(day1, 240, seed=3)
    churn_extract(day1, day2, churn=0.06, seed=1)
    churn_extract(day2, day3, churn=0.06, seed=2)
    with emu_world(local_store(tmp_path)) as w:
        first = w.sync(day1)
        assert first.state == "uploaded"
        assert first.planned["joiners"] == 240
        [r1] = w.reconcile()
        assert r1.state == "done"
        assert r1.outcomes.get("created") == 240
        calls_after_day1 = len(w.emu.calls())
        for day in (day2, day3):
            w.clock.advance(86400)
            run = w.sync(day)
            assert run.state == "uploaded", run
            [rec] = w.reconcile()
            assert rec.state == "done", rec.outcomes
            assert set(rec.outcomes) <= {"created", "updated", "disabled"}, rec.outcomes
        assert actual_directory(w.emu) == expected_directory([day1, day2, day3])
        # only changes were sent after the first load
        changed = sum(
            s.planned["joiners"] + s.planned["movers"] + s.planned["leavers"]
            for s in w.engine.list_runs()[1:]
        )
        assert sum(c.operations for c in w.emu.calls()[calls_after_day1:]) == changed


def test_duplicate_delivery_is_a_no_op(tmp_path: Path) -> None:
    day1 = tmp_path / "hr_20260105.csv"
    generate_extract(day1, 120, seed=4)
    with emu_world(local_store(tmp_path)) as w:
        first = w.sync(day1)
        calls = len(w.emu.calls())
        copy = tmp_path / "again" / day1.name
        copy.parent.mkdir()
        copy.write_bytes(day1.read_bytes())
        second = w.sync(copy)
        assert second.duplicate
        assert second.run_id == first.run_id
        assert len(w.emu.calls()) == calls


def test_crash_between_batches_then_resume(tmp_path: Path) -> None:
    day1 = tmp_path / "hr_20260105.csv"
    generate_extract(day1, 260, seed=5)  # 6 batches
    with emu_world(local_store(tmp_path)) as w:
        inner = w.engine.targets
        counter = [0]
        w.engine.targets = lambda src: CrashAfter(inner(src), 3, counter)
        try:
            w.sync(day1)
            raise AssertionError("expected the simulated crash")
        except Crash:
            pass
        [run] = w.engine.list_runs()
        assert run.state == "uploading"
        w.emu.wait_idle()
        sent_before = sum(1 for c in w.emu.calls() if c.status == 202)
        # batches acknowledged in the journal; the others that reached the service were
        # in flight when the process died (at most the window)
        assert 2 <= run.batches_done < 6
        in_flight = sent_before - run.batches_done
        assert 1 <= in_flight <= w.engine.window
        w.engine = w.new_engine()  # a new process
        [resumed] = asyncio.run(w.engine.resume_waiting())
        w.emu.wait_idle()
        assert resumed.state == "uploaded"
        ops = [c.operations for c in w.emu.calls() if c.status == 202]
        # only unacknowledged batches were sent again: 6 batches + those in flight, once more
        assert len(ops) == 6 + in_flight
        assert len(w.emu.users()) == 260
        assert len(w.store.load_records("employees")) == 260
        [rec] = w.reconcile()
        assert rec.state == "done"
        assert (
            rec.outcomes.get("created", 0)
            + rec.outcomes.get("updated", 0)
            + rec.outcomes.get("skipped", 0)
            == 260
        )


def test_mass_change_held_then_approved(tmp_path: Path) -> None:
    day1 = tmp_path / "hr_20260105.csv"
    day2 = tmp_path / "hr_20260106.csv"
    generate_extract(day1, 200, seed=6)
    lines = day1.read_text(encoding="utf-8").splitlines(keepends=True)
    day2.write_text("".join(lines[:101]), encoding="utf-8")  # truncated: half the people
    with emu_world(local_store(tmp_path)) as w:
        w.sync(day1)
        w.reconcile()
        w.clock.advance(86400)
        calls = len(w.emu.calls())
        held = w.sync(day2)
        assert held.state == "held"
        assert held.held_reason is not None
        assert "leavers" in held.held_reason
        assert len(w.emu.calls()) == calls
        enabled_before = sum(1 for u in w.emu.users().values() if u["accountEnabled"])
        approved = asyncio.run(w.engine.approve(held.run_id, by="test"))
        w.emu.wait_idle()
        assert approved.state == "uploaded"
        enabled_after = sum(1 for u in w.emu.users().values() if u["accountEnabled"])
        assert enabled_before - enabled_after == held.planned["leavers"]
        assert held.planned["leavers"] >= 90


def test_quota_exhaustion_then_resume_next_day(tmp_path: Path) -> None:
    day1 = tmp_path / "hr_20260105.csv"
    generate_extract(day1, 230, seed=7)  # 5 batches
    with emu_world(local_store(tmp_path), daily_call_budget=3) as w:
        run = w.sync(day1)
        assert run.state == "uploading"
        assert run.waiting is not None
        assert "Quota" in run.waiting
        assert run.batches_done == 3
        assert len(w.emu.users()) == 150
        assert len(w.store.load_records("employees")) == 150
        w.clock.advance(3600)
        [still] = asyncio.run(w.engine.resume_waiting())
        assert still.batches_done == 3
        w.clock.advance(86400)
        [done] = asyncio.run(w.engine.resume_waiting())
        w.emu.wait_idle()
        assert done.state == "uploaded"
        assert len(w.emu.users()) == 230
        assert sum(c.operations for c in w.emu.calls()) == 230


def test_out_of_order_file_is_superseded(tmp_path: Path) -> None:
    newer = tmp_path / "hr_20260106.csv"
    older = tmp_path / "hr_20260105.csv"
    generate_extract(older, 60, seed=8)
    churn_extract(older, newer, churn=0.3, seed=8)
    with emu_world(local_store(tmp_path)) as w:
        w.sync(newer)
        calls = len(w.emu.calls())
        late = w.sync(older)
        assert late.state == "superseded"
        assert len(w.emu.calls()) == calls
        report = w.store.read_artifact(f"employees/{late.run_id}/report.html").decode()
        assert "older than the last one applied" in report


def test_failures_skips_and_unconfirmed_are_classified_from_the_logs(tmp_path: Path) -> None:
    from connector.sample import Faults

    day1 = tmp_path / "hr_20260105.csv"
    generate_extract(day1, 80, seed=9, faults=Faults(duplicate_upn=True, unresolved_manager=True))
    day2 = tmp_path / "hr_20260106.csv"
    churn_extract(day1, day2, churn=0.2, seed=9)
    with emu_world(local_store(tmp_path)) as w:
        run = w.sync(day1)
        [rec] = w.reconcile()
        assert rec.state == "done"
        assert rec.outcomes.get("failed") == 1
        assert rec.outcomes.get("skipped") == 1
        failures = w.store.read_artifact(f"employees/{run.run_id}/failures.csv").decode()
        assert "AzureActiveDirectoryConflictEntryPrimaryAttributes" in failures
        assert "UnableToResolveReferenceAttributeValue" in failures
        # the job stops processing right after the pre-upload check saw it active: the
        # next run's records never show up in the logs
        w.emu.set_job_state("Paused")
        w.clock.advance(86400)
        targets = w.engine.targets
        w.engine.targets = lambda src: SeesActiveJob(targets(src))
        run2 = w.sync(day2)
        w.engine.targets = targets
        assert run2.state == "uploaded"
        [pending] = w.reconcile(timedelta(minutes=30))
        assert pending.state == "reconciling"
        assert pending.job_health is not None
        assert "paused" in pending.job_health
        [late] = w.reconcile(timedelta(hours=2))
        assert late.state == "done"
        assert set(late.outcomes) == {"unconfirmed"}
        csv_text = w.store.read_artifact(f"employees/{run2.run_id}/failures.csv").decode()
        assert csv_text.count("unconfirmed") == sum(late.outcomes.values())


def test_transient_faults_through_the_window_lose_no_record(tmp_path: Path) -> None:
    """A first load through the engine's window against 5xx and dropped connections
    (before and after the upload is queued): the run is uploaded, every record arrives."""
    extract = tmp_path / "hr_20260105.csv"
    generate_extract(extract, 2_600, seed=5)
    faults = {"fault_rate": 0.05, "drop_before_rate": 0.03, "drop_after_rate": 0.03, "seed": 9}
    with emu_world(local_store(tmp_path), emulator=faults) as w:
        run = w.sync(extract)
        assert run.state == "uploaded", run
        assert run.batches_total == 52
        calls = w.emu.calls()
        assert any(c.status in (500, 503) for c in calls)
        assert any(c.status == 0 for c in calls)
        assert set(w.emu.users()) == set(read_rows(extract))
