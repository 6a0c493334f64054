"""The introspection API (``/_emulator/...``): directory, queue, calls, time, reset, and
forced job states (quarantine with a documented reason)."""

from __future__ import annotations

import httpx
import pytest

from connector.emulator import RunningEmulator

from .helpers import auth, bulk, job_status, job_url, post, record, upload


def test_quarantine_via_introspection_shows_in_status_and_stops_processing(
    emu: RunningEmulator,
) -> None:
    response = httpx.post(
        f"{emu.base_url}/_emulator/jobs/{emu.job_id}/state",
        json={"code": "Quarantine", "reason": "EncounteredQuarantineException"},
    )
    assert response.status_code == 200
    status = job_status(emu)
    assert status["code"] == "Quarantine"
    quarantine = status["quarantine"]
    assert isinstance(quarantine, dict)
    assert quarantine["reason"] == "EncounteredQuarantineException"
    assert set(quarantine) >= {"currentBegan", "nextAttempt", "seriesBegan", "seriesCount", "error"}
    assert post(emu, bulk(record("1"))).status_code == 202
    emu.wait_idle(5)
    assert emu.users() == {}
    # Start clears quarantine (documented) and the bucket is then processed.
    httpx.post(job_url(emu, "/start"), headers=auth(emu))
    emu.wait_idle(5)
    assert job_status(emu)["quarantine"] is None
    assert set(emu.users()) == {"1"}


@pytest.mark.parametrize(
    "body", [{"code": "Running"}, {"code": "Quarantine", "reason": "BecauseISaidSo"}]
)
def test_introspection_rejects_unknown_states(emu: RunningEmulator, body: dict[str, str]) -> None:
    response = httpx.post(f"{emu.base_url}/_emulator/jobs/{emu.job_id}/state", json=body)
    assert response.status_code == 400


def test_introspection_endpoints(emu: RunningEmulator) -> None:
    upload(emu, record("1"))
    users = httpx.get(f"{emu.base_url}/_emulator/users").json()
    assert users["count"] == 1
    assert users["value"][0]["externalId"] == "1"
    assert httpx.get(f"{emu.base_url}/_emulator/users/1").json()["accountEnabled"] is True
    assert httpx.get(f"{emu.base_url}/_emulator/users/404").status_code == 404
    queue = httpx.get(f"{emu.base_url}/_emulator/queue").json()
    assert queue["queuedOperations"] == 0
    assert queue["jobs"][emu.job_id]["queuedUploads"] == 0
    calls = httpx.get(f"{emu.base_url}/_emulator/calls").json()["value"]
    assert [c["status"] for c in calls] == [202]
    before = httpx.get(f"{emu.base_url}/_emulator/time").json()
    after = httpx.post(f"{emu.base_url}/_emulator/time", json={"advanceSeconds": 90}).json()
    assert after["offsetSeconds"] == before["offsetSeconds"] + 90
    jobs = httpx.get(f"{emu.base_url}/_emulator/jobs").json()["value"]
    assert jobs[0]["servicePrincipalId"] == emu.service_principal_id
    assert httpx.post(f"{emu.base_url}/_emulator/reset").status_code == 204
    assert httpx.get(f"{emu.base_url}/_emulator/users").json()["count"] == 0
    assert httpx.get(f"{emu.base_url}/_emulator/time").json()["offsetSeconds"] == 0
