"""The timer pass's job check and ``/api/health``: every job state read as the engine reads
it, in the status shape stored before (``ok``, ``code``, ``reason``, ``message``, and for
a job that is not ready ``remedy`` and ``until``)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from connector.clock import FakeClock
from connector.functions.health import health_document
from connector.functions.jobs import check_jobs, job_status
from connector.functions.telemetry import Telemetry
from tests.graph.job_cases import CASES, NEXT_ATTEMPT, JobCase
from tests.sync.fakes import config

READY_KEYS = {"ok", "code", "reason", "message"}
NOT_READY_KEYS = READY_KEYS | {"remedy", "until"}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_job_status_says_whether_uploads_would_be_processed_and_why(case: JobCase) -> None:
    status = job_status(case.body)
    assert status["ok"] is case.ready
    assert status["code"] == case.code
    for phrase in case.says:
        assert phrase in status["message"], (phrase, status["message"])
    if case.ready:
        assert set(status) == READY_KEYS
        return
    assert set(status) == NOT_READY_KEYS
    assert case.remedy in status["remedy"]
    assert status["until"] == (case.until.isoformat() if case.until is not None else None)
    quarantined = case.code == "Quarantine"
    assert status["reason"] == ("EncounteredBaseEscrowThreshold" if quarantined else None)


class Alerts(Telemetry):
    def __init__(self) -> None:
        super().__init__()
        self.quarantined: list[tuple[str, str]] = []

    def job_quarantined(self, *, source: str, reason_code: str) -> None:
        self.quarantined.append((source, reason_code))


class Target:
    def __init__(self, body: dict[str, Any] | None) -> None:
        self.body = body
        self.closed = False

    async def get_job(self) -> dict[str, Any] | None:
        return self.body

    async def aclose(self) -> None:
        self.closed = True


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_the_timer_pass_records_each_jobs_state_and_alerts_on_quarantine(case: JobCase) -> None:
    alerts, target = Alerts(), Target(case.body)
    jobs = asyncio.run(check_jobs(config(), lambda src: target, alerts))  # type: ignore[arg-type,return-value]
    assert jobs == {"employees": job_status(case.body)}
    assert target.closed
    expected = (
        [("employees", "EncounteredBaseEscrowThreshold")] if case.code == "Quarantine" else []
    )
    assert alerts.quarantined == expected


class Zone:
    """The drop zone as health reads it: reachable, with the last pass's status."""

    def __init__(self, status: dict[str, Any]) -> None:
        self.status = status

    def probe(self) -> bool:
        return True

    def read_json(self, container: str, blob_name: str) -> dict[str, Any]:
        return self.status


def health(jobs: dict[str, Any]) -> dict[str, Any]:
    clock = FakeClock(NEXT_ATTEMPT - timedelta(hours=1))
    status = {"jobs": jobs, "lastSuccessfulReconcileAt": clock.now().isoformat()}
    return health_document(Zone(status), config(), clock, timedelta(minutes=45))  # type: ignore[arg-type]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_health_names_a_job_that_is_not_ready_with_reason_remedy_and_next_attempt(
    case: JobCase,
) -> None:
    body = health({"employees": job_status(case.body)})
    assert body["sources"]["employees"]["job"] == job_status(case.body)
    if case.ready:
        assert body["status"] == "ok"
        assert body["problems"] == []
        return
    assert body["status"] == "degraded"
    [problem] = body["problems"]
    assert problem.startswith("job not ready for source employees: ")
    for phrase in case.says:
        assert phrase in problem
    assert case.remedy in problem
    if case.until is not None:
        assert f"the service's next attempt: {case.until.isoformat()}" in problem


def test_health_reads_a_job_status_stored_without_remedy_or_until() -> None:
    old = {"ok": False, "code": "Paused", "reason": None, "message": "the job is paused"}
    body = health({"employees": old})
    assert body["problems"] == ["job not ready for source employees: the job is paused"]
    assert body["sources"]["employees"]["job"] == old
