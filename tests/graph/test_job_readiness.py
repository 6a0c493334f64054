"""readiness(): every documented status code, NotRun by schedule, agent errors, a missing
job; read_job(): the job as a target returns it, typed at the boundary."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from connector.clock import FakeClock
from connector.emulator import EmulatorConfig, JobConfig, on_premises_job, run_emulator
from connector.graph.auth import StaticTokenProvider
from connector.graph.client import GraphClient
from connector.graph.endpoint import ProvisioningEndpoint
from connector.graph.jobs import JOB_NOT_FOUND, NotReady, Ready, read_job, readiness
from connector.graph.models import SynchronizationJob
from tests.graph.job_cases import CASES, JobCase


def job(code: str | None, *, schedule: str | None = None, **status: Any) -> SynchronizationJob:
    body: dict[str, Any] = {"id": "API2AAD.x.y"}
    if code is not None:
        body["status"] = {"code": code, **status}
    if schedule is not None:
        body["schedule"] = {"expiration": None, "interval": "PT40M", "state": schedule}
    return SynchronizationJob.model_validate(body)


def test_active_is_ready() -> None:
    assert readiness(job("Active", schedule="Active")) == Ready("Active")


def test_paused_waits_and_says_so() -> None:
    result = readiness(job("Paused", schedule="Disabled"))
    assert isinstance(result, NotReady)
    assert result.code == "Paused"
    assert "paused" in result.reason
    assert "start" in result.remedy


def test_quarantine_waits_with_reason_and_next_attempt() -> None:
    result = readiness(
        job(
            "Quarantine",
            quarantine={
                "reason": "EncounteredBaseEscrowThreshold",
                "nextAttempt": "2026-12-05T10:00:00Z",
                "error": {"code": "SystemForCrossDomainIdentityManagementBadResponse"},
            },
        )
    )
    assert isinstance(result, NotReady)
    assert "EncounteredBaseEscrowThreshold" in result.reason
    assert "SystemForCrossDomainIdentityManagementBadResponse" in result.reason
    assert result.until is not None
    assert result.until.hour == 10
    assert "restart" in result.remedy
    assert "40 minutes" in result.remedy


def test_not_configured_waits() -> None:
    result = readiness(job("NotConfigured"))
    assert isinstance(result, NotReady)
    assert "not configured" in result.reason


def test_not_run_started_is_ready_with_note() -> None:
    result = readiness(job("NotRun", schedule="Active"))
    assert isinstance(result, Ready)
    assert result.note is not None
    assert "first cycle" in result.note


@pytest.mark.parametrize("schedule", ["Disabled", "Paused", None])
def test_not_run_not_started_waits(schedule: str | None) -> None:
    result = readiness(job("NotRun", schedule=schedule))
    assert isinstance(result, NotReady)
    assert "not been started" in result.reason


def test_unknown_code_and_missing_status_wait() -> None:
    future = readiness(job("unknownFutureValue", schedule="Active"))
    assert isinstance(future, NotReady)
    assert "not documented" in future.reason
    assert isinstance(readiness(job(None)), NotReady)


def test_inactive_agent_on_an_active_job_waits() -> None:
    result = readiness(
        job(
            "Active",
            schedule="Active",
            lastExecution={
                "state": "Failed",
                "error": {"code": "HybridIdentityServiceNoActiveAgents", "message": "x"},
            },
        )
    )
    assert isinstance(result, NotReady)
    assert "agent" in result.reason
    assert "restart" in result.remedy


def test_other_last_errors_do_not_block() -> None:
    result = readiness(
        job("Active", lastExecution={"state": "Failed", "error": {"code": "SomethingElse"}})
    )
    assert result == Ready("Active")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_every_job_state_reads_as_its_case_says(case: JobCase) -> None:
    result = readiness(read_job(case.body))
    assert isinstance(result, Ready) is case.ready
    assert result.code == case.code
    text = result.note or "" if isinstance(result, Ready) else result.reason
    for phrase in case.says:
        assert phrase in text, (phrase, text)
    if isinstance(result, NotReady):
        assert case.remedy
        assert case.remedy in result.remedy
        assert result.until == case.until


def test_a_missing_job_is_not_ready_and_says_where_to_look() -> None:
    assert readiness(None) is JOB_NOT_FOUND
    assert "not found" in JOB_NOT_FOUND.reason


def test_quarantine_error_message_is_kept_on_one_bounded_line() -> None:
    result = readiness(
        job("Quarantine", quarantine={"reason": "Unknown", "error": {"message": "x\n" * 400}})
    )
    assert isinstance(result, NotReady)
    assert "\n" not in result.reason
    assert len(result.reason) < 400


def test_read_job_types_models_and_graph_shaped_dicts() -> None:
    model = job("Paused")
    assert read_job(model) is model
    assert read_job(None) is None
    parsed = read_job({"id": "j", "status": {"code": "Paused"}})
    assert isinstance(parsed, SynchronizationJob)
    assert parsed.code == "Paused"
    with pytest.raises(ValueError, match="expected a synchronizationJob, got list"):
        read_job(["not", "a", "job"])
    with pytest.raises(ValueError, match="id"):
        read_job({"status": {"code": "Active"}})  # no id: not a job


def test_readiness_of_the_emulators_jobs_over_loopback() -> None:
    entra = JobConfig()
    ad = on_premises_job(service_principal_id=entra.service_principal_id, agent_active=False)
    clock = FakeClock()
    with run_emulator(EmulatorConfig(jobs=[entra, ad]), clock=clock) as emu:

        async def probe(job_id: str) -> Ready | NotReady:
            url = emu.endpoint_url.replace(emu.job_id, job_id)
            endpoint = ProvisioningEndpoint.parse(url, allow_loopback=True)
            client = GraphClient(
                endpoint, StaticTokenProvider(emu.token), clock=clock, allow_loopback=True
            )
            async with client:
                return readiness(await client.get_job())

        def state(code: str) -> None:
            url = f"{emu.base_url}/_emulator/jobs/{emu.job_id}/state"
            assert httpx.post(url, json={"code": code}).status_code == 200

        assert asyncio.run(probe(emu.job_id)) == Ready("Active")
        for code in ("Paused", "Quarantine", "NotRun", "NotConfigured"):  # NotRun: not started
            state(code)
            result = asyncio.run(probe(emu.job_id))
            assert isinstance(result, NotReady), code
            assert result.code == code
        agent = asyncio.run(probe(ad.job_id))
        assert isinstance(agent, NotReady)
        assert "agent" in agent.reason
