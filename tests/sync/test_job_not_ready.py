"""A run is not sent to a job that would not process it: it waits, saying why and what to do."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from benchmarks.emuworld import SP, T0, EmuWorld, emu_world, sources_config
from connector.clock import FakeClock
from connector.emulator import EmulatorConfig, on_premises_job, run_emulator
from connector.errors import PermissionDeniedError, ServiceError
from connector.graph.auth import StaticTokenProvider
from connector.graph.client import GraphClient
from connector.graph.endpoint import ProvisioningEndpoint
from connector.graph.jobs import NotReady, read_job, readiness
from connector.sample import generate_extract
from connector.state.local import LocalStateStore
from connector.sync.journal_doc import journal_from_doc, journal_to_doc
from connector.sync.readiness import JobGate, not_ready_note
from connector.sync.waiting import WaitingReason
from tests.sync.fakes import FakeTarget, config, people
from tests.sync.world import World


def local_store(tmp: Path) -> Callable[[FakeClock], Any]:
    return lambda clock: LocalStateStore(tmp / "state", clock=clock, heartbeat=False)


# -- the engine over the in-memory service -------------------------------------------------


def test_a_paused_job_gets_no_call_and_the_run_waits_with_the_reason(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.service.job_state = "Paused"
    run = w.sync("hr_20260302.csv", people(120))
    assert w.service.calls == []
    assert run.state == "uploading"
    assert run.waiting_reason is WaitingReason.JOB_NOT_READY
    assert run.waiting is not None
    assert "paused" in run.waiting
    assert "start provisioning" in run.waiting
    journal = w.engine.get_run(run.run_id)
    assert journal_to_doc(journal)["waitingReason"] == "job_not_ready"
    assert len(w.store.load_records("employees")) == 0


def test_the_next_pass_sends_once_the_job_runs(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.service.job_state = "Paused"
    run = w.sync("hr_20260302.csv", people(120))
    again = asyncio.run(w.engine.resume_waiting())
    assert [s.waiting_reason for s in again] == [WaitingReason.JOB_NOT_READY]
    assert w.service.calls == []
    w.service.job_state = "Active"
    [resumed] = asyncio.run(w.engine.resume_waiting())
    assert resumed.run_id == run.run_id
    assert resumed.state == "uploaded"
    assert resumed.waiting is None
    assert len(w.service.calls) == 3


def test_the_job_is_read_once_per_pass_for_all_runs_of_a_source(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.config = config("delta")
    w.engine = w.new_engine()
    w.service.quota = 0  # both runs wait: the first for the quota, the second behind it
    w.sync("hr_20260302.csv", people(10))
    w.clock.advance(86400)
    w.sync("hr_20260303.csv", people(12))
    w.service.quota = None
    reads = 0
    real = FakeTarget.get_job

    async def counting(self: FakeTarget) -> dict[str, Any]:
        nonlocal reads
        reads += 1
        return await real(self)

    FakeTarget.get_job = counting  # type: ignore[method-assign]
    try:
        result = asyncio.run(w.engine.resume_waiting())
    finally:
        FakeTarget.get_job = real  # type: ignore[method-assign]
    assert [s.state for s in result] == ["uploaded", "uploaded"]
    assert reads == 1


def test_a_quarantine_waits_until_the_services_next_attempt_unless_an_operator_resumes(
    tmp_path: Path,
) -> None:
    w = World(tmp_path)
    nxt = w.clock.now() + timedelta(hours=1)
    quarantined = {
        "id": "j",
        "status": {
            "code": "Quarantine",
            "quarantine": {"reason": "EncounteredBaseEscrowThreshold", "nextAttempt": nxt},
        },
    }
    reads = 0

    async def get_job(self: FakeTarget) -> dict[str, Any]:
        nonlocal reads
        reads += 1
        return quarantined

    real = FakeTarget.get_job
    FakeTarget.get_job = get_job  # type: ignore[assignment]
    try:
        run = w.sync("hr_20260302.csv", people(10))
        assert run.waiting is not None
        assert "EncounteredBaseEscrowThreshold" in run.waiting
        assert "restart" in run.waiting
        assert w.engine.get_run(run.run_id).waiting_until == nxt
        asyncio.run(w.engine.resume_waiting())
        assert reads == 1  # before the next attempt a pass does not ask again
        asyncio.run(w.engine.resume(run.run_id))
        assert reads == 2  # an operator's resume asks at once
        w.clock.advance(3601)
        asyncio.run(w.engine.resume_waiting())
        assert reads == 3
    finally:
        FakeTarget.get_job = real  # type: ignore[method-assign]
    assert w.service.calls == []


def test_a_job_that_cannot_be_read_does_not_stop_the_upload(tmp_path: Path) -> None:
    w = World(tmp_path)

    async def refused(self: FakeTarget) -> dict[str, Any]:
        raise PermissionDeniedError("no Synchronization.Read.All", status=403)

    real = FakeTarget.get_job
    FakeTarget.get_job = refused  # type: ignore[assignment]
    try:
        run = w.sync("hr_20260302.csv", people(60))
    finally:
        FakeTarget.get_job = real  # type: ignore[method-assign]
    assert run.state == "uploaded"
    assert len(w.service.calls) == 2


# -- the building blocks --------------------------------------------------------------------


def test_the_waiting_note_names_the_code_the_reason_and_the_remedy() -> None:
    paused = readiness(read_job({"id": "j", "status": {"code": "Paused"}}))
    assert isinstance(paused, NotReady)
    note = not_ready_note(paused)
    assert note.startswith("job not ready (Paused): ")
    assert "start provisioning" in note


def test_the_gate_caches_per_lock_and_fails_open() -> None:
    class Target:
        def __init__(self) -> None:
            self.reads = 0
            self.error: Exception | None = None

        async def get_job(self) -> dict[str, Any]:
            self.reads += 1
            if self.error is not None:
                raise self.error
            return {"id": "j", "status": {"code": "Paused"}}

    async def main() -> None:
        gate, target = JobGate(), Target()
        lock_a, lock_b = object(), object()
        assert await gate.check("s", target, lock_a) is not None  # type: ignore[arg-type]
        assert await gate.check("s", target, lock_a) is not None  # type: ignore[arg-type]
        assert target.reads == 1
        target.error = ServiceError("down", status=503)
        assert await gate.check("s", target, lock_b) is None  # type: ignore[arg-type]
        assert await gate.check("s", target, None) is None  # type: ignore[arg-type]
        assert target.reads == 3

    asyncio.run(main())


def test_a_stored_wait_for_the_job_round_trips() -> None:
    doc = {
        "runId": "employees-0123",
        "source": "employees",
        "file": "hr.csv",
        "kind": "extract",
        "receivedAt": None,
        "extractAt": None,
        "state": "uploading",
        "timeline": [],
        "batches": [],
        "indexed": 0,
        "waiting": "job not ready (Quarantine): …",
        "waits": 1,
        "waitingUntil": "2026-03-02T07:00:00+00:00",
        "waitingReason": "job_not_ready",
    }
    journal = journal_from_doc(doc)
    assert journal.waiting_reason is WaitingReason.JOB_NOT_READY
    assert journal_to_doc(journal) == doc
    journal.clear_wait()
    assert journal.waiting_until is None


# -- against the emulator, over loopback ----------------------------------------------------


def test_a_paused_emulator_job_gets_no_upload_until_it_is_started(tmp_path: Path) -> None:
    day1 = tmp_path / "hr_20260105.csv"
    generate_extract(day1, 60, seed=5)
    with emu_world(local_store(tmp_path)) as w:
        w.emu.set_job_state("Paused")
        run = w.sync(day1)
        assert w.emu.calls() == []
        assert run.state == "uploading"
        assert run.waiting_reason is WaitingReason.JOB_NOT_READY
        assert run.waiting is not None
        assert "paused" in run.waiting

        async def start() -> None:
            endpoint = ProvisioningEndpoint.parse(w.emu.endpoint_url, allow_loopback=True)
            client = GraphClient(
                endpoint, StaticTokenProvider(w.emu.token), clock=w.clock, allow_loopback=True
            )
            async with client:
                await client.start_job()

        asyncio.run(start())
        [resumed] = asyncio.run(w.engine.resume_waiting())
        w.emu.wait_idle()
        assert resumed.state == "uploaded"
        assert sum(c.operations for c in w.emu.calls() if c.status == 202) == 60
        [done] = w.reconcile()
        assert done.state == "done"
        assert done.outcomes == {"created": 60}


def test_an_on_premises_job_with_its_agent_inactive_gets_no_upload(tmp_path: Path) -> None:
    day1 = tmp_path / "hr_20260105.csv"
    generate_extract(day1, 20, seed=6)
    clock = FakeClock(T0)
    ad = on_premises_job(service_principal_id=SP, agent_active=False)
    with run_emulator(EmulatorConfig(jobs=[ad]), clock=clock) as emu:
        assert emu.job_id.startswith("API2AD.")
        w = EmuWorld(emu, clock, local_store(tmp_path)(clock), sources_config())
        run = w.sync(day1)
        assert emu.calls() == []
        assert run.waiting_reason is WaitingReason.JOB_NOT_READY
        assert run.waiting is not None
        assert "agent" in run.waiting


def test_the_cli_summary_shows_why_the_run_waits_and_how_to_continue() -> None:
    from rich.console import Console

    from connector.cli import render
    from connector.sync.summary import RunSummary

    summary = RunSummary(
        "employees-a",
        "employees",
        "a.csv",
        "uploading",
        waiting="job not ready (Paused): the provisioning job is paused; start provisioning",
        waiting_reason=WaitingReason.JOB_NOT_READY,
    )
    console = Console(width=400, highlight=False)
    with console.capture() as cap:
        render.print_summary(summary, console)
    text = cap.get()
    assert "waiting (job_not_ready): job not ready (Paused)" in text
    assert "connector runs resume employees-a" in text
