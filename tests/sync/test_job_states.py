"""Every job state, as the engine reads it before sending and before reconciling: one
reading (``connector.graph.jobs.readiness``), the same words in the run, its report and
its log line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from connector.errors import ServiceError
from connector.sync.waiting import WaitingReason
from tests.graph.job_cases import BY_NAME, CASES, JobCase
from tests.sync.fakes import FakeTarget, people
from tests.sync.test_references import World as ReferenceWorld
from tests.sync.test_references import person
from tests.sync.world import World

PRESENT = [case for case in CASES if case.body is not None]


def serve_job(monkeypatch: pytest.MonkeyPatch, body: dict[str, Any] | None) -> None:
    async def get_job(self: FakeTarget) -> dict[str, Any] | None:
        return body

    monkeypatch.setattr(FakeTarget, "get_job", get_job)


def said(case: JobCase, text: str) -> None:
    for phrase in case.says:
        assert phrase in text, (phrase, text)


# -- before sending ------------------------------------------------------------------------------


@pytest.mark.parametrize("case", PRESENT, ids=lambda c: c.name)
def test_a_run_is_sent_only_to_a_job_that_would_process_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: JobCase
) -> None:
    w = World(tmp_path)
    serve_job(monkeypatch, case.body)
    run = w.sync("hr_20260302.csv", people(10))
    if case.ready:
        assert run.state == "uploaded"
        assert run.waiting is None
        assert w.service.calls != []
        return
    assert w.service.calls == []
    assert run.state == "uploading"
    assert run.waiting_reason is WaitingReason.JOB_NOT_READY
    assert run.waiting is not None
    assert run.waiting.startswith(f"job not ready ({case.code}): ")
    said(case, run.waiting)
    assert case.remedy in run.waiting
    assert w.engine.get_run(run.run_id).waiting_until == case.until


def test_a_job_that_is_not_found_is_left_to_the_upload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sender has no opinion on a 404 of the job read: the upload to the same job
    reports it (the in-memory service accepts it, so the run is sent)."""
    w = World(tmp_path)
    serve_job(monkeypatch, None)
    run = w.sync("hr_20260302.csv", people(10))
    assert run.state == "uploaded"
    assert w.service.calls != []


# -- before reconciling --------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_reconciling_names_a_job_that_would_not_process_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: JobCase
) -> None:
    w = World(tmp_path)
    sent = w.sync("hr_20260302.csv", people(5))
    assert sent.state == "uploaded"
    serve_job(monkeypatch, case.body)
    [rec] = w.reconcile()
    assert rec.state == "done"  # the logs are read whatever the job's state
    report = json.loads(w.store.read_artifact(f"employees/{rec.run_id}/report.json"))
    assert report["jobHealth"] == rec.job_health
    if case.ready:
        assert rec.job_health is None
        return
    assert rec.job_health is not None
    assert rec.job_health.startswith(f"job not ready ({case.code}): ")
    said(case, rec.job_health)
    assert case.remedy in rec.job_health
    if case.until is not None:
        assert case.until.isoformat() in rec.job_health


class JobSays:
    """A target whose job read answers ``body``; everything else goes to ``inner``."""

    def __init__(self, inner: Any, body: dict[str, Any] | None) -> None:
        self.inner = inner
        self.body = body

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def get_job(self) -> dict[str, Any] | None:
        return self.body


def test_reference_resends_wait_for_a_job_that_would_not_process_them(tmp_path: Path) -> None:
    """A skipped manager reference is re-sent only to a job that processes uploads: an
    unknown status code (not documented as running) holds the re-send for a later pass."""
    w = ReferenceWorld(tmp_path)
    day1 = [person("R"), person("B", "NEWBOSS")]
    w.sync("hr_20260302.csv", day1)
    w.reconcile()
    w.clock.advance(86400)
    second = w.sync("hr_20260303.csv", [*day1, person("NEWBOSS", "R")])
    targets = w.engine.targets
    w.engine.targets = lambda src: JobSays(targets(src), BY_NAME["unknown_code"].body)
    held = w.reconcile()
    assert [s.run_id for s in held] == [second.run_id]  # with an Active job: + employees-refs1
    assert held[0].job_health is not None
    assert not any(r.run_id.startswith("employees-refs") for r in w.engine.list_runs())


def test_a_job_read_that_fails_does_not_stop_reconciliation(tmp_path: Path) -> None:
    """No opinion on a job that cannot be read (an outage here; a 403 in
    test_job_unreadable): the logs are read and nothing is said about the job."""
    w = World(tmp_path)
    sent = w.sync("hr_20260302.csv", people(5))
    w.service.job_error = ServiceError("503: the service is unavailable", status=503)
    [rec] = w.reconcile()
    assert rec.run_id == sent.run_id
    assert rec.state == "done"
    assert rec.job_health is None
