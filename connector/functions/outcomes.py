"""What an invocation did: one dropped file, one approvals marker, one timer pass.

Each outcome renders the invocation's one log line (``line()``); none carries personal
data (blob names, run ids, counts and reason codes only).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from connector.functions.markers import MarkerAction
from connector.functions.pulls import PullOutcome
from connector.sync.journal import RunState
from connector.sync.summary import RunSummary

__all__ = ["ApprovalOutcome", "DropOutcome", "PassOutcome", "is_waiting", "summary_detail"]


def is_waiting(s: RunSummary) -> bool:
    """The run stopped for a reason the timer retries (throttling, quota, a crash)."""
    return s.waiting_reason is not None or bool(s.waiting)


def summary_detail(s: RunSummary) -> str:
    """A run's plan, progress and why it stopped, for a drop outcome's line."""
    from connector.functions.telemetry import waiting_kind

    parts: list[str] = []
    if s.planned:
        parts.append(", ".join(f"{k}={v}" for k, v in s.planned.items()))
    if s.batches_total:
        parts.append(f"batches {s.batches_done}/{s.batches_total}")
    if is_waiting(s):
        parts.append(f"waiting: {waiting_kind(s)}")
    if s.state == RunState.HELD:
        parts.append("held by the mass-change guard")
    if s.state in (RunState.FAILED, RunState.SUPERSEDED) and s.failed_reason:
        parts.append(s.state)
    return "; ".join(parts)


@dataclass(slots=True)
class DropOutcome:
    """What became of one dropped file; ``line()`` is the invocation's one-line log."""

    blob: str
    action: str  # archived | quarantined | deferred | gone | ignored | failed | skipped
    source: str | None = None
    run_id: str | None = None
    state: str | None = None
    detail: str = ""
    placed: str | None = None
    duplicate: bool = False

    def line(self) -> str:
        parts = [f"{self.blob}: {self.action}"]
        if self.source:
            parts.append(f"source={self.source}")
        if self.run_id:
            parts.append(f"run={self.run_id}")
        if self.state:
            parts.append(f"state={self.state}")
        if self.duplicate:
            parts.append("duplicate=true")
        if self.placed:
            parts.append(f"to={self.placed}")
        if self.detail:
            parts.append(f"({self.detail})")
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class ApprovalOutcome:
    """What the timer did with one marker in ``approvals``.

    ``outcome`` for an approval: approved | already_approved | not_held | refused |
    unknown_run | busy | overridden_by_discard; for a discard: discarded |
    already_discarded | not_discardable | unknown_run | busy; for a resume: resumed |
    not_blocked | unknown_run | busy | overridden_by_discard; for a marker that is not
    understood: invalid_marker. Every outcome but ``busy`` files the marker.
    """

    run_id: str
    outcome: str
    state: str | None = None
    action: str = MarkerAction.APPROVE


@dataclass(slots=True)
class PassOutcome:
    """What one timer pass did."""

    approvals: list[ApprovalOutcome] = field(default_factory=list)
    resumed: list[RunSummary] = field(default_factory=list)
    reconciled: list[RunSummary] = field(default_factory=list)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    swept: list[DropOutcome] = field(default_factory=list)
    busy: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)
    first_error: BaseException | None = None
    failed_steps: set[str] = field(default_factory=set)
    """Steps that failed (raised, or failed for a source) in this pass."""
    blocked: dict[str, str] = field(default_factory=dict)
    """Delta sources whose queue is stopped by a blocked run (source → which run)."""
    pulls: list[PullOutcome] = field(default_factory=list)
    """The ``sql``/``rest`` sources due in this pass and what became of each pull."""

    def line(self) -> str:
        waiting = sum(1 for s in self.resumed if is_waiting(s))
        unhealthy = sorted(n for n, j in self.jobs.items() if not j.get("ok"))
        text = (
            f"approvals={len(self.approvals)} resumed={len(self.resumed)}"
            f" still_waiting={waiting} reconciled={len(self.reconciled)} jobs={len(self.jobs)}"
            f" swept={len(self.swept)}"
        )
        if self.pulls:
            text += f" pulled={sum(1 for p in self.pulls if p.outcome != 'failed')}"
            failed = sorted(p.source for p in self.pulls if p.outcome == "failed")
            if failed:
                text += " pull_failed=" + ",".join(failed)
        if self.busy:
            text += " busy=" + ",".join(sorted(self.busy))
        if unhealthy:
            text += " unhealthy_jobs=" + ",".join(unhealthy)
        if self.blocked:
            text += " blocked=" + ",".join(sorted(self.blocked))
        if self.errors:
            text += f" errors={len(self.errors)}"
        return text
