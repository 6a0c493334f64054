"""Manager references end to end: the emulator resolves a manager only against users it
has already processed (Entra's rule), with the engine's full window of requests."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.emuworld import emu_world, read_rows
from connector.clock import FakeClock
from connector.sample import generate_extract
from connector.state.local import LocalStateStore
from connector.sync.journal_doc import journal_to_doc


def local_store(tmp: Path) -> Callable[[FakeClock], Any]:
    return lambda clock: LocalStateStore(tmp / "state", clock=clock, heartbeat=False)


def rewrite(src: Path, dst: Path, rows: Callable[[list[list[str]]], list[list[str]]]) -> Path:
    with src.open(encoding="utf-8", newline="") as fh:
        header, *body = list(csv.reader(fh))
    with dst.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows([header, *rows(body)])
    return dst


def managers_in_directory(users: dict[str, Any]) -> dict[str, str | None]:
    """The manager actually set on each user (a skipped reference is not set)."""
    return {ext: u["manager"] for ext, u in users.items()}


def expected_managers(path: Path) -> dict[str, str | None]:
    return {ext: r["ManagerId"] or None for ext, r in read_rows(path).items()}


def test_first_load_listed_reports_first_sets_every_manager(tmp_path: Path) -> None:
    sample = tmp_path / "sample.csv"
    generate_extract(sample, 240, seed=3)
    day1 = rewrite(sample, tmp_path / "hr_20260105.csv", lambda body: body[::-1])
    with emu_world(local_store(tmp_path)) as w:
        run = w.sync(day1)
        assert run.state == "uploaded"
        assert run.batches_total == 5  # ceil(240 / 50): no extra request for the ordering
        [rec] = w.reconcile()
        assert rec.state == "done"
        assert rec.outcomes == {"created": 240}
        users = w.emu.users()
        assert managers_in_directory(users) == expected_managers(day1)
        assert not [ext for ext, u in users.items() if u["pendingManager"]]


def test_a_manager_hired_after_their_reports_is_set_by_an_automatic_resend(
    tmp_path: Path,
) -> None:
    sample = tmp_path / "sample.csv"
    generate_extract(sample, 120, seed=5)
    rows = read_rows(sample)
    # a manager with reports, missing from the first file (hired later in the HR system)
    late = next(
        ext
        for ext, r in rows.items()
        if r["ManagerId"] and sum(1 for x in rows.values() if x["ManagerId"] == ext) >= 2
    )
    reports = sorted(ext for ext, r in rows.items() if r["ManagerId"] == late)
    day1 = rewrite(sample, tmp_path / "hr_20260105.csv", lambda b: [r for r in b if r[0] != late])
    day2 = rewrite(sample, tmp_path / "hr_20260106.csv", lambda b: b)
    with emu_world(local_store(tmp_path), max_changes_percent="null") as w:
        first = w.sync(day1)
        [rec] = w.reconcile()
        assert rec.outcomes == {"created": 119 - len(reports), "skipped": len(reports)}
        assert all(w.emu.users()[ext]["manager"] is None for ext in reports)

        w.clock.advance(86400)
        second = w.sync(day2)
        assert second.planned["joiners"] == 1
        assert second.planned["unchanged"] == 119
        passed = w.reconcile()
        assert [s.run_id for s in passed] == [second.run_id, "employees-refs1"]
        assert passed[0].outcomes == {"created": 1}
        assert passed[1].planned == {"references": len(reports)}
        w.emu.wait_idle()
        [done] = w.reconcile()
        assert done.run_id == "employees-refs1"
        assert done.state == "done"
        assert done.outcomes == {"updated": len(reports)}
        users = w.emu.users()
        assert managers_in_directory(users) == expected_managers(day2)
        assert not [ext for ext, u in users.items() if u["pendingManager"]]
        parent = journal_to_doc(w.engine.get_run(first.run_id))
        assert parent["referenceResends"] == {"employees-refs1": len(reports)}
        assert w.reconcile() == []  # nothing left to re-send
