"""The functions called directly, against Azurite and the emulator over loopback.

Each test builds the app the way the host does (settings from the environment), with a
FakeClock shared by the engine and the emulator, then calls the decorated functions
with the same objects the host passes: a ``BlobClient``, ``TimerRequest``, ``HttpRequest``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from azure.functions import HttpRequest
from azure.functions.timer import TimerRequest

import function_app
from connector.functions import runtime as runtime_module
from connector.functions.settings import APP_SETTING_NAMES
from connector.sample import churn_extract, generate_extract
from tests.sync.fakes import Crash, CrashAfter

from .conftest import extract_bytes as _extract
from .conftest import trigger_blob

pytestmark = pytest.mark.azurite

# -- the happy path ----------------------------------------------------------------------


def test_drop_plan_upload_archive_then_reconcile_writes_reports(
    make_world: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = _extract(tmp_path, 120, seed=1)
    caplog.set_level("INFO")
    with make_world() as w:
        w.drop_and_deliver("employees/hr_20260105.csv", data)

        [run] = w.runs()
        assert run.state == "uploaded"
        assert run.planned["joiners"] == 120
        assert len(w.emu.users()) == 120
        assert w.names("incoming") == set()
        [archived] = w.names("archive")
        day = datetime.now(UTC)
        assert archived.startswith(f"employees/{day:%Y}/")
        assert archived.endswith("/hr_20260105.csv")
        assert w.read("archive", archived) == data
        outcome = [r.getMessage() for r in caplog.records if "ingest_extract:" in r.getMessage()]
        assert len(outcome) == 1
        assert f"run={run.run_id}" in outcome[0]
        assert "state=uploaded" in outcome[0]
        assert "@" not in " ".join(r.getMessage() for r in caplog.records)  # no e-mail addresses
        events = {
            r.__dict__["connector.event"]: r.__dict__
            for r in caplog.records
            if r.name == "connector.telemetry"
        }
        assert events["run_planned"]["connector.joiners"] == 120
        assert events["records_sent"]["connector.count"] == 120

        w.tick(minutes=15)  # past the emulator's 2-minute log delay
        [done] = w.runs()
        assert done.state == "done"
        # Every create resolves its manager: the engine sends managers before their reports
        # and waits for a level's requests to be acknowledged before sending the next level,
        # so requests in flight together can no longer leave a report "skipped" (unresolved
        # manager) depending on which request the service took first.
        assert done.outcomes == {"created": 120}
        assert not [ext for ext, u in w.emu.users().items() if u["pendingManager"]]
        reports = {n for n in w.names("reports") if n.startswith(f"employees/{run.run_id}/")}
        assert reports >= {
            f"employees/{run.run_id}/report.html",
            f"employees/{run.run_id}/report.json",
            f"employees/{run.run_id}/failures.csv",
        }
        status = orjson.loads(w.read("reports", "_connector/status.json"))
        assert status["reconciled"] == 1
        assert status["jobs"]["employees"]["ok"] is True

        code, body = w.health()
        assert code == 200
        assert body["status"] == "ok"
        assert body["storage"]["reachable"] is True
        assert body["lastReconcileAt"] == status["lastReconcileAt"]
        assert body["sources"]["employees"]["openRuns"] == 0


# -- files that cannot be applied ----------------------------------------------------------


def test_unknown_source_goes_to_quarantine_with_an_error_file(
    make_world: Any, tmp_path: Path
) -> None:
    data = _extract(tmp_path, 5, seed=2)
    with make_world() as w:
        w.drop_and_deliver("vendors/list.csv", data)
        assert w.names("quarantine") == {"vendors/list.csv", "vendors/list.csv.error.json"}
        assert w.read("quarantine", "vendors/list.csv") == data
        err = orjson.loads(w.read("quarantine", "vendors/list.csv.error.json"))
        assert "no source matches 'vendors/list.csv'" in err["reason"]
        assert err["run_id"] is None
        assert w.names("incoming") == set()
        assert w.runs() == []
        assert w.bulk_calls() == []


def test_bad_file_goes_to_quarantine_with_reason_and_run_id(
    make_world: Any, tmp_path: Path
) -> None:
    bad = b"Name;Mail\nAda;ada@example.com\n"  # not the mapping's header at all
    with make_world() as w:
        w.drop_and_deliver("employees/wrong.csv", bad)
        assert w.names("quarantine") == {"employees/wrong.csv", "employees/wrong.csv.error.json"}
        err = orjson.loads(w.read("quarantine", "employees/wrong.csv.error.json"))
        [run] = w.runs()
        assert run.state == "failed"
        assert err["run_id"] == run.run_id
        assert err["reason"]
        assert err["source"] == "employees"
        assert w.names("incoming") == set()
        assert w.names("archive") == set()
        assert w.bulk_calls() == []


def test_file_over_the_rejected_row_cap_is_quarantined(make_world: Any, tmp_path: Path) -> None:
    good = _extract(tmp_path, 10, seed=3).decode().splitlines(keepends=True)
    # 7 of 10 rows without an id: over the default 5 % rejected share
    broken = [good[0]] + ["," + line.split(",", 1)[1] for line in good[1:8]] + good[8:]
    with make_world() as w:
        w.drop_and_deliver("employees/broken.csv", "".join(broken).encode())
        [run] = w.runs()
        assert run.state == "failed"
        assert w.bulk_calls() == []
        err = orjson.loads(w.read("quarantine", "employees/broken.csv.error.json"))
        assert err["run_id"] == run.run_id
        assert "7 of 10 rows rejected" in err["reason"]
        assert err["line_numbers"] == [2, 3, 4, 5, 6, 7, 8]  # from the run's journal
        assert w.names("archive") == set()


class _Rejected:
    def __init__(self, line: int, reason_code: str, message: str) -> None:
        self.line, self.reason_code, self.message = line, reason_code, message
        self.external_id = None


class _RefusingReader:
    """A record reader that refuses the file at the cap, carrying rows 3 and 5 like the
    real reader's error does (the engine journals them; nothing re-reads the file)."""

    rows = 5

    def __init__(self) -> None:
        self.rejected: list[_Rejected] = []

    def __iter__(self) -> Iterator[Any]:
        from connector.errors import TooManyRejectedRowsError

        exc = TooManyRejectedRowsError("2 of 4 rows rejected (50.0%), over the cap of 5.0%")
        exc.rejected = [  # type: ignore[attr-defined]
            _Rejected(3, "missing_id", "EmployeeId is empty"),
            _Rejected(5, "bad", "bad"),
        ]
        raise exc
        yield  # pragma: no cover


def test_quarantine_error_file_lists_rejected_line_numbers(make_world: Any) -> None:
    with make_world() as w:
        w.runtime.engine.records = lambda source, path: _RefusingReader()
        w.drop_and_deliver("employees/refused.csv", b"EmployeeId\n1\n\n2\n\n")
        err = orjson.loads(w.read("quarantine", "employees/refused.csv.error.json"))
        assert err["line_numbers"] == [3, 5]
        assert err["problems"][0] == {"line": 3, "reason": "missing_id: EmployeeId is empty"}
        assert "2 of 4 rows rejected" in err["reason"]
        assert err["run_id"] == w.runs()[0].run_id


# -- at-least-once delivery ------------------------------------------------------------------


def test_duplicate_event_and_reupload_are_no_ops(make_world: Any, tmp_path: Path) -> None:
    data = _extract(tmp_path, 60, seed=4)
    with make_world() as w:
        w.drop_and_deliver("employees/hr.csv", data)
        calls = len(w.bulk_calls())
        archive = w.names("archive")

        w.deliver("employees/hr.csv", data)  # the same event again: the file is gone
        assert len(w.bulk_calls()) == calls
        assert w.names("archive") == archive

        w.drop_and_deliver("employees/hr.csv", data)  # the same bytes uploaded again
        assert len(w.bulk_calls()) == calls
        assert w.names("archive") == archive  # identical copy not written twice
        assert w.names("incoming") == set()
        assert len(w.runs()) == 1


def test_crash_between_batches_then_the_redelivery_resumes(make_world: Any, tmp_path: Path) -> None:
    data = _extract(tmp_path, 160, seed=5)  # 4 batches
    with make_world() as w:
        inner = w.runtime.engine.targets
        counter = [0]
        w.runtime.engine.targets = lambda src: CrashAfter(inner(src), 2, counter)
        w.drop("employees/hr.csv", data)
        with pytest.raises(Crash):
            w.deliver("employees/hr.csv", data)
        [run] = w.runs()
        assert run.state == "uploading"
        assert 1 <= run.batches_done < 4  # acknowledged before the crash, up to the window
        assert w.names("incoming") == {"employees/hr.csv"}  # nothing deleted without a copy
        assert w.names("archive") == set()

        w.runtime.engine.targets = inner  # the host retries the queue message
        w.deliver("employees/hr.csv", data)
        [resumed] = w.runs()
        assert resumed.state == "uploaded"
        assert len(w.emu.users()) == 160
        ops = [c.operations for c in w.bulk_calls()]
        # a journaled batch is never sent again; only the ones in flight at the crash are
        resent = sum(ops) - 160
        assert 0 < resent <= max(ops) * (4 - run.batches_done)
        assert w.names("incoming") == set()
        assert len(w.names("archive")) == 1


def test_poison_message_then_the_timer_finishes_the_run(make_world: Any, tmp_path: Path) -> None:
    """Every delivery fails until the host gives up (poisonBlobThreshold in host.json):
    the file stays in incoming, and the timer's sweep completes the run, each record
    applied once, nothing lost."""
    data = _extract(tmp_path, 160, seed=6)  # 4 batches
    threshold = 3  # host.json extensions.blobs.poisonBlobThreshold (test_index checks 1..5)
    with make_world() as w:
        inner = w.runtime.engine.targets
        counter = [0]
        w.runtime.engine.targets = lambda src: CrashAfter(inner(src), 1, counter)
        w.drop("employees/poison.csv", data)
        for _ in range(threshold):  # the queue message is retried, then goes to poison
            counter[0] = 0
            with pytest.raises(Crash):
                w.deliver("employees/poison.csv", data)
        [run] = w.runs()
        assert run.state == "uploading"
        assert w.names("incoming") == {"employees/poison.csv"}  # nothing deleted
        assert w.names("archive") == set()

        w.runtime.engine.targets = inner  # the cause goes away; no more events come
        w.tick(minutes=15)
        [done] = w.runs()
        assert done.run_id == run.run_id  # the same run, resumed: not applied twice
        assert done.state in ("uploaded", "reconciling", "done")
        assert len(w.emu.users()) == 160
        assert w.names("incoming") == set()
        assert len(w.names("archive")) == 1


# -- back-pressure ---------------------------------------------------------------------------


def test_quota_leaves_the_run_waiting_and_the_timer_continues_it(
    make_world: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="connector.telemetry")
    data = _extract(tmp_path, 130, seed=6)  # 3 batches
    with make_world(budget=2) as w:
        w.drop_and_deliver("employees/hr.csv", data)
        [run] = w.runs()
        assert run.state == "uploading"
        assert run.waiting is not None
        assert run.batches_done == 2
        assert max(w.clock.slept, default=0) < 120  # the invocation did not sit and wait
        assert "run_waiting" in caplog.text
        assert "kind=quota" in caplog.text
        assert len(w.names("archive")) == 1  # planned, so archived already

        w.tick(minutes=60)  # the budget is still spent
        assert w.runs()[0].batches_done == 2
        w.tick(minutes=24 * 60)  # a day later
        [done] = w.runs()
        assert done.state in ("uploaded", "reconciling", "done")
        assert len(w.emu.users()) == 130
        assert sum(c.operations for c in w.bulk_calls()) == 130


def _fill_bucket_with_failures(emu: Any, n: int) -> None:
    """Upload ``n`` records the job fails (a UPN in a domain the tenant does not have)."""
    import httpx

    from connector.scim import BULK_REQUEST_SCHEMA, CORE_USER_SCHEMA, ENTERPRISE_USER_SCHEMA

    for start in range(0, n, 50):
        ops = [
            {
                "method": "POST",
                "bulkId": f"fill-{i}",
                "path": "/Users",
                "data": {
                    "schemas": [CORE_USER_SCHEMA, ENTERPRISE_USER_SCHEMA],
                    "externalId": f"FILL{i}",
                    "userName": f"fill{i}@unverified.example",
                    "active": True,
                },
            }
            for i in range(start, min(n, start + 50))
        ]
        body = {"schemas": [BULK_REQUEST_SCHEMA], "Operations": ops, "failOnErrors": None}
        answer = httpx.post(
            emu.endpoint_url,
            content=orjson.dumps(body),
            headers={
                "Authorization": f"Bearer {emu.token}",
                "Content-Type": "application/scim+json",
            },
        )
        assert answer.status_code == 202
    emu.wait_idle()


def _restart_job(emu: Any, clock: Any) -> None:
    """The documented remedy: restart the job (clears the failed records' bucket places)."""
    from connector.graph.auth import StaticTokenProvider
    from connector.graph.client import GraphClient
    from connector.graph.endpoint import ProvisioningEndpoint

    async def restart() -> None:
        endpoint = ProvisioningEndpoint.parse(emu.endpoint_url, allow_loopback=True)
        client = GraphClient(
            endpoint, StaticTokenProvider(emu.token), clock=clock, allow_loopback=True
        )
        async with client:
            await client.restart_job(confirm=True)

    asyncio.run(restart())


def test_bucket_full_leaves_the_run_waiting_and_the_timer_continues_it(
    make_world: Any, tmp_path: Path
) -> None:
    data = _extract(tmp_path, 130, seed=7)
    with make_world(emulator={"bucket_size": 60}) as w:
        # Failed records keep their place in the bucket until the job is restarted
        # (documented); the job stays active, so the run is sent and meets a full bucket.
        _fill_bucket_with_failures(w.emu, 60)
        w.drop_and_deliver("employees/hr.csv", data)
        [run] = w.runs()
        assert run.state == "uploading"
        assert run.waiting is not None
        assert "bucket" in run.waiting.lower()
        assert max(w.clock.slept, default=0) < 120

        _restart_job(w.emu, w.clock)
        w.emu.wait_idle()
        for _ in range(4):  # batches in flight together may meet the draining bucket again
            w.tick(minutes=15)
            if w.runs()[0].state != "uploading":
                break
        [done] = w.runs()
        assert done.state in ("uploaded", "reconciling", "done")
        assert len(w.emu.users()) == 130


# -- the mass-change guard -----------------------------------------------------------------


def test_held_run_is_released_by_an_approval_marker(make_world: Any, tmp_path: Path) -> None:
    day1 = tmp_path / "hr_1.csv"
    generate_extract(day1, 100, seed=8)
    lines = day1.read_text(encoding="utf-8").splitlines(keepends=True)
    truncated = "".join(lines[:41]).encode()  # 40 of 100 people: looks like a broken export
    with make_world() as w:
        w.drop_and_deliver("employees/hr_1.csv", day1.read_bytes())
        w.tick(minutes=15)
        calls = len(w.bulk_calls())

        w.clock.advance(60)
        w.drop_and_deliver("employees/hr_2.csv", truncated)
        held = next(r for r in w.runs() if r.state == "held")
        assert len(w.bulk_calls()) == calls
        assert any(n.endswith("/hr_2.csv") for n in w.names("archive"))

        w.tick(minutes=15)  # no marker: stays held
        assert next(r for r in w.runs() if r.run_id == held.run_id).state == "held"
        _, body = w.health()
        assert body["sources"]["employees"]["held"] == 1

        w.service.get_blob_client("state", f"documents/approvals/{held.run_id}").upload_blob(
            b'{"by": "hr-operations"}'
        )
        w.tick(minutes=15)
        released = next(r for r in w.runs() if r.run_id == held.run_id)
        assert released.state in ("uploaded", "reconciling", "done")
        enabled = sum(1 for u in w.emu.users().values() if u["accountEnabled"])
        assert enabled <= 40


def test_job_in_quarantine_makes_health_degraded(
    make_world: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="connector.telemetry")
    with make_world() as w:
        w.tick(minutes=15)
        assert w.health()[0] == 200
        w.emu.set_job_state("Quarantine")
        w.tick(minutes=15)
        code, body = w.health()
        assert code == 503
        assert body["status"] == "degraded"
        assert body["sources"]["employees"]["job"]["code"] == "Quarantine"
        assert "job_quarantined" in caplog.text


# -- the timer's safety net --------------------------------------------------------------------


def test_timer_picks_up_a_file_whose_event_never_came(make_world: Any, tmp_path: Path) -> None:
    data = _extract(tmp_path, 20, seed=9)
    with make_world() as w:
        w.drop("employees/missed.csv", data)  # no event (subscription missing, poison...)
        w.tick(minutes=1)
        assert w.runs() == []  # too fresh: its event may still be coming
        w.tick(minutes=15)
        [run] = w.runs()
        assert run.state in ("uploaded", "reconciling", "done")
        assert w.names("incoming") == set()
        assert len(w.names("archive")) == 1


def test_churn_after_first_load_sends_only_changes(make_world: Any, tmp_path: Path) -> None:
    day1 = tmp_path / "d1.csv"
    day2 = tmp_path / "d2.csv"
    generate_extract(day1, 100, seed=10)
    churn_extract(day1, day2, churn=0.1, seed=10)
    with make_world() as w:
        w.drop_and_deliver("employees/d1.csv", day1.read_bytes())
        w.tick(minutes=15)
        before = sum(c.operations for c in w.bulk_calls())
        w.clock.advance(60)
        w.drop_and_deliver("employees/d2.csv", day2.read_bytes())
        second = next(r for r in w.runs() if r.file_name == "employees/d2.csv")
        sent = sum(c.operations for c in w.bulk_calls()) - before
        expected = sum(
            second.planned.get(k, 0) for k in ("joiners", "movers", "leavers", "retries", "resends")
        )
        assert 0 < sent == expected < 100


# -- settings problems at the first invocation --------------------------------------------------


def test_missing_setting_fails_the_first_invocation_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from connector.errors import ConfigError

    for name in APP_SETTING_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HrDropStorage", "UseDevelopmentStorage=true")
    runtime_module.reset_runtime()
    with pytest.raises(ConfigError, match="CONNECTOR_SOURCES: missing"):
        function_app.ingest_extract(trigger_blob("employees/a.csv"))
    with pytest.raises(ConfigError, match="CONNECTOR_SOURCES"):
        function_app.reconcile(TimerRequest(past_due=True))
    req = HttpRequest(method="GET", url="/api/health", body=b"", headers={})
    resp = function_app.health(req)
    assert resp.status_code == 503
    body = orjson.loads(resp.get_body())
    assert body["config"]["loaded"] is False
    assert "CONNECTOR_SOURCES" in body["config"]["error"]


def test_invalid_sources_config_names_the_setting_and_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from connector.errors import ConfigError

    for name in APP_SETTING_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HrDropStorage", "UseDevelopmentStorage=true")
    monkeypatch.setenv("CONNECTOR_SOURCES", "sources:\n  - name: employees\n    colour: blue\n")
    runtime_module.reset_runtime()
    with pytest.raises(ConfigError) as info:
        function_app.reconcile(TimerRequest(past_due=False))
    assert "CONNECTOR_SOURCES" in str(info.value)
    assert "colour" in str(info.value)
