"""Progress and the estimated finish of a run that takes more than a day's budget."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from connector.pacing import DailyBudget
from connector.sync.progress import calls_left_today, run_progress

T0 = datetime(2026, 12, 5, 6, 0, tzinfo=UTC)


def test_a_ten_day_load_on_its_third_day() -> None:
    p = run_progress(
        calls_left=15_400,
        records_sent=230_000,
        records_total=1_000_000,
        daily_budget=2_000,
        left_today=0,
        first_sent_at=T0,
        now=T0 + timedelta(days=2, hours=1),
    )
    assert p is not None
    assert (p.day, p.days) == (3, 11)
    assert p.text == "3 of 11 days, 23 % sent, done ~2026-12-15"


def test_a_run_that_fits_into_todays_budget_has_no_progress_line() -> None:
    p = run_progress(
        calls_left=100,
        records_sent=0,
        records_total=5_000,
        daily_budget=2_000,
        left_today=1_500,
        first_sent_at=None,
        now=T0,
    )
    assert p is None


def test_a_run_started_yesterday_finishing_today_still_shows_its_day() -> None:
    p = run_progress(
        calls_left=10,
        records_sent=1_950,
        records_total=2_450,
        daily_budget=40,
        left_today=40,
        first_sent_at=T0,
        now=T0 + timedelta(days=1),
    )
    assert p is not None
    assert p.text == "2 of 2 days, 79 % sent, done ~2026-12-06"
    assert p.to_doc()["doneBy"] == "2026-12-06"


def test_calls_left_today_reads_the_budgets_rolling_buckets() -> None:
    now = T0
    counts = {
        DailyBudget.bucket_key(now - timedelta(hours=30)): 500,  # outside the 24 hours
        DailyBudget.bucket_key(now - timedelta(hours=3)): 1_200,
        DailyBudget.bucket_key(now): 100,
    }
    assert calls_left_today(counts, 2_000, now) == 700
    assert calls_left_today(counts, 1_000, now) == 0
