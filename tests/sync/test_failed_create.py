"""A record whose create keeps failing is never counted as active or sent as a leaver."""

from __future__ import annotations

import asyncio
import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.emuworld import emu_world
from connector.clock import FakeClock
from connector.sample import Faults, generate_extract
from connector.state.local import LocalStateStore


def local_store(tmp: Path) -> Callable[[FakeClock], Any]:
    return lambda clock: LocalStateStore(tmp / "state", clock=clock, heartbeat=False)


def without(src: Path, dst: Path, drop: set[str]) -> None:
    with src.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        rows = [r for r in reader if r["EmployeeId"] not in drop]
        fields = reader.fieldnames
    assert fields is not None
    with dst.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def test_failed_create_after_operator_retries_stays_inactive(tmp_path: Path) -> None:
    day1 = tmp_path / "hr_20260105.csv"
    generate_extract(day1, 60, seed=21, faults=Faults(duplicate_upn=True))
    with emu_world(local_store(tmp_path)) as w:
        run = w.sync(day1)
        [rec] = w.reconcile()
        assert rec.outcomes.get("failed") == 1, rec.outcomes
        index = w.store.load_records("employees")
        [failed] = [k for k, e in index.entries.items() if e.outcome == "failed"]
        assert index.entries[failed].active is False
        parent = run.run_id
        for _ in range(2):
            retry = asyncio.run(w.engine.retry_failed(parent))
            w.emu.wait_idle()
            [rec] = w.reconcile()
            assert rec.run_id == retry.run_id
            assert rec.outcomes == {"failed": 1}, rec.outcomes
            entry = w.store.load_records("employees").entries[failed]
            assert entry.outcome == "failed"
            assert entry.active is False, "a create that failed again leaves nobody in Entra"
            parent = retry.run_id
        # The next file lacks the record: it is not a leaver (nobody to disable).
        w.clock.advance(86400)
        day2 = tmp_path / "hr_20260106.csv"
        without(day1, day2, {failed})
        calls = len(w.emu.calls())
        nxt = w.sync(day2)
        assert nxt.planned.get("leavers", 0) == 0, nxt.planned
        assert len(w.emu.calls()) == calls
