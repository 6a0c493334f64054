"""The same end-to-end flow with the state on Blob Storage (Azurite started by the tests)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from benchmarks.emuworld import actual_directory, emu_world, expected_directory
from connector.clock import FakeClock
from connector.sample import churn_extract, generate_extract
from connector.state.blob import BlobStateStore


@pytest.mark.azurite
def test_three_extracts_with_blob_state(azurite: str, tmp_path: Path) -> None:
    prefix = uuid.uuid4().hex[:8]

    def store(clock: FakeClock) -> BlobStateStore:
        return BlobStateStore.from_connection_string(
            azurite,
            state_container=f"state{prefix}",
            reports_container=f"reports{prefix}",
            clock=clock,
            heartbeat=False,
        )

    day1 = tmp_path / "hr_20260105.csv"
    day2 = tmp_path / "hr_20260106.csv"
    day3 = tmp_path / "hr_20260107.csv"
    generate_extract(day1, 150, seed=11)
    churn_extract(day1, day2, churn=0.06, seed=11)
    generate_extract(day3, 40, seed=11)  # a truncated file: held
    with emu_world(store) as w:
        assert w.sync(day1).state == "uploaded"
        w.reconcile()
        w.clock.advance(86400)
        second = w.sync(day2)
        assert second.state == "uploaded"
        again = w.sync(day2)
        assert again.duplicate
        [rec] = w.reconcile()
        assert rec.state == "done"
        w.clock.advance(86400)
        held = w.sync(day3)
        assert held.state == "held"
        assert actual_directory(w.emu) == expected_directory([day1, day2])
        assert w.engine.discard(held.run_id).state == "discarded"
        report = w.store.read_artifact(f"employees/{second.run_id}/report.html")
        assert report.startswith(b"<!DOCTYPE html>")
        assert [r.state for r in w.engine.list_runs()] == ["done", "done", "discarded"]
