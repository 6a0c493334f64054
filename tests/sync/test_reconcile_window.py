"""Runs sent seconds apart each keep their own log entries (issue 13, item 4)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from benchmarks.emuworld import emu_world
from connector.sample import churn_extract, generate_extract
from tests.sync.test_reconcile_two_runs import local_store


def two_days(tmp: Path, rows: int, seed: int, churn: float) -> tuple[Path, Path]:
    day1, day2 = tmp / "hr_20260105.csv", tmp / "hr_20260106.csv"
    generate_extract(day1, rows, seed=seed)
    churn_extract(day1, day2, churn=churn, seed=seed + 1)
    return day1, day2


def test_two_syncs_one_second_apart_both_end_done_with_every_record_confirmed(
    tmp_path: Path,
) -> None:
    day1, day2 = two_days(tmp_path, 200, 11, 0.08)
    with emu_world(local_store(tmp_path)) as w:
        first = w.sync(day1)
        w.clock.advance(1)
        second = w.sync(day2)
        sent2 = sum(second.planned.get(k, 0) for k in ("joiners", "movers", "leavers"))
        assert sent2 > 0
        by_run = {s.run_id: s for s in w.reconcile()}
        one, two = by_run[first.run_id], by_run[second.run_id]
        assert one.state == "done", one
        assert one.outcomes == {"created": 200}, one.outcomes
        assert two.state == "done", two
        assert sum(two.outcomes.values()) == sent2
        assert set(two.outcomes) <= {"created", "updated", "disabled"}, two.outcomes


def test_three_syncs_under_five_minutes_apart_leave_no_record_unconfirmed(
    tmp_path: Path,
) -> None:
    days = [tmp_path / f"hr_2026010{d}.csv" for d in (5, 6, 7)]
    generate_extract(days[0], 150, seed=21)
    churn_extract(days[0], days[1], churn=0.1, seed=22)
    churn_extract(days[1], days[2], churn=0.1, seed=23)
    with emu_world(local_store(tmp_path)) as w:
        runs = []
        for path in days:
            runs.append(w.sync(path))
            w.clock.advance(90)
        w.reconcile()
        final = {s.run_id: s for s in w.reconcile(timedelta(hours=3))}
        for run in runs:
            summary = final.get(run.run_id) or next(
                s for s in w.engine.list_runs() if s.run_id == run.run_id
            )
            assert summary.state == "done", summary
            assert "unconfirmed" not in summary.outcomes, summary.outcomes
            assert "pending" not in summary.outcomes, summary.outcomes
            assert set(summary.outcomes) <= {"created", "updated", "disabled"}, summary.outcomes


def test_batches_resent_after_a_lost_answer_are_reported_created_not_skipped(
    tmp_path: Path,
) -> None:
    day1 = tmp_path / "hr_20260105.csv"
    generate_extract(day1, 1000, seed=31)
    with emu_world(local_store(tmp_path), emulator={"drop_after_rate": 0.1, "seed": 5}) as w:
        run = w.sync(day1)
        assert run.state == "uploaded", run
        [summary] = [s for s in w.reconcile() if s.run_id == run.run_id]
        assert summary.state == "done", summary
        assert summary.outcomes == {"created": 1000}, summary.outcomes
        failures = Path(w.engine.report_paths(run.run_id)["failures.csv"])
        assert len(failures.read_text(encoding="utf-8").splitlines()) <= 1


def test_two_syncs_at_the_same_instant_keep_the_runs_order(tmp_path: Path) -> None:
    day1, day2 = two_days(tmp_path, 120, 41, 0.1)
    with emu_world(local_store(tmp_path)) as w:
        first = w.sync(day1)
        second = w.sync(day2)  # the fake clock has not moved: same send times
        by_run = {s.run_id: s for s in w.reconcile()}
        assert by_run[first.run_id].outcomes == {"created": 120}, by_run[first.run_id]
        two = by_run[second.run_id]
        assert two.state == "done", two
        assert set(two.outcomes) <= {"created", "updated", "disabled"}, two.outcomes
