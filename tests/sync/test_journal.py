"""The typed run journal: stored documents load and round-trip; state moves follow the table."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connector.errors import RunError
from connector.sync.acks import AckedBatch
from connector.sync.journal import (
    TRANSITIONS,
    Journal,
    RunState,
    WaitingReason,
)

FIXTURES = Path(__file__).parent / "fixtures"
AT = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


def _fixture(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((FIXTURES / f"journal_{name}.json").read_text())
    return doc


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("journal_*.json")), ids=lambda p: p.stem)
def test_a_journal_written_by_the_earlier_engine_round_trips(path: Path) -> None:
    doc = json.loads(path.read_text())
    journal = Journal.from_doc(doc)
    assert journal.to_doc() == doc
    assert Journal.from_doc(journal.to_doc()).to_doc() == doc


def test_the_fixtures_cover_done_held_waiting_queued_blocked_and_refused_runs() -> None:
    states = {p.stem: Journal.from_doc(json.loads(p.read_text())).state for p in FIXTURES.iterdir()}
    assert set(states.values()) >= {
        RunState.DONE,
        RunState.HELD,
        RunState.UPLOADING,
        RunState.BLOCKED,
        RunState.FAILED,
    }


def test_named_fields_read_what_the_document_says() -> None:
    done = Journal.from_doc(_fixture("done"))
    assert done.outcomes == {"created": 120}
    assert [b.index for b in done.batches] == [0, 1, 2]
    assert done.acked_indices == {0, 1, 2}
    assert done.decided
    assert done.decision_hold is None
    held = Journal.from_doc(_fixture("held"))
    assert held.decision_hold is not None
    assert held.held_reason_now == held.held_reason
    queued = Journal.from_doc(_fixture("queued"))
    assert queued.queued
    assert queued.queued_behind
    assert queued.waiting_reason is WaitingReason.QUEUED
    assert queued.waiting_now
    failed = Journal.from_doc(_fixture("failed_rejected"))
    assert failed.rejected is not None
    assert failed.rejected[0].line == 2
    assert failed.stop_reason == failed.failed_reason
    approved = Journal.from_doc(_fixture("approved_uploaded"))
    assert approved.approved_by == "alice"


def test_a_waiting_note_without_a_stored_reason_is_read_from_the_note() -> None:
    doc = _fixture("waiting_quota")
    del doc["waitingReason"]
    assert Journal.from_doc(doc).waiting_reason is WaitingReason.QUOTA
    doc["waiting"] = "TimeoutError: slow"
    assert Journal.from_doc(doc).waiting_reason is WaitingReason.TRANSIENT


def test_acknowledgements_without_an_index_count_in_order() -> None:
    doc = _fixture("done")
    for b in doc["batches"]:
        del b["i"]
    assert [b.index for b in Journal.from_doc(doc).batches] == [0, 1, 2]


def test_unknown_keys_are_kept() -> None:
    doc = {**_fixture("held"), "futureField": {"x": 1}}
    assert Journal.from_doc(doc).to_doc()["futureField"] == {"x": 1}


def _run(state: RunState) -> Journal:
    return Journal(run_id="employees-abc", source="employees", state=state)


ALL_MOVES = [(a, b) for a in RunState for b in RunState]


@pytest.mark.parametrize(("start", "to"), ALL_MOVES, ids=lambda s: s.value)
def test_a_move_is_allowed_exactly_when_the_table_lists_it(start: RunState, to: RunState) -> None:
    journal = _run(start)
    if to in TRANSITIONS[start]:
        journal.move(to, AT, "why")
        assert journal.state is to
        assert journal.timeline[-1].state is to
        assert journal.timeline[-1].detail == "why"
    else:
        with pytest.raises(RunError, match="cannot go from"):
            journal.move(to, AT)
        assert journal.state is start
        assert journal.timeline == []


def test_finished_runs_cannot_move() -> None:
    for state in (RunState.DONE, RunState.SUPERSEDED, RunState.DISCARDED):
        assert TRANSITIONS[state] == frozenset()


def test_leaving_uploading_drops_the_waiting_note() -> None:
    journal = _run(RunState.UPLOADING)
    journal.wait(WaitingReason.QUOTA, "QuotaExhaustedError: spent", AT, "waiting")
    assert journal.waits == 1
    journal.wait(WaitingReason.QUOTA, "QuotaExhaustedError: spent", AT, "waiting")
    assert journal.waits == 2
    assert len(journal.timeline) == 1  # one line per new reason, not per tick
    journal.move(RunState.UPLOADED, AT)
    assert journal.waiting is None
    assert journal.waiting_reason is None


def test_only_an_uploading_run_waits() -> None:
    with pytest.raises(RunError):
        _run(RunState.HELD).wait(WaitingReason.QUOTA, "q", AT, "q")


def test_hold_then_approve_then_start() -> None:
    journal = _run(RunState.PLANNED)
    journal.hold_for({"code": "max_leavers", "message": "60 leavers"}, AT)
    assert journal.state is RunState.HELD
    assert journal.held_reason == "60 leavers"
    journal.approve("alice")
    assert journal.approved_by == "alice"
    journal.start(AT, "approved by alice: 10 records to send")
    assert journal.state is RunState.UPLOADING


def test_only_a_held_run_is_approved() -> None:
    with pytest.raises(RunError, match="not held"):
        _run(RunState.UPLOADING).approve("alice")


def test_queue_behind_an_older_run() -> None:
    older = _run(RunState.HELD)
    older.run_id = "employees-old"
    journal = _run(RunState.PLANNED)
    assert journal.queue_behind(older, AT)
    assert journal.state is RunState.UPLOADING
    assert journal.queued
    assert journal.queued_behind == "employees-old"
    assert journal.waiting_reason is WaitingReason.QUEUED
    assert journal.waiting is not None
    assert "approve or discard it" in journal.waiting
    assert not journal.queue_behind(older, AT)  # same note: nothing new
    journal.start(AT, "its turn came")
    assert not journal.queued
    assert journal.queued_behind is None


def test_stopping_a_run_that_delivered_batches_leaves_it_to_reconcile() -> None:
    journal = _run(RunState.UPLOADING)
    journal.batches_total = 3
    journal.batches.append(AckedBatch(0, 50, AT, "req-1"))
    journal.stop(RunState.DISCARDED, "discarded by ops", AT)
    assert journal.state is RunState.UPLOADED
    assert journal.discarded_reason == "discarded by ops"
    assert journal.first_sent_at == AT
    assert "the 1 of 3 batches already delivered" in journal.timeline[-1].detail
    empty = _run(RunState.HELD)
    empty.stop(RunState.SUPERSEDED, "superseded by newer extract run x", AT)
    assert empty.state is RunState.SUPERSEDED


def test_fail_block_and_unblock() -> None:
    journal = _run(RunState.UPLOADING)
    journal.block("PermissionDeniedError: 403", AT)
    assert journal.state is RunState.BLOCKED
    journal.unblock(AT)
    assert journal.state is RunState.UPLOADING
    assert journal.blocked_reason is None
    journal.fail("systemic 400", AT)
    assert journal.state is RunState.FAILED
    assert journal.failed_reason == "systemic 400"
    journal.receive_again(AT, "file received again")
    assert journal.state is RunState.RECEIVED
    assert journal.failed_reason is None


def test_a_run_received_again_keeps_the_index_version_it_was_planned_at() -> None:
    doc = _fixture("queued")
    journal = Journal.from_doc({**doc, "state": "planned", "queued": None, "waiting": None})
    journal.receive_again(AT, "file received again")
    out = journal.to_doc()
    assert "decision" not in out
    assert "recordsKept" not in out
    assert out["planIndexVersion"] == doc["planIndexVersion"]
    assert Journal.from_doc(out).to_doc() == out
