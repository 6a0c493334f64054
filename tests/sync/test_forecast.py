"""What a run not sent yet would ask of the daily call budget (pure)."""

from __future__ import annotations

from datetime import UTC, date, datetime

from connector.sync.forecast import GroupForecast, budget_forecast, fits_budget, send_day
from connector.sync.plans import PlannedOp, PlanOps
from connector.sync.priority import priority_note

NOW = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


def op(kind: str, ext: str, active: bool = True) -> PlannedOp:
    data = {"externalId": ext, "active": active, "userName": f"{ext}@example.com"}
    return PlannedOp(kind, ext, 2, b"\0" * 16, active, data)


def plan(joiners: int, movers: int, leavers: int) -> PlanOps:
    ops = [op("joiner", f"J{k}") for k in range(joiners)]
    ops += [op("mover", f"M{k}") for k in range(movers)]
    ops += [op("leaver", f"L{k}", active=False) for k in range(leavers)]
    return PlanOps.of(ops)


def test_a_run_fits_when_it_needs_no_more_calls_than_are_left() -> None:
    assert fits_budget(5, 5)
    assert not fits_budget(6, 5)


def test_the_day_of_a_call_counts_todays_calls_then_whole_days() -> None:
    assert send_day(2, left_today=2, daily_budget=2, now=NOW) == (1, date(2026, 12, 6))
    assert send_day(3, left_today=2, daily_budget=2, now=NOW) == (2, date(2026, 12, 7))
    assert send_day(7, left_today=0, daily_budget=2, now=NOW) == (5, date(2026, 12, 10))
    assert send_day(0, left_today=0, daily_budget=2, now=NOW) == (0, date(2026, 12, 6))


def test_a_plan_within_the_budget_keeps_its_order_and_finishes_today() -> None:
    forecast = budget_forecast(plan(60, 10, 5), left_today=2, daily_budget=2000, now=NOW)
    assert forecast.fits
    assert forecast.calls_needed == forecast.calls_in_order == 2
    assert forecast.send_order is None
    assert forecast.order_counts is None
    assert (forecast.days, forecast.done_by) == (1, NOW.date())


def test_a_plan_over_the_budget_sends_leavers_first_and_says_when_each_group_is_sent() -> None:
    forecast = budget_forecast(plan(120, 60, 30), left_today=1, daily_budget=2, now=NOW)
    assert not forecast.fits
    assert forecast.calls_needed == forecast.calls_in_order == 5
    counts = {"leavers": 30, "joiners": 120, "movers": 60}
    assert forecast.order_counts == counts
    assert forecast.send_order == (
        "sent in priority order: 30 leavers/deactivations first, then 120 joiners, then 60 movers"
    )
    assert forecast.order_note == priority_note(counts, 5, 1)
    assert forecast.groups == (
        GroupForecast("leavers", 30, 1, 1, 1),
        GroupForecast("joiners", 120, 1, 3, 2),
        GroupForecast("movers", 60, 4, 5, 3),
    )
    assert forecast.groups[1].text == "120 joiners in calls 1-3 (day 2)"
    assert (forecast.days, forecast.done_by) == (3, date(2026, 12, 8))
    assert forecast.days_text == "~3 days, done ~2026-12-08"


def test_a_held_runs_recorded_batch_count_is_what_is_compared() -> None:
    forecast = budget_forecast(
        plan(10, 0, 0), calls_needed=3, left_today=2, daily_budget=2, now=NOW
    )
    assert not forecast.fits
    assert forecast.calls_needed == 3
    assert forecast.calls_in_order == 1
