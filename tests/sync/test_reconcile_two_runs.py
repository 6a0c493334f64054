"""Reconciling two runs that sent the same records, in one pass after both were sent."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from connector.clock import FakeClock
from connector.sample import churn_extract, generate_extract
from connector.state.local import LocalStateStore
from tests.sync.emuworld import emu_world


def local_store(tmp: Path) -> Callable[[FakeClock], Any]:
    return lambda clock: LocalStateStore(tmp / "state", clock=clock, heartbeat=False)


def test_one_reconcile_after_two_syncs_classifies_each_run_by_its_own_sends(
    tmp_path: Path,
) -> None:
    day1 = tmp_path / "hr_20260105.csv"
    day2 = tmp_path / "hr_20260106.csv"
    generate_extract(day1, 200, seed=11)
    churn_extract(day1, day2, churn=0.08, seed=12)
    with emu_world(local_store(tmp_path)) as w:
        first = w.sync(day1)
        assert first.planned["joiners"] == 200
        w.clock.advance(3600)  # day 2 arrives before day 1 was reconciled
        second = w.sync(day2)
        assert second.state == "uploaded", second
        sent2 = sum(second.planned.get(k, 0) for k in ("joiners", "movers", "leavers"))
        assert sent2 > 0
        by_run = {s.run_id: s for s in w.reconcile(timedelta(minutes=15))}
        one, two = by_run[first.run_id], by_run[second.run_id]
        # Day 1 created everyone; the later sends' entries belong to day 2.
        assert one.state == "done", one
        assert one.outcomes == {"created": 200}, one.outcomes
        assert two.state == "done", two
        assert sum(two.outcomes.values()) == sent2
        assert set(two.outcomes) <= {"created", "updated", "disabled"}, two.outcomes
        assert two.outcomes.get("created", 0) == second.planned.get("joiners", 0)
        assert two.outcomes.get("disabled", 0) >= second.planned.get("leavers", 0)


def test_entries_from_the_next_send_on_belong_to_the_next_run() -> None:
    from datetime import UTC, datetime

    from connector.reconcile import LogEntry, Outcome, SentRecord, reconcile

    t0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)

    def at(minutes: int) -> datetime:
        return t0 + timedelta(minutes=minutes)

    entries = [
        LogEntry("a", at(2), "x1", "create", "success"),
        LogEntry("b", at(62), "x1", "update", "success"),
    ]
    skew = timedelta(minutes=5)
    first = reconcile(
        [SentRecord("x1", at(0), action="joiner", before=at(60))],
        entries,
        now=at(120),
        skew=skew,
    )
    assert first.outcomes["x1"].outcome is Outcome.CREATED
    assert first.outcomes["x1"].log_id == "a"
    # The first send's own entry landing after the next send (minus skew) is not taken.
    late = reconcile(
        [SentRecord("x1", at(0), action="joiner", before=at(60))],
        [LogEntry("c", at(56), "x1", "create", "success")],
        now=at(200),
        skew=skew,
    )
    assert late.outcomes["x1"].outcome is Outcome.UNCONFIRMED
    second = reconcile(
        [SentRecord("x1", at(60), action="update", after=at(2))], entries, now=at(120), skew=skew
    )
    assert second.outcomes["x1"].log_id == "b"
