"""Documented job behaviour: failed payloads in the bucket until restart, the job status
shape, a started NotRun job, and the on-premises AD job (API2AD)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson
from typer.testing import CliRunner

from connector.cli.app import build_app
from connector.emulator import RunningEmulator, load_config, on_premises_job
from connector.emulator.config import JobConfig
from connector.graph.jobs import NotReady, Ready, readiness
from connector.graph.models import SynchronizationJob

from .helpers import auth, bulk, job_url, post, queue_info, record, upload

ROOT = Path(__file__).resolve().parents[2]
PAUSED_JOB_EXAMPLE = Path(__file__).parent / "fixtures" / "synchronization_job_paused_example.json"

# synchronizationStatus / synchronizationTaskExecution / synchronizationQuarantine
# properties as their v1.0 resource pages list them.
STATUS_FIELDS = {
    "code",
    "countSuccessiveCompleteFailures",
    "escrowsPruned",
    "lastExecution",
    "lastSuccessfulExecution",
    "lastSuccessfulExecutionWithExports",
    "progress",
    "quarantine",
    "steadyStateFirstAchievedTime",
    "steadyStateLastAchievedTime",
    "synchronizedEntryCountByType",
    "troubleshootingUrl",
}
EXECUTION_FIELDS = {
    "activityIdentifier",
    "countEntitled",
    "countEntitledForProvisioning",
    "countEscrowed",
    "countEscrowedRaw",
    "countExported",
    "countExports",
    "countImported",
    "countImportedDeltas",
    "countImportedReferenceDeltas",
    "error",
    "state",
    "timeBegan",
    "timeEnded",
}
QUARANTINE_FIELDS = {"currentBegan", "nextAttempt", "reason", "seriesBegan", "seriesCount", "error"}


def _job(emu: RunningEmulator, job_id: str | None = None) -> dict[str, Any]:
    response = httpx.get(job_url(emu, job_id=job_id), headers=auth(emu))
    assert response.status_code == 200
    job: dict[str, Any] = response.json()
    return job


# --- failed payloads stay in the bucket until the job is restarted ------------------


def test_failed_operations_fill_the_bucket_until_restart(make_emulator: Any) -> None:
    emu = make_emulator(bucket_size=3)
    failing = [record(str(i), upn=f"user{i}@not-verified.example") for i in range(3)]
    upload(emu, *failing)
    assert queue_info(emu)["failedOperations"] == 3
    assert emu.queue_length() == 0
    full = post(emu, bulk(record("ok")))
    assert full.status_code == 500
    assert "bucket that stores the ingested data is full" in full.json()["error"]["message"]
    # Start does not clear them; restart (the documented remedy) does.
    assert httpx.post(job_url(emu, "/start"), headers=auth(emu)).status_code == 204
    assert post(emu, bulk(record("ok"))).status_code == 500
    assert httpx.post(job_url(emu, "/restart"), headers=auth(emu)).status_code == 204
    assert queue_info(emu)["failedOperations"] == 0
    upload(emu, record("ok"))
    assert "ok" in emu.users()


# --- job status as the resource pages define it -------------------------------------


def test_job_status_has_the_documented_fields_only(emu: RunningEmulator) -> None:
    upload(emu, record("1"))
    status = _job(emu)["status"]
    assert set(status) == STATUS_FIELDS
    assert set(status["lastExecution"]) == EXECUTION_FIELDS
    assert status["lastExecution"]["countExports"] == 1
    assert status["lastExecution"]["countExported"] == 1
    assert status["lastExecution"]["state"] == "Succeeded"
    assert status["lastSuccessfulExecutionWithExports"]["countExported"] == 1


def test_a_cycle_without_exports_does_not_move_last_execution_with_exports(
    emu: RunningEmulator,
) -> None:
    upload(emu, record("1"))
    with_exports = _job(emu)["status"]["lastSuccessfulExecutionWithExports"]
    upload(emu, record("1"))  # nothing changes: skipped, no export
    status = _job(emu)["status"]
    assert status["lastExecution"]["countExported"] == 0
    assert status["lastSuccessfulExecutionWithExports"] == with_exports


def test_quarantine_shape_and_paused_schedule(emu: RunningEmulator) -> None:
    httpx.post(
        f"{emu.base_url}/_emulator/jobs/{emu.job_id}/state",
        json={"code": "Quarantine", "reason": "EncounteredBaseEscrowThreshold"},
    )
    quarantine = _job(emu)["status"]["quarantine"]
    assert set(quarantine) == QUARANTINE_FIELDS
    assert set(quarantine["error"]) == {"code", "message", "tenantActionable"}
    httpx.post(job_url(emu, "/pause"), headers=auth(emu))
    job = _job(emu)
    assert job["status"]["code"] == "Paused"
    assert job["schedule"]["state"] == "Paused"


def test_not_configured_job_takes_uploads_but_does_not_process_them(emu: RunningEmulator) -> None:
    response = httpx.post(
        f"{emu.base_url}/_emulator/jobs/{emu.job_id}/state", json={"code": "NotConfigured"}
    )
    assert response.status_code == 200
    assert post(emu, bulk(record("1"))).status_code == 202
    emu.wait_idle(5)
    assert emu.users() == {}
    assert _job(emu)["schedule"]["state"] == "Disabled"


# --- on-premises AD target -----------------------------------------------------------


def _with_ad_job(make_emulator: Any, **job: Any) -> tuple[RunningEmulator, str]:
    entra = JobConfig()
    ad = on_premises_job(service_principal_id=entra.service_principal_id, **job)
    emu = make_emulator(jobs=[entra, ad])
    return emu, ad.job_id


def _upload_to(emu: RunningEmulator, job_id: str, *records: dict[str, Any]) -> None:
    url = job_url(emu, "/bulkUpload", job_id=job_id)
    assert post(emu, bulk(*records), url=url).status_code == 202
    emu.wait_idle(5)


def test_ad_job_id_template_and_schema(make_emulator: Any) -> None:
    emu, ad = _with_ad_job(make_emulator)
    assert ad.startswith("API2AD.")
    assert len(ad.split(".")[1]) == 32
    assert _job(emu, ad)["templateId"] == "API2AD"
    schema = httpx.get(job_url(emu, "/schema", job_id=ad), headers=auth(emu)).json()
    assert [d["name"] for d in schema["directories"]] == ["API", "Active Directory"]
    mappings = schema["synchronizationRules"][0]["objectMappings"][0]["attributeMappings"]
    targets = {m["source"]["name"]: m["targetAttributeName"] for m in mappings}
    assert targets["active"] == "accountDisabled"
    assert targets["externalId"] == "employeeID"


def test_ad_job_with_an_inactive_agent_queues_and_reports_the_agent(make_emulator: Any) -> None:
    emu, ad = _with_ad_job(make_emulator, agent_active=False)
    _upload_to(emu, ad, record("1"))
    assert emu.users() == {}
    assert queue_info(emu, ad)["queuedOperations"] == 1
    status = _job(emu, ad)["status"]
    assert status["code"] == "Active"
    assert status["lastExecution"]["state"] == "Failed"
    assert status["lastExecution"]["error"]["code"] == "HybridIdentityServiceNoActiveAgents"
    assert set(status["lastExecution"]) == EXECUTION_FIELDS
    response = httpx.post(f"{emu.base_url}/_emulator/jobs/{ad}/agent", json={"active": True})
    assert response.status_code == 200
    emu.wait_idle(5)
    assert set(emu.users()) == {"1"}
    assert _job(emu, ad)["status"]["lastExecution"]["error"] is None


def test_ad_manager_resolves_only_against_users_the_job_processed(make_emulator: Any) -> None:
    emu, ad = _with_ad_job(make_emulator)
    upload(emu, record("boss"))  # provisioned by the Entra job, not the AD job
    _upload_to(emu, ad, record("1", manager="boss"))
    assert emu.users()["1"]["manager"] is None
    assert emu.users()["1"]["pendingManager"] == "boss"
    _upload_to(emu, ad, record("boss"))
    _upload_to(emu, ad, record("1", manager="boss"))
    assert emu.users()["1"]["manager"] == "boss"


def test_ad_job_update_without_active_logs_account_disabled(make_emulator: Any) -> None:
    emu, ad = _with_ad_job(make_emulator)
    _upload_to(emu, ad, record("1", active=True))
    _upload_to(emu, ad, record("1", active=None, title="Clerk"))
    assert emu.users()["1"]["accountEnabled"] is False
    last = [e for e in emu.logs() if e["jobId"] == ad][-1]
    assert last["provisioningAction"] == "disable"
    changes = {p["displayName"]: (p["oldValue"], p["newValue"]) for p in last["modifiedProperties"]}
    assert changes["accountDisabled"] == ("False", "True")


def test_ad_job_writes_account_disabled(make_emulator: Any) -> None:
    emu, ad = _with_ad_job(make_emulator)
    _upload_to(emu, ad, record("1", active=False))
    entries = [e for e in emu.logs() if e["jobId"] == ad]
    changed = {p["displayName"]: p["newValue"] for p in entries[0]["modifiedProperties"]}
    assert changed["accountDisabled"] == "True"
    assert "accountEnabled" not in changed


def test_on_premises_sample_mapping_validates_and_provisions_into_the_ad_job(
    make_emulator: Any, tmp_path: Path
) -> None:
    mapping = ROOT / "samples" / "mappings" / "on-premises-ad.yaml"
    extract = ROOT / "samples" / "hr-extract.csv"
    runner = CliRunner()
    checked = runner.invoke(build_app(), ["validate", "--mapping", str(mapping), str(extract)])
    assert checked.exit_code == 0, checked.output
    built = runner.invoke(
        build_app(), ["preview", "--mapping", str(mapping), "--out", str(tmp_path), str(extract)]
    )
    assert built.exit_code == 0, built.output
    emu, ad = _with_ad_job(make_emulator)
    url = job_url(emu, "/bulkUpload", job_id=ad)
    sent: set[str] = set()
    for payload in sorted(tmp_path.glob("*.json")):
        body = orjson.loads(payload.read_bytes())
        sent |= {op["data"]["externalId"] for op in body["Operations"]}
        assert post(emu, body, url=url).status_code == 202
    emu.wait_idle(10)
    assert sent
    assert set(emu.users()) == sent
    ad_entries = [e for e in emu.logs() if e["jobId"] == ad]
    names = {p["displayName"] for e in ad_entries for p in e["modifiedProperties"]}
    assert "accountDisabled" in names


def test_the_documented_config_file_adds_an_ad_job(tmp_path: Path) -> None:
    path = tmp_path / "emulator.yaml"
    path.write_text(
        "jobs:\n"
        "  - {}\n"
        "  - job_id: API2AD.b12381d28eaf43bcb392923d3a30fc6e.77e28e0f-0000-4000-8000-000000000001\n"
        "    display_name: API-driven provisioning to on-premises Active Directory\n"
        "    agent_active: false\n",
        encoding="utf-8",
    )
    config = load_config(path)
    ad = config.jobs[1]
    assert ad.job_id.startswith("API2AD.")
    assert ad.agent_active is False


def _shape(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    return None


def test_emulator_job_has_the_shape_of_the_documented_get_job_example(
    emu: RunningEmulator,
) -> None:
    example = orjson.loads(PAUSED_JOB_EXAMPLE.read_bytes())
    httpx.post(
        f"{emu.base_url}/_emulator/jobs/{emu.job_id}/state",
        json={"code": "Quarantine", "reason": "EncounteredBaseEscrowThreshold"},
    )
    httpx.post(job_url(emu, "/pause"), headers=auth(emu))
    emulated = _job(emu)
    assert set(emulated) == set(example)
    assert _shape(emulated["schedule"]) == _shape(example["schedule"])
    assert set(emulated["status"]) == set(example["status"]) == STATUS_FIELDS
    assert emulated["status"]["code"] == example["status"]["code"] == "Paused"


def test_the_documented_example_with_blank_quarantine_times_is_read_as_paused() -> None:
    example = orjson.loads(PAUSED_JOB_EXAMPLE.read_bytes())
    job = SynchronizationJob.model_validate(example)
    assert job.status is not None
    assert job.status.quarantine is not None
    assert job.status.quarantine.current_began is None
    result = readiness(job)
    assert isinstance(result, NotReady)
    assert result.code == "Paused"


def test_a_started_not_run_job_processes_and_becomes_active_after_its_first_cycle(
    emu: RunningEmulator,
) -> None:
    httpx.post(f"{emu.base_url}/_emulator/jobs/{emu.job_id}/state", json={"code": "NotRun"})
    assert post(emu, bulk(record("1"))).status_code == 202
    emu.wait_idle(5)
    assert emu.users() == {}
    assert _job(emu)["schedule"]["state"] == "Disabled"
    assert httpx.post(job_url(emu, "/start"), headers=auth(emu)).status_code == 204
    emu.wait_idle(5)
    assert set(emu.users()) == {"1"}
    job = _job(emu)
    assert job["status"]["code"] == "Active"
    assert job["schedule"]["state"] == "Active"


def test_a_started_not_run_job_without_work_stays_not_run_and_is_ready(
    emu: RunningEmulator,
) -> None:
    httpx.post(f"{emu.base_url}/_emulator/jobs/{emu.job_id}/state", json={"code": "NotRun"})
    httpx.post(job_url(emu, "/start"), headers=auth(emu))
    job = _job(emu)
    assert job["status"]["code"] == "NotRun"
    assert job["schedule"]["state"] == "Active"
    result = readiness(SynchronizationJob.model_validate(job))
    assert isinstance(result, Ready)
    assert result.code == "NotRun"
