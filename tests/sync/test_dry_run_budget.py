"""A dry run says how the run would be sent against today's call budget: whether it fits,
else the priority order, the days and the finish the real run then shows; nothing stored."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from rich.console import Console

from benchmarks.emuworld import emu_world
from connector.cli.render import print_summary
from connector.sync.summary import RunSummary
from tests.sync.test_multi_day import BUDGET, DAY, extracts, local_store, world, write


def state_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def printed(summary: RunSummary) -> str:
    console = Console(width=400, highlight=False)
    with console.capture() as cap:
        print_summary(summary, console)
    return cap.get()


def test_a_dry_run_over_the_budget_shows_the_order_and_days_the_real_run_then_takes(
    tmp_path: Path,
) -> None:
    header, body = extracts(tmp_path)
    day1 = write(body[:100], header, tmp_path / "hr_20260105.csv")
    day2 = write(body[:90] + body[100:], header, tmp_path / "hr_20260106.csv")
    with world(tmp_path) as w:
        w.sync(day1)
        w.reconcile()
        w.clock.advance(DAY)
        before = state_files(tmp_path / "state")
        dry = w.sync(day2, dry_run=True)
        assert state_files(tmp_path / "state") == before  # nothing stored, nothing sent
        forecast = dry.forecast
        assert forecast is not None
        assert not forecast.fits
        assert (forecast.calls_left_today, forecast.daily_budget) == (BUDGET, BUDGET)
        assert forecast.calls_needed == dry.batches_total > BUDGET
        assert dry.send_order == forecast.send_order
        assert forecast.send_order is not None
        assert forecast.send_order.startswith(
            "sent in priority order: 27 leavers/deactivations first"
        )
        assert next(g.group for g in forecast.groups) == "leavers"
        assert forecast.groups[0].day == 1  # every leaver is disabled on the first day
        assert forecast.days == 4
        done_by = (w.clock.now() + timedelta(days=3)).date()
        assert forecast.done_by == done_by
        text = printed(dry)
        assert f"budget:  {forecast.calls_needed} calls needed, 2 left today" in text
        assert "(daily budget 2): does not fit today" in text
        assert f"order:   {forecast.send_order}" in text
        assert "groups:  27 leavers/deactivations in call 1 (day 1), " in text
        assert f"days:    ~4 days, done ~{done_by.isoformat()}" in text

        real = w.sync(day2)
        assert real.state == "uploading"
        assert real.send_order == forecast.send_order
        assert real.batches_total == forecast.calls_in_order
        assert real.progress is not None
        assert real.progress["days"] == forecast.days
        assert real.progress["doneBy"] == forecast.done_by.isoformat()
        timeline = [e.detail for e in w.engine.get_run(real.run_id).timeline]
        assert forecast.order_note in timeline
        assert real.forecast is None  # a run that is sending has its progress instead


def test_a_dry_run_within_the_budget_says_it_fits_and_keeps_the_plan_order(
    tmp_path: Path,
) -> None:
    header, body = extracts(tmp_path)
    day1 = write(body[:100], header, tmp_path / "hr_20260105.csv")  # 2 batches: the budget
    with world(tmp_path) as w:
        dry = w.sync(day1, dry_run=True)
        forecast = dry.forecast
        assert forecast is not None
        assert forecast.fits
        assert (forecast.calls_needed, forecast.calls_left_today) == (BUDGET, BUDGET)
        assert forecast.send_order is None
        assert dry.send_order is None
        assert forecast.groups == ()
        assert (forecast.days, forecast.done_by) == (1, w.clock.now().date())
        text = printed(dry)
        assert "budget:  2 calls needed, 2 left today (daily budget 2): fits today" in text
        assert "order:" not in text
        assert "days:" not in text
        real = w.sync(day1)
        assert real.state == "uploaded"
        assert real.send_order is None
        assert real.progress is None


def test_a_dry_run_counts_the_calls_already_spent_today(tmp_path: Path) -> None:
    header, body = extracts(tmp_path)
    day1 = write(body[:50], header, tmp_path / "hr_20260105.csv")  # 1 call
    day2 = write(body[:100], header, tmp_path / "hr_20260106.csv")  # 1 call of joiners
    with world(tmp_path) as w:
        w.sync(day1)
        dry = w.sync(day2, dry_run=True)  # the same day: one call of two left
        assert dry.forecast is not None
        assert dry.forecast.calls_left_today == BUDGET - 1
        assert dry.forecast.fits


def test_a_held_run_that_would_not_fit_says_how_approving_it_would_send_it(
    tmp_path: Path,
) -> None:
    header, body = extracts(tmp_path)
    day1 = write(body[:100], header, tmp_path / "hr_20260105.csv")
    day2 = write(body[:90] + body[100:], header, tmp_path / "hr_20260106.csv")
    with emu_world(
        local_store(tmp_path), emulator={"daily_quota": BUDGET}, daily_call_budget=BUDGET
    ) as w:
        w.sync(day1)
        w.reconcile()
        w.clock.advance(DAY)
        held = w.sync(day2)
        assert held.state == "held"  # 300 joiners on 99 people: the guard asks first
        journal = w.engine.get_run(held.run_id)
        forecast = w.engine.reporter.held_forecast(journal)
        assert forecast is not None
        assert not forecast.fits
        assert forecast.held_text is not None
        assert forecast.held_text.startswith(
            f"Approved now, it would not fit today's budget: {forecast.calls_needed} calls"
            " needed, 2 left today (daily budget 2); sent in priority order: 27 leavers"
        )
        page = w.store.read_artifact(f"employees/{held.run_id}/report.html").decode()
        assert "Approved now, it would not fit today&#x27;s budget" in page
        approved = asyncio.run(w.engine.approve(held.run_id))
        assert approved.send_order == forecast.send_order
        assert approved.progress is not None
        assert approved.progress["days"] == forecast.days
        assert approved.progress["doneBy"] == forecast.done_by.isoformat()
        assert w.engine.reporter.held_forecast(w.engine.get_run(held.run_id)) is None
