"""The run engine against an in-memory provisioning service and the local state store."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

import pytest

from connector.errors import RunError
from connector.sync.journal_doc import journal_to_doc
from tests.sync.fakes import Crash, people
from tests.sync.world import World


def test_joiners_then_movers_and_leavers_then_reconciled(tmp_path: Path) -> None:
    w = World(tmp_path)
    first = w.sync("hr_20260302.csv", people(120))
    assert first.state == "uploaded"
    assert first.planned["joiners"] == 120
    assert first.batches_total == 3
    assert len(w.service.users) == 120
    [rec] = w.reconcile()
    assert rec.state == "done"
    assert rec.outcomes == {"created": 120}

    w.clock.advance(86400)
    day2 = people(115)  # five leavers
    day2[0] = (*day2[0][:3], "Finance", *day2[0][4:])  # one mover
    second = w.sync("hr_20260303.csv", day2)
    assert second.planned["movers"] == 1
    assert second.planned["leavers"] == 5
    assert second.planned["unchanged"] == 114
    assert sum(len(c) for c in w.service.calls[3:]) == 6  # only what changed was sent
    [rec2] = w.reconcile()
    assert rec2.outcomes == {"updated": 1, "disabled": 5}
    assert w.service.users["E0001"]["department"] == "Finance"
    assert [k for k, u in w.service.users.items() if not u["enabled"]] == [
        f"E{i:04}" for i in range(116, 121)
    ]
    # a leaver is disabled with its complete last record, not a stub
    assert w.service.users["E0120"]["displayName"] == "User 120"
    report = json.loads(w.store.read_artifact(f"employees/{second.run_id}/report.json"))
    assert report["outcomes"] == {"disabled": 5, "updated": 1}
    assert report["actionByOutcome"]["leaver"] == {"disabled": 5}


def test_same_file_twice_is_a_no_op(tmp_path: Path) -> None:
    w = World(tmp_path)
    a = w.sync("hr_20260302.csv", people(60))
    calls = len(w.service.calls)
    b = w.sync("hr_20260302.csv", people(60))
    assert b.duplicate
    assert b.run_id == a.run_id
    assert len(w.service.calls) == calls
    assert len(w.engine.list_runs()) == 1


def test_crash_between_batches_resumes_from_first_unacknowledged(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.engine = w.new_engine(window=1)  # one at a time: exactly the batch in flight again
    w.service.crash_on_call = 3
    with pytest.raises(Crash):
        w.sync("hr_20260302.csv", people(230))  # 5 batches
    run = w.engine.list_runs()[0]
    assert run.state == "uploading"
    assert run.batches_done == 2
    # a fresh process picks it up
    w.engine = w.new_engine()
    [resumed] = asyncio.run(w.engine.resume_waiting())
    assert resumed.state == "uploaded"
    assert resumed.batches_done == 5
    sent = [ext for call in w.service.calls for ext in call]
    assert set(sent) == {f"E{i:04}" for i in range(1, 231)}
    # only the batch in flight went twice
    twice = {e for e in sent if sent.count(e) > 1}
    assert twice == set(w.service.calls[2])
    assert len(w.service.calls) == 6
    index = w.store.load_records("employees")
    assert len(index) == 230
    [rec] = w.reconcile()
    assert rec.state == "done"


def test_quota_exhaustion_waits_then_continues_next_day(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.service.quota = 2
    run = w.sync("hr_20260302.csv", people(200))
    assert run.state == "uploading"
    assert run.waiting is not None
    assert "QuotaExhaustedError" in run.waiting
    assert run.batches_done == 2
    # only acknowledged records advanced in the state
    assert len(w.store.load_records("employees")) == 100
    # nothing more while the quota is spent
    assert asyncio.run(w.engine.resume_waiting())[0].batches_done == 2
    w.clock.advance(86400)
    w.service.quota = None
    [done] = asyncio.run(w.engine.resume_waiting())
    assert done.state == "uploaded"
    assert len(w.store.load_records("employees")) == 200
    assert len(w.service.users) == 200


def test_mass_leavers_are_held_then_approved(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.sync("hr_20260302.csv", people(100))
    w.reconcile()
    w.clock.advance(86400)
    calls = len(w.service.calls)
    held = w.sync("hr_20260303.csv", people(40))
    assert held.state == "held"
    assert held.held_reason is not None
    assert "60 leavers" in held.held_reason
    assert len(w.service.calls) == calls  # nothing sent
    page = w.store.read_artifact(f"employees/{held.run_id}/report.html").decode()
    assert "Held — nothing was sent." in page
    approved = asyncio.run(w.engine.approve(held.run_id))
    assert approved.state == "uploaded"
    assert sum(1 for u in w.service.users.values() if not u["enabled"]) == 60
    with pytest.raises(RunError, match="not held"):
        asyncio.run(w.engine.approve(held.run_id))


def test_held_run_released_by_approval_marker_or_discarded(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.sync("hr_20260302.csv", people(100))
    w.clock.advance(86400)
    held = w.sync("hr_20260303.csv", people(10))
    assert held.state == "held"
    w.store.put_document(f"approvals/{held.run_id}", {"by": "alice"})
    [out] = asyncio.run(w.engine.resume_waiting())
    assert out.state == "uploaded"
    assert journal_to_doc(w.engine.get_run(held.run_id))["approvedBy"] == "alice"
    w.clock.advance(86400)
    held2 = w.sync("hr_20260304.csv", [])
    assert held2.state == "held"
    gone = w.engine.discard(held2.run_id)
    assert gone.state == "discarded"
    assert sum(1 for u in w.service.users.values() if u["enabled"]) == 10


def test_out_of_order_file_is_superseded(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.sync("hr_20260305.csv", people(50))
    calls = len(w.service.calls)
    old = w.sync("hr_20260304.csv", people(50, dept="Old"))
    assert old.state == "superseded"
    assert old.failed_reason is not None
    assert "older than the last one applied" in old.failed_reason
    assert len(w.service.calls) == calls
    assert w.service.users["E0001"]["department"] == "Sales"


def test_failures_classified_and_not_resent_until_retry(tmp_path: Path) -> None:
    w = World(tmp_path)
    rows = people(10)
    # duplicate UPN; same manager as E0003, so both are on one level and keep file order
    rows.append(("E0099", "user3@contoso.com", "Clash", "Sales", "E0001", "Active"))
    w.service.silent.add("E0005")  # never appears in the logs
    run = w.sync("hr_20260302.csv", rows)
    [rec] = w.reconcile()
    assert rec.state == "reconciling"  # E0005 still pending
    assert rec.outcomes == {"created": 9, "failed": 1, "pending": 1}
    [rec] = w.reconcile(timedelta(hours=2))
    assert rec.state == "done"
    assert rec.outcomes == {"created": 9, "failed": 1, "unconfirmed": 1}
    failures = w.store.read_artifact(f"employees/{run.run_id}/failures.csv").decode()
    assert "E0099,12,joiner,AzureActiveDirectoryConflictEncountered" in failures
    assert "E0005,6,joiner,unconfirmed" in failures
    entry = w.store.load_records("employees").get("E0099")
    assert entry is not None
    assert entry.outcome == "failed"

    # the next day's identical row is not re-sent blindly
    w.clock.advance(86400)
    calls = len(w.service.calls)
    again = w.sync("hr_20260303.csv", [*rows, *people(1, start=500)])
    assert again.planned["unchanged"] == 11
    assert again.planned["joiners"] == 1
    assert w.service.calls[calls:] == [["E0500"]]
    # an operator retry re-sends exactly the failed record
    calls = len(w.service.calls)
    retry = asyncio.run(w.engine.retry_failed(run.run_id))
    assert retry.state == "uploaded"
    assert w.service.calls[calls:] == [["E0099"]]
    with pytest.raises(RunError, match="no failed records"):
        asyncio.run(w.engine.retry_failed(run.run_id))


def test_quarantined_job_is_reported(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.sync("hr_20260302.csv", people(5))
    w.service.job_state = "Quarantine"
    [rec] = w.reconcile()
    assert rec.job_health is not None
    assert "quarantine" in rec.job_health
    page = w.store.read_artifact(f"employees/{rec.run_id}/report.html").decode()
    assert "EncounteredQuarantineException" in page


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    w = World(tmp_path)
    out = w.sync("hr_20260302.csv", people(70), dry_run=True)
    assert out.dry_run
    assert out.planned["joiners"] == 70
    assert out.batches_total == 2
    assert w.service.calls == []
    assert w.engine.list_runs() == []
    assert len(w.store.load_records("employees")) == 0


def test_rejected_row_never_disables_its_person(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.sync("hr_20260302.csv", people(30))
    w.clock.advance(86400)
    rows = people(30)
    rows[4] = (rows[4][0], "", *rows[4][2:])  # E0005 loses its UPN: rejected
    run = w.sync("hr_20260303.csv", rows)
    assert run.planned["rejected"] == 1
    assert run.planned["leavers"] == 0
    assert w.service.users["E0005"]["enabled"]


def test_newer_file_supersedes_a_waiting_run_and_its_sent_batches_are_reconciled(
    tmp_path: Path,
) -> None:
    w = World(tmp_path, max_changes_percent=1000)
    w.service.quota = 1
    waiting = w.sync("hr_20260302.csv", people(120))
    assert waiting.state == "uploading"
    w.service.quota = None
    w.clock.advance(86400)
    newer = w.sync("hr_20260303.csv", people(120, dept="Ops"))
    assert newer.state == "uploaded"
    # the first 50 were delivered by the old run, then changed: movers; the rest joiners
    assert newer.planned["movers"] == 50
    assert newer.planned["joiners"] == 70
    old = journal_to_doc(w.engine.get_run(waiting.run_id))
    assert old["state"] == "uploaded"
    assert "superseded by newer extract" in old["supersededReason"]
    runs = {r.run_id: r for r in w.reconcile()}
    assert runs[waiting.run_id].state == "done"
    # the latest entry after each send wins: the newer run's update is what is seen
    assert sum(runs[waiting.run_id].outcomes.values()) == 50
    assert set(runs[waiting.run_id].outcomes) <= {"created", "updated"}
    index = w.store.load_records("employees")
    assert {e.run_id for e in index.entries.values()} == {newer.run_id}
    assert all(u["department"] == "Ops" for u in w.service.users.values())


def test_a_file_that_failed_to_plan_can_be_delivered_again(tmp_path: Path) -> None:
    w = World(tmp_path)
    calls = {"n": 0}
    real = w.engine.records

    def flaky(source: object, path: Path) -> object:
        calls["n"] += 1
        if calls["n"] == 1:
            from connector.errors import ExtractError

            raise ExtractError("the mapping needs column X", path=str(path), line=1)
        return real(source, path)  # type: ignore[arg-type]

    w.engine.records = flaky  # type: ignore[assignment]
    first = w.sync("hr_20260302.csv", people(10))
    assert first.state == "failed"
    assert first.failed_reason is not None
    assert "column X" in first.failed_reason
    second = w.sync("hr_20260302.csv", people(10))
    assert not second.duplicate
    assert second.state == "uploaded"
    assert second.run_id == first.run_id


def test_waiting_reason_is_not_repeated_in_the_timeline(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.service.quota = 1
    run = w.sync("hr_20260302.csv", people(120))
    for _ in range(3):
        asyncio.run(w.engine.resume_waiting())
    doc = journal_to_doc(w.engine.get_run(run.run_id))
    assert doc["waits"] == 4
    assert sum(1 for e in doc["timeline"] if e["detail"].startswith("waiting")) == 1
    page = w.store.read_artifact(f"employees/{run.run_id}/report.html").decode()
    assert "<strong>Waiting.</strong>" in page
