"""Runs that take more than a day's call budget, against the emulator's daily quota and a
clock crossing several days: leavers first, a newer full extract replacing the unsent
remainder, and the progress line with its estimated finish."""

from __future__ import annotations

import asyncio
import csv
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from benchmarks.emuworld import (
    EmuWorld,
    actual_directory,
    emu_world,
    expected_directory,
    first_group,
    local_store,
    log_order,
    read_rows,
)
from connector.cli.render import print_summary
from connector.sample import generate_extract
from connector.sync.journal_doc import journal_to_doc

DAY = 25 * 3600  # past the rolling 24 hours of the hour the budget was spent in
BUDGET = 2


def write(rows: list[list[str]], header: list[str], path: Path) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows([header, *rows])
    return path


def extracts(tmp: Path) -> tuple[list[str], list[list[str]]]:
    sample = tmp / "sample.csv"
    generate_extract(sample, 400, seed=4)
    with sample.open(encoding="utf-8", newline="") as fh:
        header, *body = list(csv.reader(fh))
    return header, body


def world(tmp: Path) -> Any:
    return emu_world(
        local_store(tmp),
        emulator={"daily_quota": BUDGET},
        daily_call_budget=BUDGET,
        max_changes_percent="null",
        max_leavers_percent="null",
    )


def report(w: EmuWorld, run_id: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(w.store.read_artifact(f"employees/{run_id}/report.json"))
    return doc


def days_until_done(w: EmuWorld, limit: int = 10) -> int:
    for day in range(1, limit + 1):
        w.clock.advance(DAY)
        asyncio.run(w.engine.resume_waiting())
        w.emu.wait_idle()
        if not [r for r in w.engine.list_runs() if r.state == "uploading"]:
            return day
    raise AssertionError("still uploading")


def test_leavers_are_disabled_on_the_first_day_of_a_multi_day_run(tmp_path: Path) -> None:
    header, body = extracts(tmp_path)
    day1 = write(body[:100], header, tmp_path / "hr_20260105.csv")  # 2 batches: fits
    leavers = [r[0] for r in body[90:100]]
    day2 = write(body[:90] + body[100:], header, tmp_path / "hr_20260106.csv")  # 7 batches
    with world(tmp_path) as w:
        first = w.sync(day1)
        assert first.state == "uploaded"
        assert first.send_order is None  # it fit into the day's budget: plan order kept
        w.reconcile()

        w.clock.advance(DAY)
        big = w.sync(day2)
        assert big.state == "uploading"
        assert big.waiting_reason == "quota"
        assert big.batches_done == BUDGET
        assert big.send_order is not None
        assert big.send_order.startswith("sent in priority order: 27 leavers/deactivations first")
        # day one of the run: every leaver is already disabled in the directory
        users = w.emu.users()
        assert all(users[ext]["accountEnabled"] is False for ext in leavers)
        assert big.progress is not None
        done_by = (w.clock.now() + timedelta(days=3)).date().isoformat()
        assert big.progress["text"] == f"1 of 4 days, 32 % sent, done ~{done_by}"
        doc = report(w, big.run_id)
        assert doc["sendOrder"] == big.send_order
        assert doc["progress"] == big.progress["text"]
        page = w.store.read_artifact(f"employees/{big.run_id}/report.html").decode()
        assert "Sent in priority order: 27 leavers/deactivations first" in page
        console = Console(width=400, highlight=False)
        with console.capture() as cap:
            print_summary(big, console)
        assert f"order:   {big.send_order}" in cap.get()
        assert f"days:    1 of 4 days, 32 % sent, done ~{done_by}" in cap.get()

        assert days_until_done(w) == 3  # days 2, 3 and 4 of the run
        done = w.engine.get_run(big.run_id)
        assert done.state.value == "uploaded"
        assert w.engine.list_runs()[-1].progress is None
        w.reconcile()
        assert actual_directory(w.emu) == expected_directory([day1, day2])


def test_deactivations_waiting_for_their_managers_are_not_overtaken_by_joiners(
    tmp_path: Path,
) -> None:
    # 208 inactive records and their 332 managers: 11 batches, and 12 calls a day. A batch
    # of deactivations waiting for its managers' batch must not let joiners' batches
    # spend the day's calls (they did: 40 deactivations were left for day 2).
    extract = tmp_path / "hr_20260105.csv"
    generate_extract(extract, 6000, seed=4)
    with emu_world(
        local_store(tmp_path),
        emulator={"daily_quota": 12},
        daily_call_budget=12,
        max_leavers="null",
    ) as w:
        run = w.sync(extract)
        assert run.batches_done == 12
        inactive, managers = first_group(read_rows(extract))
        order = [ext for ext, _ in log_order(w.emu)]
        assert inactive <= set(order)  # every one of them processed on day 1
        last = max(k for k, ext in enumerate(order) if ext in inactive)
        joiners_before = [e for e in order[: last + 1] if e not in inactive | managers]
        assert len(joiners_before) < 50  # at most the batch where the groups meet


def test_a_run_that_fits_into_the_days_budget_keeps_its_order(tmp_path: Path) -> None:
    header, body = extracts(tmp_path)
    day1 = write(body[:100], header, tmp_path / "hr_20260105.csv")
    with world(tmp_path) as w:
        run = w.sync(day1)
        assert run.state == "uploaded"
        assert run.send_order is None
        assert "priority" not in json.dumps(report(w, run.run_id)["timeline"])


def test_a_newer_full_extract_on_day_two_replaces_the_unsent_remainder(tmp_path: Path) -> None:
    header, body = extracts(tmp_path)
    day1 = write(body[:100], header, tmp_path / "hr_20260105.csv")
    day2_rows = body[:90] + body[100:]
    day2 = write(day2_rows, header, tmp_path / "hr_20260106.csv")
    changed = {body[k][0] for k in (100, 101, 398)}
    gone = {body[k][0] for k in (80, 81)}
    dept = header.index("Department")
    day3_rows = [
        [*r[:dept], "Moved", *r[dept + 1 :]] if r[0] in changed else r
        for r in day2_rows
        if r[0] not in gone
    ]
    day3 = write(day3_rows, header, tmp_path / "hr_20260107.csv")
    with emu_world(
        local_store(tmp_path), emulator={"daily_quota": BUDGET}, daily_call_budget=BUDGET
    ) as w:
        w.sync(day1)
        w.reconcile()
        w.clock.advance(DAY)
        held = w.sync(day2)
        assert held.state == "held"  # 300 joiners on 99 people: the guard asks first
        older = asyncio.run(w.engine.approve(held.run_id))
        assert older.waiting_reason == "quota"
        journal = w.engine.get_run(older.run_id)
        members = w.engine.runs.batch_members(journal)
        acked = {ext for b in journal.batches for ext in members[b.index]}
        assert len(acked) == 100

        w.clock.advance(DAY)
        newer = w.sync(day3)
        # the remainder passed the guard with the older run: only what day 3 changes counts
        assert newer.state == "uploading", newer.held_reason
        assert newer.planned["leavers"] == 2
        doc = journal_to_doc(w.engine.get_run(older.run_id))
        assert doc["state"] == "uploaded"
        assert "superseded by newer extract run " + newer.run_id in doc["supersededReason"]
        assert report(w, older.run_id)["status"] == "uploaded (superseded)"
        timeline = [e.detail for e in w.engine.get_run(newer.run_id).timeline]
        assert any("guard asked again without the" in d for d in timeline)
        plan = {op.external_id for op in w.engine.runs.load_plan(w.engine.get_run(newer.run_id))}
        assert not plan & (acked - changed - gone)  # nothing acknowledged is sent again
        assert plan >= {ext for ext in changed if ext not in acked}

        days_until_done(w)
        runs = {r.run_id: r for r in w.reconcile(timedelta(hours=1))}
        assert runs[older.run_id].state == "done"
        assert runs[newer.run_id].state == "done"
        assert actual_directory(w.emu) == expected_directory([day1, day3])


def test_the_newer_runs_timeline_says_which_run_it_supersedes(tmp_path: Path) -> None:
    header, body = extracts(tmp_path)
    day1 = write(body[:100], header, tmp_path / "hr_20260105.csv")
    day2 = write(body[:300], header, tmp_path / "hr_20260106.csv")
    day3 = write(body[:310], header, tmp_path / "hr_20260107.csv")
    with world(tmp_path) as w:
        w.sync(day1)
        w.reconcile()
        w.clock.advance(DAY)
        older = w.sync(day2)
        assert older.waiting_reason == "quota"
        w.clock.advance(DAY)
        newer = w.sync(day3)
        started = [e.detail for e in w.engine.get_run(newer.run_id).timeline]
        # it said it was superseded by itself ("superseded by newer extract run <newer>")
        assert not any(newer.run_id in d for d in started)
        assert any(d.startswith(f"supersedes run {older.run_id}: ") for d in started)
        ended = [e.detail for e in w.engine.get_run(older.run_id).timeline]
        assert any(f"superseded by newer extract run {newer.run_id}" in d for d in ended)


class Crash(Exception):
    pass


def test_a_priority_plan_rewrite_interrupted_before_its_batches_is_done_again(
    tmp_path: Path,
) -> None:
    header, body = extracts(tmp_path)
    day1 = write(body[:100], header, tmp_path / "hr_20260105.csv")
    day2 = write(body[:90] + body[100:], header, tmp_path / "hr_20260106.csv")
    with world(tmp_path) as w:
        w.sync(day1)
        w.reconcile()
        w.clock.advance(DAY)
        runs = w.engine.runs
        real = runs._write_gz

        def crash_on_batches(journal: Any, name: str, *args: Any, **kw: Any) -> Any:
            if name == "batches.json.gz" and journal.send_order:
                runs._write_gz = real  # type: ignore[method-assign]
                raise Crash(name)
            return real(journal, name, *args, **kw)

        runs._write_gz = crash_on_batches  # type: ignore[method-assign]
        with pytest.raises(Crash):
            w.sync(day2)
        [run] = [r for r in w.engine.list_runs() if r.file_name == day2.name]
        assert run.batches_done == 0
        asyncio.run(w.engine.resume_waiting())
        journal = w.engine.get_run(run.run_id)
        assert len(journal.batches) == BUDGET
        members = [ext for batch in runs.batch_members(journal) for ext in batch]
        assert members == [op.external_id for op in runs.load_plan(journal)]
        days_until_done(w)
        w.reconcile(timedelta(hours=1))
        assert actual_directory(w.emu) == expected_directory([day1, day2])
