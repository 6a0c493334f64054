"""Progress and an estimated finish for runs that take more than a day's call budget.

Pure. Every bulk request is one call against the tenant's daily budget
(``daily_call_budget``; documented: "2,000 API calls per 24-hour period under the Entra
ID P1/P2 license, and 6,000 API calls under the Entra ID Governance license", Entra
"API-driven inbound provisioning concepts"), so a run with more batches left than today's budget
has left finishes on a later day. :func:`run_progress` turns the calls made and left,
the budget and the clock into "3 of 10 days, 38 % sent, done ~2026-12-14".

Assumed, and said so by the ``~``: every remaining batch takes one call (retries and
400 isolation take more), the budget is this run's alone (other sources of the tenant
share it), and a spent rolling budget frees up about a day after it was spent.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from connector.pacing import DailyBudget

__all__ = ["DAY", "RunProgress", "calls_left_today", "run_progress"]

DAY = timedelta(hours=24)


def calls_left_today(counts: Mapping[str, int], limit: int, now: datetime) -> int:
    """Calls still allowed in the rolling 24 hours, from the stored hourly call counts
    (the same buckets and window as :class:`connector.pacing.DailyBudget`)."""
    oldest = DailyBudget.bucket_key(now - DAY)
    used = sum(int(v) for k, v in counts.items() if k >= oldest)
    return max(0, limit - used)


@dataclass(frozen=True, slots=True)
class RunProgress:
    """Where a multi-day run stands."""

    day: int
    """The day of sending it is on (1: the day of its first send)."""
    days: int
    """How many days it takes in all, as estimated now."""
    percent_sent: int
    """Records acknowledged, in percent of the records to send (rounded down)."""
    calls_left: int
    done_by: date
    """The day (UTC) it should finish."""

    @property
    def text(self) -> str:
        return (
            f"{self.day} of {self.days} days, {self.percent_sent} % sent,"
            f" done ~{self.done_by.isoformat()}"
        )

    def to_doc(self) -> dict[str, Any]:
        return {
            "day": self.day,
            "days": self.days,
            "percentSent": self.percent_sent,
            "callsLeft": self.calls_left,
            "doneBy": self.done_by.isoformat(),
            "text": self.text,
        }


def run_progress(
    *,
    calls_left: int,
    records_sent: int,
    records_total: int,
    daily_budget: int,
    left_today: int,
    first_sent_at: datetime | None,
    now: datetime,
) -> RunProgress | None:
    """The run's progress, or None when it is not a multi-day run (it has nothing left,
    or everything left fits into today's budget and it started today).

    ``calls_left``: batches still to send; ``left_today``: calls the rolling budget
    still allows now.
    """
    if calls_left <= 0:
        return None
    day = 1 if first_sent_at is None else max(1, (now - first_sent_at) // DAY + 1)
    over = max(0, calls_left - max(0, left_today))
    more = math.ceil(over / daily_budget) if daily_budget > 0 else 0
    if day == 1 and more == 0:
        return None
    total = max(records_total, records_sent, 1)
    return RunProgress(
        day=day,
        days=day + more,
        percent_sent=records_sent * 100 // total,
        calls_left=calls_left,
        done_by=(now + more * DAY).date(),
    )
