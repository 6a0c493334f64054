"""Run journals in the store: small, read back with their etag, acknowledgements sealed in
chunks, nothing written once the lock is lost."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from connector.errors import LockLostError, RunError, StateError
from connector.sync import journal_store
from connector.sync.acks import AckedBatch
from connector.sync.journal_doc import journal_to_doc
from connector.sync.run_keys import run_key
from tests.sync.fakes import people
from tests.sync.world import World


def test_journal_holds_counters_and_batch_metadata_only(tmp_path: Path) -> None:
    w = World(tmp_path)
    rows = people(300)
    rows[7] = (rows[7][0], "", *rows[7][2:])  # one rejected row
    run = w.sync("hr_20260302.csv", rows)
    doc = journal_to_doc(w.engine.get_run(run.run_id))
    text = json.dumps(doc)
    assert "lines" not in doc
    assert "E0001" not in text
    assert "E0300" not in text
    assert doc["rejectedCount"] == 1
    report = json.loads(w.store.read_artifact(f"employees/{run.run_id}/report.json"))
    assert report["rejected"][0]["line"] == 9


def test_a_saved_journal_reads_back_with_its_etag(tmp_path: Path) -> None:
    w = World(tmp_path)
    run = w.sync("hr_20260302.csv", people(10))
    runs = w.engine.runs
    journal = runs.require("employees", run.run_id)
    assert journal.etag is not None
    got = w.store.get_document(run_key("employees", run.run_id))
    assert got is not None
    assert got[0] == journal_to_doc(journal)
    journal.event(w.clock.now(), "a note")
    runs.save(journal)
    again = runs.require("employees", run.run_id)
    assert again.timeline[-1].detail == "a note"
    assert again.etag == journal.etag
    assert [j.run_id for j in runs.runs("employees")] == [run.run_id]


def test_an_unknown_run_is_a_run_error(tmp_path: Path) -> None:
    w = World(tmp_path)
    with pytest.raises(RunError, match="no run employees-x"):
        w.engine.runs.require("employees", "employees-x")
    assert w.engine.runs.load("employees", "employees-x") is None


# -- acknowledged batches in sealed chunks -------------------------------------------------


def _inline_sizes(w: World) -> list[int]:
    """Wrap the store: the number of inline acknowledgements in every journal written."""
    sizes: list[int] = []
    put = w.store.put_document

    def spy(key: str, doc: Any, **kw: Any) -> str:
        if key.startswith("runs/"):
            sizes.append(len(doc.get("batches") or []))
        return put(key, doc, **kw)

    w.store.put_document = spy  # type: ignore[method-assign]
    return sizes


def _chunk_files(w: World, run_id: str) -> list[str]:
    return w.store.list_artifacts(f"employees/{run_id}/acks/")


def test_a_long_run_keeps_at_most_a_chunk_of_acknowledgements_in_its_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(journal_store, "ACK_CHUNK_SIZE", 2)
    w = World(tmp_path)
    sizes = _inline_sizes(w)
    run = w.sync("hr_20260302.csv", people(320))  # 7 batches
    assert max(sizes) <= 2
    doc = w.store.get_document(run_key("employees", run.run_id))
    assert doc is not None
    assert len(doc[0]["batches"]) == 1
    assert doc[0]["ackChunks"]["chunks"] == 3
    assert len(_chunk_files(w, run.run_id)) == 3
    journal = w.engine.get_run(run.run_id)
    assert sorted(b.index for b in journal.batches) == list(range(7))
    assert journal.acked_indices == set(range(7))
    [rec] = w.reconcile()
    assert rec.outcomes == {"created": 320}


def test_a_journal_with_every_acknowledgement_inline_loads_and_is_sealed_on_its_next_save(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = World(tmp_path)
    run = w.sync("hr_20260302.csv", people(320))  # written with all 7 inline
    before = w.engine.get_run(run.run_id)
    assert "ackChunks" not in journal_to_doc(before)
    acks = list(before.batches)
    monkeypatch.setattr(journal_store, "ACK_CHUNK_SIZE", 2)
    w.engine.runs.save(before)
    doc = w.store.get_document(run_key("employees", run.run_id))
    assert doc is not None
    assert doc[0]["ackChunks"]["acks"] == 6
    after = w.engine.get_run(run.run_id)
    assert list(after.batches) == acks
    [rec] = w.reconcile()
    assert rec.outcomes == {"created": 320}


def test_the_old_fixture_journal_loads_saves_and_reads_back_its_acknowledgements(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(journal_store, "ACK_CHUNK_SIZE", 2)
    w = World(tmp_path)
    doc = json.loads((Path(__file__).parent / "fixtures" / "journal_done.json").read_text())
    w.store.put_document(run_key(doc["source"], doc["runId"]), doc, if_none_match=True)
    journal = w.engine.runs.require(doc["source"], doc["runId"])
    w.engine.runs.save(journal)
    again = w.engine.runs.require(doc["source"], doc["runId"])
    assert [b.to_doc() for b in again.batches] == doc["batches"]
    assert len(again.batches.tail) == 1


class _Lost:
    lost = True


def _synced_inline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int) -> tuple[World, str]:
    """A run of 7 batches saved inline, then the chunk size set to ``size``."""
    w = World(tmp_path)
    run = w.sync("hr_20260302.csv", people(320))
    monkeypatch.setattr(journal_store, "ACK_CHUNK_SIZE", size)
    return w, run.run_id


def test_no_chunk_is_written_once_the_lock_is_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    w, run_id = _synced_inline(tmp_path, monkeypatch, 2)
    journal = w.engine.get_run(run_id)
    journal.lock = _Lost()  # type: ignore[assignment]
    with pytest.raises(LockLostError):
        w.engine.runs.save(journal)
    assert _chunk_files(w, run_id) == []
    assert "ackChunks" not in journal_to_doc(w.engine.get_run(run_id))


def test_a_save_stopped_between_a_chunk_and_the_journal_goes_on_from_the_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    w, run_id = _synced_inline(tmp_path, monkeypatch, 4)
    acks = list(w.engine.get_run(run_id).batches)
    journal = w.engine.get_run(run_id)
    journal.batches.tail[0] = AckedBatch(0, 50, journal.batches[0].sent_at, "other", {})
    put = w.store.put_document

    def fail(key: str, doc: Any, **kw: Any) -> str:
        raise StateError("the journal write failed")

    w.store.put_document = fail  # type: ignore[method-assign]
    with pytest.raises(StateError):
        w.engine.runs.save(journal)  # its chunk is written, the journal is not
    w.store.put_document = put  # type: ignore[method-assign]
    assert len(_chunk_files(w, run_id)) == 1
    again = w.engine.get_run(run_id)
    assert list(again.batches) == acks  # the journal says what is durable
    w.engine.runs.save(again)
    assert len(_chunk_files(w, run_id)) == 2  # the first chunk, differing, is left alone
    assert list(w.engine.get_run(run_id).batches) == acks
