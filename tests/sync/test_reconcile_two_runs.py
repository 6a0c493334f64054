"""Reconciling two runs that sent the same records, in one pass after both were sent."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from benchmarks.emuworld import emu_world
from connector.clock import FakeClock
from connector.reconcile import SentRecord, reconcile
from connector.sample import churn_extract, generate_extract
from connector.state.local import LocalStateStore
from tests.sync.fakes import config, people
from tests.sync.world import T0, World


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

    from connector.reconcile import LogEntry, Outcome, SentRecord, reconcile_runs

    t0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)

    def at(minutes: int) -> datetime:
        return t0 + timedelta(minutes=minutes)

    sends = [
        SentRecord("x1", at(0), action="joiner", run_id="day1"),
        SentRecord("x1", at(60), action="mover", run_id="day2"),
    ]
    entries = [
        LogEntry("a", at(2), "x1", "create", "success"),
        LogEntry("b", at(62), "x1", "update", "success"),
    ]
    skew = timedelta(minutes=5)
    both = reconcile_runs(sends, entries, now=at(120), skew=skew)
    assert both["day1"].outcomes["x1"].log_id == "a"
    assert both["day1"].outcomes["x1"].outcome is Outcome.CREATED
    assert both["day2"].outcomes["x1"].log_id == "b"
    # The first send's own entry landing within the skew before the next send is still
    # the first send's (the old window dropped it and left day 1 unconfirmed).
    late = reconcile_runs(
        sends, [LogEntry("c", at(56), "x1", "create", "success")], now=at(200), skew=skew
    )
    assert late["day1"].outcomes["x1"].log_id == "c"
    assert late["day2"].outcomes["x1"].outcome is Outcome.UNCONFIRMED


def test_sent_record_after_bound_excludes_the_previous_entry() -> None:
    sent_at = T0 + timedelta(minutes=9)
    old_entry = {
        "id": "log-1",
        "activityDateTime": (T0 + timedelta(minutes=6)).isoformat(),
        "sourceIdentity": {"id": "E1"},
        "provisioningAction": "create",
        "provisioningStatusInfo": {"status": "success"},
    }
    rec = SentRecord("E1", sent_at, action="mover", after=T0 + timedelta(minutes=6))
    out = reconcile([rec], [old_entry], now=sent_at + timedelta(minutes=1))
    assert out.outcomes["E1"].outcome.value == "pending"
    plain = SentRecord("E1", sent_at, action="mover")
    out = reconcile([plain], [old_entry], now=sent_at + timedelta(minutes=1))
    assert out.outcomes["E1"].outcome.value == "created"  # what the bound prevents


def test_engine_does_not_match_the_previous_runs_log_entry(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.sync("hr_20260302.csv", people(3))
    w.reconcile(timedelta(minutes=7))  # entries at +6 min: run 1 done
    w.clock.advance(120)  # 9 min after the first send
    w.service.silent.add("E0002")
    day2 = people(3)
    day2[1] = (day2[1][0], day2[1][1], "Renamed", *day2[1][3:])
    w.config = config(max_changes_percent=1000)
    w.engine = w.new_engine()
    run2 = w.sync("hr_20260302b.csv", day2)
    runs = {r.run_id: r for r in w.reconcile(timedelta(minutes=1))}
    assert runs[run2.run_id].outcomes == {"pending": 1}
