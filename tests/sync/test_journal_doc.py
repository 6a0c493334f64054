"""A journal's stored document: documents written before load, round-trip, keep unknown keys."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connector.sync.journal import RunState
from connector.sync.journal_doc import journal_from_doc, journal_to_doc
from connector.sync.waiting import WaitingReason

FIXTURES = Path(__file__).parent / "fixtures"
AT = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


def _fixture(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((FIXTURES / f"journal_{name}.json").read_text())
    return doc


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("journal_*.json")), ids=lambda p: p.stem)
def test_a_journal_written_by_the_earlier_engine_round_trips(path: Path) -> None:
    doc = json.loads(path.read_text())
    journal = journal_from_doc(doc)
    assert journal_to_doc(journal) == doc
    assert journal_to_doc(journal_from_doc(journal_to_doc(journal))) == doc


def test_the_fixtures_cover_done_held_waiting_queued_blocked_and_refused_runs() -> None:
    states = {p.stem: journal_from_doc(json.loads(p.read_text())).state for p in FIXTURES.iterdir()}
    assert set(states.values()) >= {
        RunState.DONE,
        RunState.HELD,
        RunState.UPLOADING,
        RunState.BLOCKED,
        RunState.FAILED,
    }


def test_named_fields_read_what_the_document_says() -> None:
    done = journal_from_doc(_fixture("done"))
    assert done.outcomes == {"created": 120}
    assert [b.index for b in done.batches] == [0, 1, 2]
    assert done.acked_indices == {0, 1, 2}
    assert done.decided
    assert done.decision_hold is None
    held = journal_from_doc(_fixture("held"))
    assert held.decision_hold is not None
    assert held.held_reason_now == held.held_reason
    queued = journal_from_doc(_fixture("queued"))
    assert queued.queued
    assert queued.queued_behind
    assert queued.waiting_reason is WaitingReason.QUEUED
    assert queued.waiting_now
    failed = journal_from_doc(_fixture("failed_rejected"))
    assert failed.rejected is not None
    assert failed.rejected[0].line == 2
    assert failed.stop_reason == failed.failed_reason
    approved = journal_from_doc(_fixture("approved_uploaded"))
    assert approved.approved_by == "alice"


def test_a_waiting_note_without_a_stored_reason_is_read_from_the_note() -> None:
    doc = _fixture("waiting_quota")
    del doc["waitingReason"]
    assert journal_from_doc(doc).waiting_reason is WaitingReason.QUOTA
    doc["waiting"] = "TimeoutError: slow"
    assert journal_from_doc(doc).waiting_reason is WaitingReason.TRANSIENT


def test_acknowledgements_without_an_index_count_in_order() -> None:
    doc = _fixture("done")
    for b in doc["batches"]:
        del b["i"]
    assert [b.index for b in journal_from_doc(doc).batches] == [0, 1, 2]


def test_unknown_keys_are_kept() -> None:
    doc = {**_fixture("held"), "futureField": {"x": 1}}
    assert journal_to_doc(journal_from_doc(doc))["futureField"] == {"x": 1}


def test_a_run_received_again_keeps_the_index_version_it_was_planned_at() -> None:
    doc = _fixture("queued")
    journal = journal_from_doc({**doc, "state": "planned", "queued": None, "waiting": None})
    journal.receive_again(AT, "file received again")
    out = journal_to_doc(journal)
    assert "decision" not in out
    assert "recordsKept" not in out
    assert out["planIndexVersion"] == doc["planIndexVersion"]
    assert journal_to_doc(journal_from_doc(out)) == out
