"""Discard markers (``discards/<run id>`` documents): the next pass discards the run."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from connector.errors import (
    RunError,
)
from connector.sync.journal import RunState
from connector.sync.journal_doc import journal_to_doc
from connector.sync.run_keys import approval_key, discard_key
from tests.sync.fakes import people
from tests.sync.world import World


def _held(w: World) -> str:
    w.sync("hr_20260302.csv", people(100))
    w.clock.advance(86400)
    held = w.sync("hr_20260303.csv", people(40))
    assert held.state == "held"
    return held.run_id


def test_discard_marker_discards_a_held_run_and_wins_over_approval(tmp_path: Path) -> None:
    w = World(tmp_path)
    run_id = _held(w)
    calls = len(w.service.calls)
    w.store.put_document(approval_key(run_id), {"by": "someone"}, if_none_match=True)
    w.store.put_document(discard_key(run_id), {"by": "hr  ops"}, if_none_match=True)
    [summary] = asyncio.run(w.engine.resume_waiting())
    assert summary.run_id == run_id
    assert summary.state == "discarded"
    assert summary.failed_reason == "discarded by hr ops"
    assert len(w.service.calls) == calls  # nothing of the held run was sent
    assert w.store.get_document(discard_key(run_id)) is None
    assert w.store.get_document(approval_key(run_id)) is None
    assert list(asyncio.run(w.engine.resume_waiting())) == []


def test_a_marker_that_is_not_json_still_discards(tmp_path: Path) -> None:
    w = World(tmp_path)
    run_id = _held(w)
    path = tmp_path / "state" / "documents" / "discards" / run_id
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")  # an empty blob, as `az storage blob upload --data ''` leaves
    [summary] = asyncio.run(w.engine.resume_waiting())
    assert summary.state == "discarded"
    assert summary.failed_reason == "discarded by discard marker"


def test_a_marker_for_a_finished_run_changes_nothing(tmp_path: Path) -> None:
    w = World(tmp_path)
    done = w.sync("hr_20260302.csv", people(10))
    [rec] = w.reconcile()
    assert rec.state == "done"
    w.store.put_document(discard_key(done.run_id), {}, if_none_match=True)
    assert list(asyncio.run(w.engine.resume_waiting())) == []
    assert w.engine.get_run(done.run_id).state == "done"


def test_discard_records_the_reason_and_honours_allowed_states(tmp_path: Path) -> None:
    w = World(tmp_path, max_changes_percent=1000, max_changes=100000)
    w.sync("hr_20260302.csv", people(100))
    w.clock.advance(86400)
    w.service.quota = len(w.service.calls) + 1
    waiting = w.sync("hr_20260303.csv", people(100, dept="Ops"))
    assert waiting.state == "uploading"
    with pytest.raises(RunError, match="held"):
        w.engine.discard(waiting.run_id, by="ops", allowed_states={RunState.HELD})
    assert w.engine.get_run(waiting.run_id).state == "uploading"
    out = w.engine.discard(waiting.run_id, by="ops", reason="wrong\nfile")
    assert out.state == "uploaded"  # its delivered batch is still reconciled
    doc = journal_to_doc(w.engine.get_run(waiting.run_id))
    assert doc["discardedReason"] == "discarded by ops (reason: wrong file)"
