"""Markers in the ``approvals`` container, end to end on Azurite.

An operator who may only write to ``approvals`` approves a held run (a blob named
``<run id>``), discards one (``{"action": "discard"}`` or ``<run id>.discard``) or
resumes a blocked one (``{"action": "resume"}``). The timer acts through the engine
and files each marker with its outcome; a discard wins over an approval of the same run.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import orjson
import pytest

from connector.errors import QuotaExhaustedError
from connector.functions.approvals import Approvals
from connector.functions.dropzone import DropZone
from connector.functions.markers import MAX_MARKER_BYTES, ApprovalMarker, MarkerAction
from connector.sync.journal_doc import journal_to_doc

from .runs import Refusing, held_run

# -- approving a held run ------------------------------------------------------------------------


@pytest.mark.azurite
def test_an_operator_approves_a_held_run_with_a_blob_in_approvals(
    make_world: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with make_world() as w:
        held = held_run(w, tmp_path)
        calls = len(w.bulk_calls())
        marker = b'{"by": "Jane Operator"}'
        w.service.get_blob_client("approvals", held.run_id).upload_blob(marker)

        w.tick(minutes=15)
        released = next(r for r in w.runs() if r.run_id == held.run_id)
        assert released.state in ("uploaded", "reconciling", "done")
        assert len(w.bulk_calls()) > calls
        journal = journal_to_doc(w.runtime.engine.get_run(held.run_id))
        assert journal["approvedBy"] == "Jane Operator"
        assert any("Jane Operator" in str(e) for e in journal["timeline"])
        # the marker is filed (a copy first), never just deleted
        assert w.names("approvals") == {f"processed/{held.run_id}"}
        assert w.read("approvals", f"processed/{held.run_id}") == marker
        props = w.service.get_blob_client("approvals", f"processed/{held.run_id}")
        assert props.get_blob_properties().metadata["outcome"] == "approved"
        assert "Jane" not in caplog.text  # who approved is in the journal, not in logs

        # the same marker again (an operator retrying): nothing more happens
        w.service.get_blob_client("approvals", held.run_id).upload_blob(marker)
        sent = len(w.bulk_calls())
        w.tick(minutes=15)
        assert len(w.bulk_calls()) == sent
        assert w.names("approvals") == {f"processed/{held.run_id}"}


@pytest.mark.azurite
def test_an_approval_for_an_unknown_run_is_filed_not_retried_forever(make_world: Any) -> None:
    with make_world() as w:
        w.service.get_blob_client("approvals", "employees-0000000000").upload_blob(b"")
        w.tick(minutes=15)
        assert w.names("approvals") == {"processed/employees-0000000000"}
        blob = w.service.get_blob_client("approvals", "processed/employees-0000000000")
        assert blob.get_blob_properties().metadata["outcome"] == "unknown_run"


@pytest.mark.azurite
def test_an_approval_while_the_source_is_busy_stays_for_the_next_pass(
    make_world: Any, tmp_path: Path
) -> None:
    with make_world() as w:
        held = held_run(w, tmp_path)
        w.service.get_blob_client("approvals", held.run_id).upload_blob(b"")
        with w.runtime.store.lock("employees", owner="another-instance"):
            w.tick(minutes=15)
        assert w.names("approvals") == {held.run_id}
        assert next(r for r in w.runs() if r.run_id == held.run_id).state == "held"
        w.tick(minutes=15)
        assert next(r for r in w.runs() if r.run_id == held.run_id).state != "held"
        journal = journal_to_doc(w.runtime.engine.get_run(held.run_id))
        assert journal["approvedBy"] == "approvals container"


# -- resuming a blocked run ----------------------------------------------------------------------


@pytest.mark.azurite
def test_a_resume_marker_for_a_run_that_is_not_blocked_does_nothing(
    make_world: Any, tmp_path: Path
) -> None:
    with make_world() as w:
        held = held_run(w, tmp_path)
        calls = len(w.bulk_calls())
        w.service.get_blob_client("approvals", held.run_id).upload_blob(b'{"action": "resume"}')
        w.tick(minutes=15)
        assert next(r for r in w.runs() if r.run_id == held.run_id).state == "held"
        assert len(w.bulk_calls()) == calls
        props = w.service.get_blob_client(
            "approvals", f"processed/{held.run_id}"
        ).get_blob_properties()
        assert props.metadata["outcome"] == "not_blocked"


# -- discarding a run ----------------------------------------------------------------------------


@pytest.mark.azurite
def test_a_discard_marker_does_not_stop_a_run_approved_meanwhile(
    make_world: Any, tmp_path: Path
) -> None:
    with make_world() as w:
        held = held_run(w, tmp_path)
        engine = w.runtime.engine
        stale = engine.get_run(held.run_id)  # what the marker handler reads first…
        real = engine.targets
        spent = QuotaExhaustedError("daily call budget spent (test)")
        engine.targets = lambda src: Refusing(real(src), spent)
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
        assert engine.get_run(held.run_id).state == "uploading"
        assert "discardedReason" not in journal_to_doc(engine.get_run(held.run_id))
        w.tick(minutes=15)  # the timer continues the approved run
        assert engine.get_run(held.run_id).state in ("uploaded", "reconciling", "done")


@pytest.mark.azurite
def test_a_discard_marker_records_who_and_why(make_world: Any, tmp_path: Path) -> None:
    with make_world() as w:
        held = held_run(w, tmp_path)
        w.service.get_blob_client("approvals", f"{held.run_id}.discard").upload_blob(
            b'{"by": "ops", "reason": "wrong file"}'
        )
        w.tick(minutes=15)
        doc = journal_to_doc(w.runtime.engine.get_run(held.run_id))
        assert doc["state"] == "discarded"
        assert doc["discardedReason"] == "discarded by ops (reason: wrong file)"


# -- discard markers (filing, the timer pass) ---------------------------------------------------


@pytest.mark.azurite
def test_a_marker_replaced_while_it_was_handled_is_copied_but_not_deleted(
    blob_service: Any,
) -> None:
    zone = DropZone(blob_service)
    zone.ensure_containers()
    blob = blob_service.get_blob_client("approvals", "employees-abc.discard")
    blob.upload_blob(b'{"by": "a"}')
    blob_service.get_blob_client("approvals", "employees-big").upload_blob(
        b" " * (MAX_MARKER_BYTES + 1)
    )
    markers = {m.name: m for m in zone.approval_markers()}
    assert set(markers) == {"employees-abc.discard", "employees-big"}
    assert markers["employees-big"].action is MarkerAction.INVALID

    blob.upload_blob(b'{"by": "b"}', overwrite=True)  # the operator re-uploads meanwhile
    placed = zone.file_approval_marker(markers["employees-abc.discard"], "discarded")
    assert placed.blob_name == "processed/employees-abc.discard"
    assert not placed.incoming_deleted
    assert blob.download_blob().readall() == b'{"by": "b"}'  # left for the next pass
    copy = blob_service.get_blob_client("approvals", "processed/employees-abc.discard")
    meta = copy.get_blob_properties().metadata
    assert (meta["outcome"], meta["action"], meta["run_id"]) == (
        "discarded",
        "discard",
        "employees-abc",
    )


def _outcome(w: Any, container_name: str) -> str:
    blob = w.service.get_blob_client("approvals", container_name)
    return str(blob.get_blob_properties().metadata["outcome"])


def _state(w: Any, run_id: str) -> str:
    return str(next(r for r in w.runs() if r.run_id == run_id).state)


def _pass(w: Any) -> list[tuple[str, str, str]]:
    """One approvals step of the timer pass, directly (to see every marker's outcome)."""
    out = asyncio.run(w.runtime.process_approvals())
    return [(o.run_id, str(o.action), o.outcome) for o in out]


@pytest.mark.azurite
def test_an_operator_discards_a_held_run_with_a_json_marker(
    make_world: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with make_world() as w:
        held = held_run(w, tmp_path)
        calls = len(w.bulk_calls())
        marker = orjson.dumps(
            {"action": "discard", "by": "Jane Operator", "reason": "the extract was cut short"}
        )
        w.service.get_blob_client("approvals", held.run_id).upload_blob(marker)

        w.tick(minutes=15)
        assert _state(w, held.run_id) == "discarded"
        assert len(w.bulk_calls()) == calls  # nothing of it was sent
        journal = journal_to_doc(w.runtime.engine.get_run(held.run_id))
        assert "Jane Operator" in journal["discardedReason"]
        assert "the extract was cut short" in journal["discardedReason"]
        assert "approvedBy" not in journal
        assert any("Jane Operator" in str(e) for e in journal["timeline"])
        # filed: a copy first, with the outcome, then the marker is gone
        assert w.names("approvals") == {f"processed/{held.run_id}"}
        assert w.read("approvals", f"processed/{held.run_id}") == marker
        assert _outcome(w, f"processed/{held.run_id}") == "discarded"
        # who and why are in the journal, never in log lines
        assert "Jane" not in caplog.text
        assert "cut short" not in caplog.text
        assert f"discard marker for run {held.run_id}: discarded" in caplog.text

        # the same marker again (an operator retrying): nothing more happens
        w.service.get_blob_client("approvals", held.run_id).upload_blob(marker)
        assert _pass(w) == [(held.run_id, "discard", "already_discarded")]
        assert _state(w, held.run_id) == "discarded"
        assert (
            journal_to_doc(w.runtime.engine.get_run(held.run_id))["discardedReason"]
            == (journal["discardedReason"])
        )
        assert w.names("approvals") == {f"processed/{held.run_id}"}
        # and an approval after the discard does not bring the run back
        w.service.get_blob_client("approvals", held.run_id).upload_blob(b"")
        assert _pass(w) == [(held.run_id, "approve", "not_held")]
        w.tick(minutes=15)
        assert _state(w, held.run_id) == "discarded"
        assert len(w.bulk_calls()) == calls


@pytest.mark.azurite
def test_a_dot_discard_blob_discards_the_run_and_wins_over_its_approval(
    make_world: Any, tmp_path: Path
) -> None:
    with make_world() as w:
        held = held_run(w, tmp_path)
        calls = len(w.bulk_calls())
        # the approval is older than the discard: the discard wins all the same
        w.service.get_blob_client("approvals", held.run_id).upload_blob(b'{"by": "approver"}')
        w.clock.advance(1)
        w.service.get_blob_client("approvals", f"{held.run_id}.discard").upload_blob(b"")

        outcomes = _pass(w)
        assert sorted(outcomes) == [
            (held.run_id, "approve", "overridden_by_discard"),
            (held.run_id, "discard", "discarded"),
        ]
        assert outcomes[0][1] == "discard"  # handled first
        assert _state(w, held.run_id) == "discarded"
        journal = journal_to_doc(w.runtime.engine.get_run(held.run_id))
        assert journal["discardedReason"] == "discarded by approvals container"
        assert "approvedBy" not in journal
        assert w.names("approvals") == {
            f"processed/{held.run_id}",
            f"processed/{held.run_id}.discard",
        }
        assert _outcome(w, f"processed/{held.run_id}") == "overridden_by_discard"
        assert _outcome(w, f"processed/{held.run_id}.discard") == "discarded"
        w.tick(minutes=15)
        assert len(w.bulk_calls()) == calls
        assert _state(w, held.run_id) == "discarded"


@pytest.mark.azurite
def test_a_discard_while_the_source_is_busy_keeps_both_markers_for_the_next_pass(
    make_world: Any, tmp_path: Path
) -> None:
    with make_world() as w:
        held = held_run(w, tmp_path)
        calls = len(w.bulk_calls())
        w.service.get_blob_client("approvals", held.run_id).upload_blob(b"")
        w.service.get_blob_client("approvals", f"{held.run_id}.discard").upload_blob(
            b'{"by": "ops", "reason": "duplicate"}'
        )
        with w.runtime.store.lock("employees", owner="another-instance"):
            w.tick(minutes=15)
            status = orjson.loads(w.read("reports", "_connector/status.json"))
        assert w.names("approvals") == {held.run_id, f"{held.run_id}.discard"}
        assert _state(w, held.run_id) == "held"
        assert "employees" in status["busy"]

        w.tick(minutes=15)
        assert _state(w, held.run_id) == "discarded"
        assert len(w.bulk_calls()) == calls
        reason = journal_to_doc(w.runtime.engine.get_run(held.run_id))["discardedReason"]
        assert reason == "discarded by ops (reason: duplicate)"
        assert _outcome(w, f"processed/{held.run_id}") == "overridden_by_discard"


@pytest.mark.azurite
def test_a_run_that_already_sent_is_not_discardable_and_an_unknown_run_is_filed(
    make_world: Any, tmp_path: Path
) -> None:
    with make_world() as w:
        held = held_run(w, tmp_path)
        sent = next(r for r in w.runs() if r.run_id != held.run_id)
        before = _state(w, sent.run_id)
        assert before in ("uploaded", "reconciling", "done")
        w.service.get_blob_client("approvals", f"{sent.run_id}.discard").upload_blob(b"")
        w.service.get_blob_client("approvals", "employees-0000000000.discard").upload_blob(b"")

        assert sorted(_pass(w)) == [
            ("employees-0000000000", "discard", "unknown_run"),
            (sent.run_id, "discard", "not_discardable"),
        ]
        assert _state(w, sent.run_id) == before
        assert "discardedReason" not in journal_to_doc(w.runtime.engine.get_run(sent.run_id))
        assert _outcome(w, f"processed/{sent.run_id}.discard") == "not_discardable"
        assert _outcome(w, "processed/employees-0000000000.discard") == "unknown_run"
        assert w.names("approvals") == {
            f"processed/{sent.run_id}.discard",
            "processed/employees-0000000000.discard",
        }


@pytest.mark.azurite
def test_a_marker_that_is_not_understood_is_filed_and_changes_nothing(
    make_world: Any, tmp_path: Path
) -> None:
    with make_world() as w:
        held = held_run(w, tmp_path)
        calls = len(w.bulk_calls())
        w.service.get_blob_client("approvals", held.run_id).upload_blob(b"please discard")
        assert _pass(w) == [(held.run_id, "invalid", "invalid_marker")]
        assert _state(w, held.run_id) == "held"
        assert _outcome(w, f"processed/{held.run_id}") == "invalid_marker"
        w.tick(minutes=15)
        assert _state(w, held.run_id) == "held"
        assert len(w.bulk_calls()) == calls
