"""Health tells a failing timer and blocked runs apart from a healthy app; blocked runs are
resumed with a ``{"action": "resume"}`` marker; discard markers cannot race an approval;
log lines carry no email/UPN (end to end on Azurite and the emulator)."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from connector.errors import ConnectorError, PermissionDeniedError, QuotaExhaustedError
from connector.functions.approvals import Approvals
from connector.functions.dropzone import ApprovalMarker, MarkerAction
from connector.pipeline import PassResult

from .test_runtime_pass import _held_run

pytestmark = pytest.mark.azurite


class _Refusing:
    """A target whose sends fail (default: 403, the app lost its upload permission)."""

    def __init__(self, inner: Any, error: Exception | None = None) -> None:
        self._inner = inner
        self._error = error or PermissionDeniedError("403: lacks the upload role", status=403)

    @property
    def job_id(self) -> str | None:
        return self._inner.job_id  # type: ignore[no-any-return]

    async def send(self, payload: Any) -> Any:
        raise self._error

    def iter_logs(self, since: Any) -> Any:
        return self._inner.iter_logs(since)

    async def get_job(self) -> Any:
        return await self._inner.get_job()

    async def aclose(self) -> None:
        await self._inner.aclose()


def _blocked_run(w: Any, tmp_path: Path) -> Any:
    from connector.sample import generate_extract

    engine = w.runtime.engine
    real = engine.targets
    engine.targets = lambda src: _Refusing(real(src))
    day1 = tmp_path / "hr_1.csv"
    generate_extract(day1, 60, seed=3)
    w.drop_and_deliver("employees/hr_1.csv", day1.read_bytes())
    engine.targets = real
    return next(r for r in w.runs() if r.state == "blocked")


def test_a_blocked_run_degrades_health_and_a_resume_marker_unblocks_it(
    make_world: Any, tmp_path: Path
) -> None:
    with make_world() as w:
        blocked = _blocked_run(w, tmp_path)
        w.tick(minutes=15)
        assert w.runtime.engine.get_run(blocked.run_id)["state"] == "blocked"
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


def test_a_resume_marker_for_a_run_that_is_not_blocked_does_nothing(
    make_world: Any, tmp_path: Path
) -> None:
    with make_world() as w:
        held = _held_run(w, tmp_path)
        calls = len(w.bulk_calls())
        w.service.get_blob_client("approvals", held.run_id).upload_blob(b'{"action": "resume"}')
        w.tick(minutes=15)
        assert next(r for r in w.runs() if r.run_id == held.run_id).state == "held"
        assert len(w.bulk_calls()) == calls
        props = w.service.get_blob_client(
            "approvals", f"processed/{held.run_id}"
        ).get_blob_properties()
        assert props.metadata["outcome"] == "not_blocked"


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


def test_a_discard_marker_does_not_stop_a_run_approved_meanwhile(
    make_world: Any, tmp_path: Path
) -> None:
    with make_world() as w:
        held = _held_run(w, tmp_path)
        engine = w.runtime.engine
        stale = dict(engine.get_run(held.run_id))  # what the marker handler reads first…
        real = engine.targets
        spent = QuotaExhaustedError("daily call budget spent (test)")
        engine.targets = lambda src: _Refusing(real(src), spent)
        approved = asyncio.run(engine.approve(held.run_id, by="cli"))  # …approved in between
        engine.targets = real
        assert approved.state == "uploading"  # and waiting for the quota
        real_get = engine.get_run
        engine.get_run = lambda run_id: stale if run_id == held.run_id else real_get(run_id)
        marker = ApprovalMarker(
            name=f"{held.run_id}.discard", etag="0x1", data=b'{"reason": "wrong"}'
        )
        assert marker.action is MarkerAction.DISCARD
        out = Approvals(w.runtime.zone, engine, w.runtime.telemetry).discard(marker)
        engine.get_run = real_get
        assert out.outcome == "not_discardable"
        assert engine.get_run(held.run_id)["state"] == "uploading"
        assert "discardedReason" not in engine.get_run(held.run_id)
        w.tick(minutes=15)  # the timer continues the approved run
        assert engine.get_run(held.run_id)["state"] in ("uploaded", "reconciling", "done")


def test_a_discard_marker_records_who_and_why(make_world: Any, tmp_path: Path) -> None:
    with make_world() as w:
        held = _held_run(w, tmp_path)
        w.service.get_blob_client("approvals", f"{held.run_id}.discard").upload_blob(
            b'{"by": "ops", "reason": "wrong file"}'
        )
        w.tick(minutes=15)
        doc = w.runtime.engine.get_run(held.run_id)
        assert doc["state"] == "discarded"
        assert doc["discardedReason"] == "discarded by ops (reason: wrong file)"


def test_a_failing_step_logs_no_email_or_upn(
    make_world: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with make_world() as w:

        async def boom() -> PassResult:
            raise RuntimeError("userPrincipalName jane.doe@contoso.com is already in use")

        w.runtime.engine.resume_waiting = boom
        with pytest.raises(ConnectorError) as raised:  # the host logs this and its causes
            w.tick(minutes=15)
        chain = [raised.value, raised.value.__cause__]
        text = "\n".join(
            r.getMessage() + (str(r.exc_info[1]) if r.exc_info else "") for r in caplog.records
        )
        text += "\n".join(str(e) for e in chain if e is not None)
        assert "resume failed" in text
        assert "jane.doe@contoso.com" not in text
        assert "RuntimeError" in text


def test_a_file_equal_to_an_older_one_is_applied_not_archived_as_a_duplicate(
    make_world: Any, tmp_path: Path
) -> None:
    from connector.sample import generate_extract

    with make_world() as w:
        day1 = tmp_path / "hr_1.csv"
        generate_extract(day1, 60, seed=5)
        lines = day1.read_text(encoding="utf-8").splitlines(keepends=True)
        w.drop_and_deliver("employees/hr_1.csv", day1.read_bytes())
        w.tick(minutes=15)
        w.clock.advance(86400)
        # A blob's extract time is its creation time, which Azurite stamps to the second:
        # each day's file must be created in a later second to be the newer extract.
        time.sleep(1.1)
        w.drop_and_deliver("employees/hr_2.csv", "".join(lines[:-1]).encode())  # one leaver
        w.tick(minutes=15)
        w.clock.advance(86400)
        calls = len(w.bulk_calls())
        time.sleep(1.1)
        w.drop_and_deliver("employees/hr_3.csv", day1.read_bytes())  # back: day 1's bytes
        runs = w.runs()
        assert len(runs) == 3
        third = next(r for r in runs if r.file_name == "employees/hr_3.csv")
        assert third.state in ("uploaded", "reconciling", "done")
        assert third.planned.get("movers") == 1  # the leaver is enabled again
        assert len(w.bulk_calls()) == calls + 1


def test_the_pass_line_names_sources_blocked_by_a_run() -> None:
    from connector.functions.outcomes import PassOutcome

    out = PassOutcome(blocked={"employees": "run employees-1 is blocked"})
    assert out.line().endswith("blocked=employees")
    assert "blocked" not in PassOutcome().line()
