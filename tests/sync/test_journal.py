"""The typed run journal: state moves follow the table; the record keeps what they say."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from connector.errors import RunError
from connector.sync.acks import AckedBatch
from connector.sync.journal import (
    TRANSITIONS,
    Journal,
    RunState,
)
from connector.sync.waiting import WaitingReason

AT = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


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
