"""A run's plan in the store: its batch members written once with it, or worked out from it."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from connector.sync.plans import batches_of
from tests.sync.fakes import people
from tests.sync.world import World


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
