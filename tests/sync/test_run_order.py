"""Runs of a source apply in extract order (delta), are planned again when they queued,
and a file equal to an older one is still applied (review items 1-6)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from connector.config import parse_sources
from connector.errors import (
    PermissionDeniedError,
)
from connector.sync.journal_doc import journal_to_doc
from connector.sync.waiting import WaitingReason
from tests.sync.fakes import JOB, SP, Crash, config, people
from tests.sync.world import World


def delta_world(tmp: Path) -> World:
    w = World(tmp)
    w.config = config(mode="delta", max_changes_percent=1000, max_changes=100000)
    w.engine = w.new_engine()
    return w


def depts(w: World, ids: range) -> set[str]:
    return {w.service.users[f"E{i:04}"]["department"] for i in ids}


def test_redelivery_of_a_queued_run_does_not_overtake_the_older_run(tmp_path: Path) -> None:
    w = delta_world(tmp_path)
    w.service.quota = 1
    a = w.sync("hr_20260302.csv", people(100))  # A: 1 of 2 batches sent
    w.clock.advance(3600)
    b = w.sync("hr_20260303.csv", people(100, dept="Ops"))  # B: newer, queued
    assert b.waiting_reason is WaitingReason.QUEUED
    assert b.waiting is not None
    assert a.run_id in b.waiting
    w.service.quota = None
    again = w.sync("hr_20260303.csv", people(100, dept="Ops"))  # at-least-once redelivery
    assert again.duplicate
    assert again.state == "uploading"
    resumed = asyncio.run(w.engine.resume(b.run_id))
    # A went first, then B (planned again against what A left)
    assert w.engine.get_run(a.run_id).state == "uploaded"
    assert resumed.state == "uploaded"
    assert depts(w, range(1, 101)) == {"Ops"}
    asyncio.run(w.engine.resume_waiting())
    assert depts(w, range(1, 101)) == {"Ops"}


def test_a_queued_run_resumed_while_the_older_one_still_waits_stays_queued(
    tmp_path: Path,
) -> None:
    w = delta_world(tmp_path)
    w.service.quota = 1
    a = w.sync("hr_20260302.csv", people(100))
    w.clock.advance(3600)
    b = w.sync("hr_20260303.csv", people(100, dept="Ops"))
    calls = len(w.service.calls)
    out = asyncio.run(w.engine.resume(b.run_id))  # quota still spent
    assert out.state == "uploading"
    assert out.waiting_reason is WaitingReason.QUEUED
    assert out.batches_done == 0
    assert len(w.service.calls) == calls
    assert w.engine.get_run(a.run_id).state == "uploading"


def test_a_blocked_older_run_is_not_overtaken_by_the_timer(tmp_path: Path) -> None:
    w = delta_world(tmp_path)
    w.service.quota = 1
    a = w.sync("hr_20260302.csv", people(100))
    w.service.quota = None
    w.service.error = PermissionDeniedError("403", status=403)
    asyncio.run(w.engine.resume_waiting())
    assert w.engine.get_run(a.run_id).state == "blocked"
    w.service.error = None
    w.clock.advance(3600)
    b = w.sync("hr_20260303.csv", people(100, dept="Ops"))
    assert b.state == "uploading"
    assert b.waiting_reason is WaitingReason.QUEUED
    calls = len(w.service.calls)
    out = asyncio.run(w.engine.resume_waiting())
    # the blocked run is listed, the queued one is not sent, the source is named blocked
    assert [(s.run_id, s.state) for s in out] == [(a.run_id, "blocked")]
    assert a.run_id in out.blocked["employees"]
    assert len(w.service.calls) == calls
    queued = journal_to_doc(w.engine.get_run(b.run_id))
    assert queued["state"] == "uploading"
    assert f"queued behind run {a.run_id}" in queued["waiting"]
    assert "blocked" in queued["waiting"]
    asyncio.run(w.engine.resume(a.run_id))  # an operator unblocks A; B follows it
    assert w.engine.get_run(a.run_id).state == "uploaded"
    assert w.engine.get_run(b.run_id).state == "uploaded"
    assert depts(w, range(51, 101)) == {"Ops"}


def test_a_queued_delta_run_is_planned_again_against_the_index(tmp_path: Path) -> None:
    w = delta_world(tmp_path)
    w.sync("hr_20260301.csv", people(100))  # all Sales, applied
    w.clock.advance(86400)
    w.service.quota = len(w.service.calls) + 1
    a = w.sync("hr_20260302.csv", people(100, dept="Ops"))  # A: 1 of 2 batches
    assert a.batches_done == 1
    w.clock.advance(3600)
    b = w.sync("hr_20260303.csv", people(101, dept="Sales"))  # B: back to Sales
    assert b.waiting_reason is WaitingReason.QUEUED
    w.service.quota = None
    asyncio.run(w.engine.resume_waiting())
    assert depts(w, range(1, 102)) == {"Sales"}
    doc = journal_to_doc(w.engine.get_run(b.run_id))
    assert doc["state"] == "uploaded"
    assert doc["planned"]["movers"] == 100  # what A left, not what the index had at receipt
    assert any("planned again" in e["detail"] for e in doc["timeline"])


def test_a_file_equal_to_an_older_one_is_applied_again(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.sync("hr_20260301.csv", people(100))
    w.clock.advance(86400)
    w.sync("hr_20260302.csv", people(99))  # E0100 leaves
    assert w.service.users["E0100"]["enabled"] is False
    w.clock.advance(86400)
    day3 = w.sync("hr_20260303.csv", people(100))  # E0100 back: same bytes as day 1
    assert not day3.duplicate
    assert day3.state == "uploaded"
    assert w.service.users["E0100"]["enabled"] is True
    # a true redelivery of the day-3 file is still a no-op
    calls = len(w.service.calls)
    again = w.sync("hr_20260303.csv", people(100))
    assert again.duplicate
    assert again.run_id == day3.run_id
    assert len(w.service.calls) == calls
    assert len(w.engine.list_runs()) == 3


def test_same_bytes_uploaded_again_with_nothing_applied_between_is_a_no_op(
    tmp_path: Path,
) -> None:
    w = World(tmp_path)
    first = w.sync("hr_20260301.csv", people(20))
    w.clock.advance(3600)
    again = w.sync("hr_20260302.csv", people(20))  # later name, nothing applied since
    assert again.duplicate
    assert again.run_id == first.run_id


def test_a_planned_delta_run_is_applied_not_superseded(tmp_path: Path) -> None:
    w = delta_world(tmp_path)
    real = w.engine.turns.decide

    async def crash(*a: object, **k: object) -> object:
        raise Crash("killed after planning")

    w.engine.turns.decide = crash  # type: ignore[method-assign]
    with pytest.raises(Crash):
        w.sync("hr_20260302.csv", people(60))  # A: 60 joiners, planned, then a crash
    w.engine.turns.decide = real  # type: ignore[method-assign]
    w.clock.advance(600)
    w.sync("hr_20260303.csv", people(5, dept="Ops", start=100))  # B: 5 other joiners
    asyncio.run(w.engine.resume_waiting())
    assert len(w.service.users) == 65
    assert {r.state for r in w.engine.list_runs()} == {"uploaded"}


def test_a_held_delta_run_holds_up_newer_runs_until_approved(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.config = config(mode="delta", max_changes=10, max_changes_percent=1000)
    w.engine = w.new_engine()
    w.sync("hr_20260301.csv", people(8))
    w.clock.advance(86400)
    held = w.sync("hr_20260302.csv", people(40, dept="Ops"))  # 40 changes: held
    assert held.state == "held"
    w.clock.advance(3600)
    b = w.sync(
        "hr_20260303.csv", [("E0002", "user2@contoso.com", "User 2", "Legal", "E0001", "Active")]
    )
    assert b.state == "uploading"
    assert b.waiting_reason is WaitingReason.QUEUED
    assert f"queued behind run {held.run_id} (held" in (b.waiting or "")
    report = w.store.read_artifact(f"employees/{b.run_id}/report.html").decode()
    assert f"queued behind run {held.run_id}" in report
    calls = len(w.service.calls)
    asyncio.run(w.engine.resume_waiting())  # no approval yet: nothing moves
    assert len(w.service.calls) == calls
    asyncio.run(w.engine.approve(held.run_id))
    assert w.engine.get_run(held.run_id).state == "uploaded"
    asyncio.run(w.engine.resume_waiting())
    assert w.engine.get_run(b.run_id).state == "uploaded"
    assert w.service.users["E0002"]["department"] == "Legal"  # the newer change stands
    assert w.service.users["E0003"]["department"] == "Ops"


def test_a_held_full_run_approved_after_a_waiting_run_is_planned_again(tmp_path: Path) -> None:
    w = World(tmp_path, max_changes_percent=1000, max_changes=100000)
    w.sync("hr_20260301.csv", people(100))
    w.clock.advance(86400)
    w.service.quota = len(w.service.calls) + 1
    a = w.sync("hr_20260302.csv", people(100, dept="Ops"))  # 1 of 2 batches, waiting
    assert a.state == "uploading"
    assert a.batches_done == 1
    w.clock.advance(3600)
    b = w.sync("hr_20260303.csv", people(40, dept="Ops"))  # 60 leavers: held
    assert b.state == "held"
    w.service.quota = None
    asyncio.run(w.engine.resume_waiting())  # A finishes: E0051..E0100 now Ops
    assert w.engine.get_run(a.run_id).state == "uploaded"
    out = asyncio.run(w.engine.approve(b.run_id))
    assert out.state == "uploaded"
    # B's plan was made before A sent E0001..E0040's second half; re-planned, it is exact
    assert depts(w, range(1, 41)) == {"Ops"}
    assert not any(w.service.users[f"E{i:04}"]["enabled"] for i in range(41, 101))
    # leavers are disabled with the record A last sent, not the one before it
    assert depts(w, range(41, 101)) == {"Ops"}
    doc = journal_to_doc(w.engine.get_run(b.run_id))
    assert doc["planned"]["leavers"] == 60


def test_an_empty_approval_marker_approves_and_does_not_break_the_pass(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.sync("hr_20260301.csv", people(100))
    w.clock.advance(86400)
    b = w.sync("hr_20260302.csv", people(10))
    assert b.state == "held"
    p = tmp_path / "state" / "documents" / "approvals" / b.run_id
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"")  # `touch`, as an operator would
    out = asyncio.run(w.engine.resume_waiting())
    assert [(s.run_id, s.state) for s in out] == [(b.run_id, "uploaded")]
    assert journal_to_doc(w.engine.get_run(b.run_id))["approvedBy"] == "approval marker"


def test_an_error_in_one_source_does_not_stop_the_others(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.service.quota = 1
    w.sync("hr_20260302.csv", people(100))
    w.service.quota = None
    # a second source whose run journal is broken
    w.config = parse_sources(_two_sources_yaml())
    w.engine = w.new_engine()
    bad = tmp_path / "state" / "documents" / "runs" / "contractors" / "contractors-0000"
    bad.parent.mkdir(parents=True, exist_ok=True)
    bad.write_bytes(b"{not json")
    out = asyncio.run(w.engine.resume_waiting())
    assert "contractors" in out.errors
    assert [s.state for s in out] == ["uploaded"]  # employees still moved on
    rec = asyncio.run(w.engine.reconcile_open_runs())
    assert "contractors" in rec.errors


def _two_sources_yaml() -> str:
    src = """
  - name: {name}
    match: {name}/
    mapping: mapping.yaml
    service_principal_id: {sp}
    job_id: {job}
    mode: full
    leavers: disable
    extract_timestamp: {{pattern: '_(?P<ts>\\d{{8}})\\.csv$', format: '%Y%m%d'}}
    thresholds: {{}}
"""
    return (
        "reconciliation: {deadline: 2h, skew: 5m}\nsources:"
        + src.format(name="employees", sp=SP, job=JOB)
        + src.format(name="contractors", sp=SP, job=JOB)
    )


def test_runs_list_says_which_run_a_queued_run_waits_for(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from connector.cli.app import build_app

    w = delta_world(tmp_path)
    w.service.quota = 1
    a = w.sync("hr_20260302.csv", people(100))
    w.clock.advance(3600)
    b = w.sync("hr_20260303.csv", people(100, dept="Ops"))
    cfg = tmp_path / "sources.yaml"
    cfg.write_text(_delta_yaml(), encoding="utf-8")
    (tmp_path / "mapping.yaml").write_text("attributes: {}\n", encoding="utf-8")
    result = CliRunner().invoke(
        build_app(),
        ["runs", "list", "--config", str(cfg), "--state", str(tmp_path / "state")],
        catch_exceptions=False,
    )
    text = " ".join(result.output.split())
    assert "uploading (queued)" in text
    assert f"{b.run_id}: queued behind run {a.run_id}" in text


def _delta_yaml() -> str:
    return (
        _two_sources_yaml().split("  - name: contractors")[0].replace("mode: full", "mode: delta")
    )


def test_delta_mode_finishes_the_waiting_run_before_planning_the_newer_file(
    tmp_path: Path,
) -> None:
    w = delta_world(tmp_path)
    w.service.quota = 1
    a = w.sync("hr_20260302.csv", people(100))  # 2 batches, 1 sent
    assert a.state == "uploading"
    w.service.quota = None
    w.clock.advance(86400)
    b = w.sync("hr_20260303.csv", people(10, dept="Ops", start=200))
    assert b.state == "uploaded"
    old = journal_to_doc(w.engine.get_run(a.run_id))
    assert old["state"] == "uploaded"
    assert "supersededReason" not in old
    assert set(w.service.users) == {f"E{i:04}" for i in range(1, 101)} | {
        f"E{i:04}" for i in range(200, 210)
    }


def test_delta_mode_newer_file_queues_behind_a_run_still_waiting(tmp_path: Path) -> None:
    w = delta_world(tmp_path)
    w.service.quota = 1
    a = w.sync("hr_20260302.csv", people(100))
    w.clock.advance(3600)
    b = w.sync("hr_20260303.csv", people(5, dept="Ops"))  # changes records A still owes
    assert b.state == "uploading"
    assert b.waiting_reason is WaitingReason.QUEUED
    assert w.engine.get_run(a.run_id).state == "uploading"
    w.service.quota = None
    w.clock.advance(86400)
    out = asyncio.run(w.engine.resume_waiting())
    assert [s.run_id for s in out] == [a.run_id, b.run_id]
    assert all(s.state == "uploaded" for s in out)
    assert len(w.service.users) == 100
    # the newer data was applied last
    assert all(w.service.users[f"E{i:04}"]["department"] == "Ops" for i in range(1, 6))


def test_full_mode_held_newer_file_does_not_end_the_waiting_run(tmp_path: Path) -> None:
    w = World(tmp_path, max_changes_percent=1000)
    w.sync("hr_20260301.csv", people(100))
    w.clock.advance(86400)
    w.service.quota = len(w.service.calls) + 1
    a = w.sync("hr_20260302.csv", people(100, dept="Ops"))  # 2 batches of movers, 1 sent
    assert a.state == "uploading"
    w.clock.advance(3600)
    b = w.sync("hr_20260303.csv", people(10, dept="Ops"))  # 90 leavers: held
    assert b.state == "held"
    assert w.engine.get_run(a.run_id).state == "uploading"
    w.engine.discard(b.run_id)
    w.service.quota = None
    [done] = asyncio.run(w.engine.resume_waiting())
    assert done.run_id == a.run_id
    assert done.state == "uploaded"
    assert all(u["department"] == "Ops" for u in w.service.users.values())
