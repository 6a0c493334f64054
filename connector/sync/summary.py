"""What callers (CLI, Functions) are told about runs after a call.

:class:`RunSummary` describes one run, :class:`PassResult` a pass over every source, and
:func:`loggable` turns an error into text safe for a log line or a summary.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from connector.sync.waiting import WaitingReason

if TYPE_CHECKING:
    from connector.sync.forecast import BudgetForecast

__all__ = ["PassResult", "ProgressCallback", "RunSummary", "loggable"]


ProgressCallback = Callable[[int, int], None]


@dataclass(slots=True)
class RunSummary:
    """What a caller (CLI, Functions) needs to know about a run after a call."""

    run_id: str
    source: str
    file_name: str
    state: str
    planned: dict[str, int] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)
    outcome_labels: dict[str, int] = field(default_factory=dict)
    """``outcomes`` as people read them: a record skipped only for its manager reference
    counts as ``created (manager unresolved)`` (see :func:`connector.reconcile.outcome_label`)."""
    duplicate: bool = False
    dry_run: bool = False
    held_reason: str | None = None
    failed_reason: str | None = None
    waiting: str | None = None
    """The note of the error that left the run waiting (text for people)."""
    waiting_reason: WaitingReason | None = None
    """Why the run is waiting, for programs (None unless ``uploading`` and waiting)."""
    job_health: str | None = None
    batches_total: int = 0
    batches_done: int = 0
    isolation_calls: int = 0
    """Extra bulkUpload calls the run spent finding the records 400s were about."""
    reports: dict[str, str] = field(default_factory=dict)
    received_at: str | None = None
    ordering_warning: str | None = None
    """Set when only the arrival time orders this run (no date in the name, no file time):
    an older file arriving late would be applied (:mod:`connector.extract_time`)."""
    send_order: str | None = None
    """Set when the run is sent in priority order: "sent in priority order: 120
    leavers/deactivations first, then …" (:mod:`connector.sync.priority`)."""
    progress: dict[str, Any] | None = None
    """A multi-day run's progress (``day``, ``days``, ``percentSent``, ``callsLeft``,
    ``doneBy``, ``text``: "3 of 10 days, 38 % sent, done ~2026-12-14"); None otherwise
    (:mod:`connector.sync.progress`)."""
    forecast: BudgetForecast | None = None
    """A dry run's (or a held run's) calls against today's budget: whether the run fits,
    else its priority order, the days it would take and its estimated finish
    (:mod:`connector.sync.forecast`); None for a run already sending or sent."""
    resumed: bool | None = None
    """A redelivered file whose run was waiting: True when that run was resumed, False when
    its source was busy (the next pass continues it); None otherwise."""


class PassResult(list[RunSummary]):
    """The runs a pass over every source touched, plus the sources it skipped.

    ``skipped`` maps a source name to why it was not handled in this pass (its lock is
    held by another run: that run, or the next pass, picks the work up). A plain list
    otherwise, so callers iterating the summaries keep working.
    """

    def __init__(
        self,
        items: Iterable[RunSummary] = (),
        skipped: Mapping[str, str] | None = None,
        *,
        blocked: Mapping[str, str] | None = None,
        errors: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(items)
        self.skipped: dict[str, str] = dict(skipped or {})
        self.blocked: dict[str, str] = dict(blocked or {})
        """Delta sources whose queue is stopped by a blocked run: source → that run and why
        (later runs of the source stay queued until it is resumed or discarded)."""
        self.errors: dict[str, str] = dict(errors or {})
        """Sources this pass could not handle because of an error (source → the error,
        personal data removed); the other sources were still handled."""


_EMAILISH = re.compile(r"[^\s@'\"<>(),;:]+@[^\s@'\"<>(),;:]+")


def loggable(exc: BaseException, limit: int = 200) -> str:
    """An error for a log line: its type, its code if any, and its message with anything
    that looks like an email address or UPN removed (a service's message can echo one)."""
    code = getattr(exc, "code", None)
    head = type(exc).__name__ + (f"[{code}]" if code else "")
    text = " ".join(_EMAILISH.sub("<redacted>", str(exc)).split())
    return f"{head}: {text[:limit]}" if text else head
