"""What a run stores: a small journal, and the plan, batches and rows next to it."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from connector.errors import RunError
from connector.sync.plans import batches_of
from connector.sync.run_store import approval_key, discard_key, run_key
from tests.sync.fakes import people
from tests.sync.world import World


def test_journal_holds_counters_and_batch_metadata_only(tmp_path: Path) -> None:
    w = World(tmp_path)
    rows = people(300)
    rows[7] = (rows[7][0], "", *rows[7][2:])  # one rejected row
    run = w.sync("hr_20260302.csv", rows)
    doc = w.engine.get_run(run.run_id).to_doc()
    text = json.dumps(doc)
    assert "lines" not in doc
    assert "E0001" not in text
    assert "E0300" not in text
    assert doc["rejectedCount"] == 1
    report = json.loads(w.store.read_artifact(f"employees/{run.run_id}/report.json"))
    assert report["rejected"][0]["line"] == 9


def test_batch_members_are_written_once_with_the_plan(tmp_path: Path) -> None:
    w = World(tmp_path)
    run = w.sync("hr_20260302.csv", people(120))
    members = json.loads(
        gzip.decompress(w.store.read_artifact(f"employees/{run.run_id}/batches.json.gz"))
    )
    journal = w.engine.get_run(run.run_id)
    plan = w.engine.runs.load_plan(journal)
    assert members == [list(p.external_ids) for p in batches_of(plan)]
    assert [len(m) for m in members] == [50, 50, 20]
    assert w.engine.runs.batch_members(journal) == members


def test_runs_stored_without_batch_members_work_them_out_from_the_plan(tmp_path: Path) -> None:
    w = World(tmp_path)
    run = w.sync("hr_20260302.csv", people(120))
    journal = w.engine.get_run(run.run_id)
    expected = w.engine.runs.batch_members(journal)
    path = tmp_path / "state" / "reports" / "employees" / run.run_id / "batches.json.gz"
    path.unlink()  # as a run planned by an earlier version left it
    assert w.engine.runs.batch_members(journal) == expected
    [rec] = w.reconcile()
    assert rec.outcomes == {"created": 120}


def test_keys_of_a_run() -> None:
    assert run_key("employees", "employees-abc") == "runs/employees/employees-abc"
    assert approval_key("employees-abc") == "approvals/employees-abc"
    assert discard_key("employees-abc") == "discards/employees-abc"


def test_a_saved_journal_reads_back_with_its_etag(tmp_path: Path) -> None:
    w = World(tmp_path)
    run = w.sync("hr_20260302.csv", people(10))
    runs = w.engine.runs
    journal = runs.require("employees", run.run_id)
    assert journal.etag is not None
    got = w.store.get_document(run_key("employees", run.run_id))
    assert got is not None
    assert got[0] == journal.to_doc()
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
