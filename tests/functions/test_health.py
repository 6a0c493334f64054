"""The ``/api/health`` document: a dead or failing timer and blocked runs degrade it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from connector.errors import ConnectorError
from connector.sync.summary import PassResult

from .runs import blocked_run

pytestmark = pytest.mark.azurite


# -- a dead or failing timer ---------------------------------------------------------------------


def test_health_is_degraded_when_the_timer_stopped_running(make_world: Any) -> None:
    with make_world() as w:
        code, body = w.health()
        assert code == 503  # no pass recorded yet
        assert body["problems"] == ["no successful reconcile pass recorded yet"]

        w.tick(minutes=15)
        code, body = w.health()
        assert code == 200
        assert body["staleAfterMinutes"] == 45  # 15-min schedule: max(3 × 15, 15 + 30)

        w.clock.advance(44 * 60)
        assert w.health()[0] == 200
        w.clock.advance(2 * 60)  # 46 min without a pass: the timer is dead
        code, body = w.health()
        assert code == 503
        assert body["status"] == "degraded"
        assert "is the timer running and succeeding?" in body["problems"][0]


def test_health_staleness_follows_the_schedule(make_world: Any) -> None:
    with make_world(schedule="0 0 * * * *") as w:  # hourly
        w.tick(minutes=1)
        w.clock.advance(2 * 3600)
        assert w.health()[0] == 200  # two missed hours is not yet three intervals
        w.clock.advance(3600 + 60)
        assert w.health()[0] == 503


def test_health_goes_stale_when_reconcile_keeps_failing(make_world: Any) -> None:
    with make_world() as w:
        w.tick(minutes=15)
        code, body = w.health()
        assert code == 200
        ok_at = body["lastSuccessfulReconcileAt"]
        assert ok_at == body["lastReconcileAt"]

        async def failing() -> PassResult:
            return PassResult(errors={"employees": "StateError: storage refused the read"})

        w.runtime.engine.reconcile_open_runs = failing
        for _ in range(4):  # the timer runs every 15 min, but reconciliation fails
            with pytest.raises(ConnectorError, match="reconcile"):  # the alert fires
                w.tick(minutes=15)
        code, body = w.health()
        assert body["lastReconcileAt"] != ok_at  # passes still happen…
        assert body["lastSuccessfulReconcileAt"] == ok_at  # …none of them succeeded
        assert code == 503
        assert any("last successful reconcile pass" in p for p in body["problems"])


def test_health_goes_stale_when_the_reconcile_step_raises(make_world: Any) -> None:
    with make_world() as w:
        w.tick(minutes=15)
        ok_at = w.health()[1]["lastSuccessfulReconcileAt"]

        async def boom() -> PassResult:
            raise ConnectorError("graph unreachable")

        w.runtime.engine.reconcile_open_runs = boom
        for _ in range(4):
            with pytest.raises(ConnectorError, match="reconcile"):
                w.tick(minutes=15)
        code, body = w.health()
        assert body["lastSuccessfulReconcileAt"] == ok_at
        assert code == 503


# -- blocked runs --------------------------------------------------------------------------------


def test_a_blocked_run_degrades_health_and_a_resume_marker_unblocks_it(
    make_world: Any, tmp_path: Path
) -> None:
    with make_world() as w:
        blocked = blocked_run(w, tmp_path)
        w.tick(minutes=15)
        assert w.runtime.engine.get_run(blocked.run_id).state == "blocked"
        assert next(r for r in w.runs() if r.run_id == blocked.run_id).state == "blocked"
        code, body = w.health()
        assert code == 503
        assert body["sources"]["employees"]["blocked"] == 1
        assert any("blocked runs" in p and "employees" in p for p in body["problems"])

        w.service.get_blob_client("approvals", blocked.run_id).upload_blob(
            b'{"action": "resume", "by": "ops"}'
        )
        w.tick(minutes=15)
        run = next(r for r in w.runs() if r.run_id == blocked.run_id)
        assert run.state in ("uploaded", "reconciling", "done")
        assert f"processed/{blocked.run_id}" in w.names("approvals")
        props = w.service.get_blob_client(
            "approvals", f"processed/{blocked.run_id}"
        ).get_blob_properties()
        assert props.metadata["action"] == "resume"
        assert props.metadata["outcome"] == "resumed"
        w.tick(minutes=15)
        code, body = w.health()
        assert body["sources"]["employees"]["blocked"] == 0
        assert code == 200


# -- a job that would not process uploads ---------------------------------------------------------


def test_health_names_a_job_that_would_not_process_uploads_and_its_remedy(
    make_world: Any,
) -> None:
    with make_world() as w:
        w.emu.set_job_state("Paused")
        w.tick(minutes=15)
        code, body = w.health()
        assert code == 503
        [problem] = body["problems"]
        assert problem.startswith("job not ready for source employees: ")
        assert "paused" in problem
        assert "start provisioning" in problem
        assert body["sources"]["employees"]["job"]["code"] == "Paused"
        w.emu.set_job_state("Active")
        w.tick(minutes=15)
        assert w.health()[0] == 200


def test_job_status_reads_the_job_as_the_engine_does() -> None:
    from connector.functions.jobs import job_status

    started = {"id": "j", "status": {"code": "NotRun"}, "schedule": {"state": "Active"}}
    assert job_status(started)["ok"] is True
    never = {"id": "j", "status": {"code": "NotRun"}, "schedule": {"state": "Disabled"}}
    assert job_status(never)["ok"] is False
    assert "not been started" in job_status(never)["message"]
    quarantined = {
        "id": "j",
        "status": {"code": "Quarantine", "quarantine": {"reason": "TooManyDeletes"}},
    }
    status = job_status(quarantined)
    assert status["ok"] is False
    assert status["reason"] == "TooManyDeletes"
    assert "restart" in status["remedy"]
    assert job_status(None)["ok"] is False
