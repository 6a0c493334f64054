"""What a run would ask of the daily call budget, said before it is sent: by a dry run,
and by a held run's view.

Pure, over plain figures and a plan's operations. The decision and the figures are the
sender's and the progress line's own: :func:`fits_budget` is the test
:meth:`connector.sync.sending.Sender._order_for_budget` applies before a run's first
batch, :func:`connector.sync.priority.priority_order` and
:func:`~connector.sync.priority.group_counts` the order and counts it stores,
:func:`~connector.sync.priority.priority_note` the timeline line it writes, and the days
and finish come from :func:`connector.sync.progress.run_progress` as the run's progress
line will once it sends. Each bulk request is one call against the tenant's daily budget
(documented: "a tenant-level limit of 2,000 API calls per 24-hour period under the Entra
ID P1/P2 license", Entra "API-driven inbound provisioning concepts"). Assumed, as for the
progress line (hence the ``~``): one call per batch, the budget is this run's alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from connector.sync.plans import PlanOps
from connector.sync.priority import (
    GROUP_NAMES,
    GROUPS,
    PlanKeys,
    group_counts,
    priority_group,
    priority_note,
    priority_order,
    priority_text,
)
from connector.sync.progress import run_progress

__all__ = ["BudgetForecast", "GroupForecast", "budget_forecast", "fits_budget", "send_day"]


def fits_budget(calls_needed: int, left_today: int) -> bool:
    """Whether a run is sent in its plan order (True) or in priority order (False)."""
    return calls_needed <= left_today


@dataclass(frozen=True, slots=True)
class GroupForecast:
    """Where one priority group falls in a run sent in priority order."""

    group: str
    """``leavers`` (leavers and deactivations), ``joiners`` or ``movers``."""
    records: int
    first_call: int
    """The first bulk request (1-based, in send order) holding a record of the group."""
    last_call: int
    day: int
    """The day of sending (1: today) on which its last request is sent."""

    @property
    def text(self) -> str:
        calls = (
            f"call {self.first_call}"
            if self.first_call == self.last_call
            else f"calls {self.first_call}-{self.last_call}"
        )
        return f"{self.records:,} {GROUP_NAMES[self.group]} in {calls} (day {self.day})"


@dataclass(frozen=True, slots=True)
class BudgetForecast:
    """A run's calls against today's budget, its send order and its estimated finish."""

    calls_needed: int
    """Bulk requests of the plan (the figure the sender compares with ``calls_left_today``)."""
    calls_left_today: int
    """Calls the rolling 24 hours still allow (:func:`connector.sync.progress.calls_left_today`)."""
    daily_budget: int
    fits: bool
    """True: sent today in plan order; False: sent in priority order over several days."""
    calls_in_order: int
    """Bulk requests in the order it would be sent (the priority order repacks batches)."""
    days: int
    """Days of sending, today being day 1 (0 when there is nothing to send)."""
    done_by: date
    """The day (UTC) the last request would be sent."""
    send_order: str | None = None
    """The priority order, worded as the run's summary words it ("sent in priority order:
    120 leavers/deactivations first, then …"); None when it fits."""
    order_note: str | None = None
    """The timeline line the run writes when it is ordered (``send_order`` and the calls)."""
    order_counts: dict[str, int] | None = None
    """Records per priority group (the journal's ``sendOrder``); None when it fits."""
    groups: tuple[GroupForecast, ...] = ()

    @property
    def budget_text(self) -> str:
        verdict = "fits today (sent in plan order)" if self.fits else "does not fit today"
        return f"{self._needed}, {self._left}: {verdict}"

    @property
    def _left(self) -> str:
        return f"{self.calls_left_today:,} left today (daily budget {self.daily_budget:,})"

    @property
    def _needed(self) -> str:
        return f"{self.calls_needed:,} call{'s' if self.calls_needed != 1 else ''} needed"

    @property
    def held_text(self) -> str | None:
        """For a held run that would not fit today's budget: what approving now sends how
        (None when it fits)."""
        if self.fits:
            return None
        return (
            f"Approved now, it would not fit today's budget: {self._needed}, {self._left};"
            f" {self.send_order}, over {self.days_text}."
        )

    @property
    def days_text(self) -> str:
        days = f"{self.days} day{'s' if self.days != 1 else ''}"
        return f"~{days}, done ~{self.done_by.isoformat()}"


def send_day(call: int, *, left_today: int, daily_budget: int, now: datetime) -> tuple[int, date]:
    """The day of sending (1: today) and the date on which the ``call``-th request of a run
    not yet sent goes out, as :func:`connector.sync.progress.run_progress` estimates it."""
    if call <= 0:
        return 0, now.date()
    progress = run_progress(
        calls_left=call,
        records_sent=0,
        records_total=0,
        daily_budget=daily_budget,
        left_today=left_today,
        first_sent_at=None,
        now=now,
    )
    return (1, now.date()) if progress is None else (progress.days, progress.done_by)


def budget_forecast(
    ops: PlanOps,
    *,
    calls_needed: int | None = None,
    left_today: int,
    daily_budget: int,
    now: datetime,
) -> BudgetForecast:
    """What sending ``ops`` (a plan in its stored order, nothing acknowledged) would ask of
    the budget now. ``calls_needed``: the run's recorded batch count, when it has one (the
    sender compares that); else the plan's."""
    needed = ops.batch_count() if calls_needed is None else calls_needed
    days, done_by = send_day(needed, left_today=left_today, daily_budget=daily_budget, now=now)
    if fits_budget(needed, left_today):
        return BudgetForecast(needed, left_today, daily_budget, True, needed, days, done_by)
    keys = PlanKeys(ops.table)
    counts = group_counts(keys)
    ordered = PlanOps(ops.table.take(priority_order(keys)))
    calls = ordered.batch_count()
    days, done_by = send_day(calls, left_today=left_today, daily_budget=daily_budget, now=now)
    groups = tuple(
        GroupForecast(group, counts[group], first, last, day)
        for group, (first, last) in _group_calls(ordered).items()
        for day in [send_day(last, left_today=left_today, daily_budget=daily_budget, now=now)[0]]
    )
    return BudgetForecast(
        calls_needed=needed,
        calls_left_today=left_today,
        daily_budget=daily_budget,
        fits=False,
        calls_in_order=calls,
        days=days,
        done_by=done_by,
        send_order=priority_text(counts),
        order_note=priority_note(counts, needed, left_today),
        order_counts=counts,
        groups=groups,
    )


def _group_calls(ops: PlanOps) -> dict[str, tuple[int, int]]:
    """For each priority group with records, its first and last request (1-based)."""
    bounds, table = ops.bounds(), ops.table
    seen: dict[str, tuple[int, int]] = {}
    for k in range(len(bounds) - 1):
        for i in range(bounds[k], bounds[k + 1]):
            group = GROUPS[priority_group(table.kind(i), table.active(i))]
            first, _ = seen.get(group, (k + 1, k + 1))
            seen[group] = (first, k + 1)
    return {g: seen[g] for g in GROUPS if g in seen}
