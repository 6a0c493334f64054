"""A run's journal: its state, what happened to it, and the moves it may make.

One extract of one source becomes one **run** (``<source>-<20 hex of the file's SHA-256>``,
plus ``-<extract time>`` for bytes equal to an older run's file delivered as a later extract;
automatic and operator re-sends are child runs ``<run>-retryN`` and ``<source>-refsN``).
:class:`Journal` is its record with named fields; :data:`TRANSITIONS` is the table of the
state moves the engine makes, and every method that changes the state checks it (a move
the table does not list raises :class:`~connector.errors.RunError`: a bug, never data).

Pure: no I/O. Why a run waits is a :class:`~connector.sync.waiting.WaitingReason`; the
stored document (the same camelCase keys the engine has always written) is read and
written by :mod:`connector.sync.journal_doc`. Acknowledged batches beyond the latest few
live in sealed chunks next to it (:mod:`connector.sync.acks`), so the document stays
small however many batches a run has.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from connector.errors import RunError
from connector.sync.acks import AckLog
from connector.sync.waiting import WaitingReason

if TYPE_CHECKING:
    from connector.state.base import SourceLock

__all__ = [
    "DISCARDABLE_STATES",
    "MAX_REJECTED_IN_JOURNAL",
    "OPEN_STATES",
    "QUEUE_STATES",
    "REFERENCES_KIND",
    "TRANSITIONS",
    "Journal",
    "JournalEvent",
    "RefusedRow",
    "RunState",
    "from_iso",
    "later_copy_run_id",
    "make_run_id",
    "to_iso",
]


class RunState(StrEnum):
    """Journal states of a run."""

    RECEIVED = "received"
    PLANNED = "planned"
    HELD = "held"
    UPLOADING = "uploading"
    UPLOADED = "uploaded"
    RECONCILING = "reconciling"
    DONE = "done"
    FAILED = "failed"
    BLOCKED = "blocked"
    """Stopped by an error retrying cannot fix (401 after refresh, 403, 404, unsafe or
    missing credentials/endpoint); an operator resumes it once the cause is fixed."""
    SUPERSEDED = "superseded"
    DISCARDED = "discarded"


_S = RunState

TRANSITIONS: Mapping[RunState, frozenset[RunState]] = {
    # delivered again after stopping before sending anything: planned again
    _S.RECEIVED: frozenset({_S.RECEIVED, _S.PLANNED, _S.FAILED, _S.SUPERSEDED, _S.DISCARDED}),
    _S.PLANNED: frozenset({_S.RECEIVED, _S.HELD, _S.UPLOADING, _S.SUPERSEDED, _S.DISCARDED}),
    _S.HELD: frozenset({_S.UPLOADING, _S.SUPERSEDED, _S.DISCARDED}),
    # uploading → uploading: a queued run whose turn came; → held: planned again and held.
    # uploading/blocked → superseded (a newer full extract, nothing delivered yet) or, once
    # batches were delivered, → uploaded (Journal.stop): the sent part is reconciled, the
    # superseded reason kept, and the unsent remainder is the newer run's to send.
    _S.UPLOADING: frozenset(
        {
            _S.UPLOADING,
            _S.HELD,
            _S.UPLOADED,
            _S.FAILED,
            _S.BLOCKED,
            _S.SUPERSEDED,
            _S.DISCARDED,
        }
    ),
    _S.BLOCKED: frozenset({_S.UPLOADING, _S.UPLOADED, _S.SUPERSEDED, _S.DISCARDED}),
    _S.UPLOADED: frozenset({_S.RECONCILING}),
    _S.RECONCILING: frozenset({_S.DONE}),
    _S.FAILED: frozenset({_S.RECEIVED}),
    _S.DONE: frozenset(),
    _S.SUPERSEDED: frozenset(),
    _S.DISCARDED: frozenset(),
}
"""Allowed moves: state → the states it may go to (every move the engine makes)."""

OPEN_STATES = frozenset(
    {
        RunState.RECEIVED,
        RunState.PLANNED,
        RunState.HELD,
        RunState.UPLOADING,
        RunState.UPLOADED,
        RunState.RECONCILING,
        RunState.BLOCKED,
    }
)

DISCARDABLE_STATES = frozenset(
    {RunState.RECEIVED, RunState.PLANNED, RunState.HELD, RunState.UPLOADING, RunState.BLOCKED}
)
"""States a run can be discarded from: it has not finished sending."""

QUEUE_STATES = frozenset({RunState.PLANNED, RunState.HELD, RunState.UPLOADING, RunState.BLOCKED})
"""States of a run that has not finished sending: in ``delta`` mode it holds up later runs."""

REFERENCES_KIND = "references"
"""Journal ``kind`` (and plan action) of an automatic re-send for manager references."""

MAX_REJECTED_IN_JOURNAL = 1000
"""Rejected rows listed in a refused run's journal (the rest are counted)."""


def make_run_id(source: str, content_sha256: str) -> str:
    """``<source>-<first 20 hex of the file's SHA-256>``: same file, same run."""
    return f"{source}-{content_sha256[:20]}"


def later_copy_run_id(run_id: str, extract_at: datetime) -> str:
    """The run of a file whose bytes match an earlier run's but whose extract is later
    (``<run id>-<extract time, UTC, to the second>``): day 3 may legitimately equal day 1
    after day 2 changed things, and must be applied, not taken for a redelivery."""
    return f"{run_id}-{extract_at.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}"


def to_iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def from_iso(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


# -- parts of a journal ---------------------------------------------------------------------


@dataclass(slots=True)
class JournalEvent:
    """One line of a run's timeline."""

    at: datetime
    state: RunState
    detail: str = ""

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> JournalEvent:
        return cls(datetime.fromisoformat(doc["at"]), RunState(doc["state"]), doc.get("detail", ""))

    def to_doc(self) -> dict[str, str]:
        return {"at": to_iso(self.at), "state": self.state.value, "detail": self.detail}


@dataclass(slots=True)
class RefusedRow:
    """A rejected row of a file refused at the rejected-row cap, kept on its run."""

    line: int
    external_id: str | None
    reason: str

    def to_doc(self) -> dict[str, Any]:
        return {"line": self.line, "externalId": self.external_id, "reason": self.reason}


# -- the journal ----------------------------------------------------------------------------


@dataclass(slots=True, eq=False)
class Journal:
    """A run's record. Fields change only through the methods below (state moves are
    checked against :data:`TRANSITIONS`) or, for counters and artifacts' bookkeeping,
    directly by the stage that owns them."""

    run_id: str
    source: str
    state: RunState
    file: str | None = None
    kind: str = "extract"
    received_at: datetime | None = None
    extract_at: datetime | None = None
    extract_basis: str | None = None
    """What ``extract_at`` was taken from (:data:`connector.extract_time.ExtractTimeBasis`);
    None for runs recorded before it was kept."""
    timeline: list[JournalEvent] = field(default_factory=list)
    batches: AckLog = field(default_factory=AckLog)
    """Acknowledged batches in arrival order (:mod:`connector.sync.acks`: the latest
    inline, the rest in sealed chunks read when iterated)."""
    indexed: int = 0
    """Acknowledged batches folded into the record index so far."""
    parent_run_id: str | None = None
    parent_run_ids: list[str] | None = None
    not_resent: dict[str, int] | None = None
    planned: dict[str, int] | None = None
    rows_in_file: int | None = None
    rejected_count: int | None = None
    rejected: list[RefusedRow] | None = None
    rejected_omitted: int | None = None
    rejected_by_reason: dict[str, int] | None = None
    decided: bool = False
    """Whether the guard's decision was recorded with the plan (``decision``)."""
    decision_hold: dict[str, Any] | None = None
    """The guard's hold (its JSON form), None when the plan passed."""
    plan_index_version: str | None = None
    full_resend: bool = False
    records_kept: bool = False
    hold: dict[str, Any] | None = None
    held_reason: str | None = None
    queued: bool = False
    """Queued behind an older run before sending anything (planned again on its turn)."""
    queued_behind: str | None = None
    waiting: str | None = None
    waiting_reason: WaitingReason | None = None
    waiting_until: datetime | None = None
    """Not before this time does an automatic pass try again (the job's next attempt)."""
    waits: int = 0
    approved_by: str | None = None
    failed_reason: str | None = None
    blocked_reason: str | None = None
    superseded_reason: str | None = None
    discarded_reason: str | None = None
    first_sent_at: datetime | None = None
    batches_total: int | None = None
    to_send: int | None = None
    reference_levels: int | None = None
    isolation_calls: int = 0
    refused_in_a_row: int | None = None
    outcomes: dict[str, int] | None = None
    outcome_labels: dict[str, int] | None = None
    last_reconciled_at: datetime | None = None
    job_health: str | None = None
    reference_resends: dict[str, int] | None = None
    send_order: dict[str, int] | None = None
    """Set when the run was sent in priority order (:mod:`connector.sync.priority`):
    records per group, leavers/deactivations first."""
    updated_at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    """Keys this version does not know (written by a newer one): kept as they are."""
    etag: str | None = None
    """The stored document's etag when read (not part of the document)."""
    lock: SourceLock | None = None
    """The source lock held while this journal is changed (not part of the document)."""

    # -- reading ------------------------------------------------------------------------

    @property
    def acked_indices(self) -> set[int]:
        """Batch indices acknowledged so far."""
        return self.batches.indices

    @property
    def stop_reason(self) -> str | None:
        """Why the run stopped short (failed, blocked, superseded or discarded)."""
        return (
            self.failed_reason
            or self.blocked_reason
            or self.superseded_reason
            or self.discarded_reason
        )

    @property
    def held_reason_now(self) -> str | None:
        """The hold's reason while the run is held."""
        return self.held_reason if self.state is RunState.HELD else None

    @property
    def waiting_now(self) -> bool:
        """Left ``uploading`` with a waiting note for a later call to continue."""
        return self.state is RunState.UPLOADING and bool(self.waiting)

    @property
    def order(self) -> tuple[str, str, str]:
        """Apply order within a source: extract time, then receipt, then run id."""
        return (
            to_iso(self.extract_at) if self.extract_at else "",
            to_iso(self.received_at) if self.received_at else "None",
            self.run_id,
        )

    # -- state moves ----------------------------------------------------------------------

    def event(self, at: datetime, detail: str, state: RunState | None = None) -> None:
        """Add a timeline line without a state move."""
        self.timeline.append(JournalEvent(at, state or self.state, detail))

    def move(self, state: RunState, at: datetime, detail: str = "") -> None:
        """Move to ``state`` (checked); leaving ``uploading`` drops the waiting note."""
        if state not in TRANSITIONS[self.state]:
            raise RunError(f"run {self.run_id}: cannot go from {self.state.value} to {state.value}")
        self.state = state
        if state is not RunState.UPLOADING:
            self.clear_wait()
        self.event(at, detail, state)

    def receive_again(self, at: datetime, detail: str) -> None:
        """A run that stopped before sending anything is planned again from its file."""
        self.failed_reason = None
        self.rejected = None
        self.decided, self.decision_hold = False, None
        self.records_kept = False
        self.move(RunState.RECEIVED, at, detail)

    def record_plan(
        self, hold: dict[str, Any] | None, index_version: str | None, *, full_resend: bool
    ) -> None:
        """Keep the guard's decision with the plan (applied later, even after a crash)."""
        self.decided, self.decision_hold = True, hold
        self.plan_index_version = index_version
        if full_resend:
            self.full_resend = True

    def hold_for(self, hold: dict[str, Any], at: datetime) -> None:
        """Held by the mass-change guard until an operator approves or discards it."""
        self.hold = dict(hold)
        self.held_reason = hold.get("message")
        self.queued, self.queued_behind = False, None
        self.move(RunState.HELD, at, str(hold.get("message")))

    def approve(self, by: str) -> None:
        if self.state is not RunState.HELD:
            raise RunError(f"run {self.run_id} is {self.state.value}, not held")
        self.approved_by = by

    def start(self, at: datetime, detail: str) -> None:
        """Its turn came: sending starts (no longer queued)."""
        self.queued, self.queued_behind = False, None
        self.move(RunState.UPLOADING, at, detail)

    def queue_behind(self, blocker: Journal, at: datetime) -> bool:
        """Leave the run ``uploading`` with waiting reason ``queued`` behind ``blocker``;
        a run that has sent nothing yet is planned again on its turn. Returns whether the
        note changed (the caller saves the journal either way)."""
        why = {
            RunState.HELD: "held by the mass-change guard; approve or discard it",
            RunState.BLOCKED: "blocked; resume or discard it",
            RunState.PLANNED: "planned, its guard decision not yet applied",
        }.get(blocker.state, "it has batches left to send")
        if blocker.state is RunState.UPLOADING and blocker.queued:
            why = "itself queued"
        note = f"queued behind run {blocker.run_id} ({why})"
        if not self.batches:
            self.queued = True
        self.queued_behind = blocker.run_id
        if self.state is not RunState.UPLOADING:
            self.waiting, self.waiting_reason = note, WaitingReason.QUEUED
            self.move(RunState.UPLOADING, at, note)
            return True
        changed = self.waiting != note
        if changed:
            self.event(at, note, RunState.UPLOADING)
        self.waiting, self.waiting_reason = note, WaitingReason.QUEUED
        return changed

    def wait(self, reason: WaitingReason, note: str, at: datetime, detail: str) -> None:
        """Left ``uploading`` for a later call; one timeline line per new reason."""
        if self.state is not RunState.UPLOADING:
            raise RunError(f"run {self.run_id} is {self.state.value}, not uploading")
        self.waits += 1
        if self.waiting != note:
            self.event(at, detail, RunState.UPLOADING)
        self.waiting, self.waiting_reason = note, reason

    def lost_lock(self, note: str) -> None:
        """This process lost the source's lock: noted in memory only, never written."""
        self.waiting, self.waiting_reason = note, WaitingReason.LOCK_LOST

    def clear_wait(self) -> None:
        self.waiting, self.waiting_reason, self.waiting_until = None, None, None

    def fail(self, reason: str, at: datetime) -> None:
        self.failed_reason = reason
        self.move(RunState.FAILED, at, reason)

    def block(self, reason: str, at: datetime) -> None:
        self.blocked_reason = reason
        self.move(RunState.BLOCKED, at, reason)

    def unblock(self, at: datetime) -> None:
        """An operator resumes a blocked run once its cause is fixed."""
        self.blocked_reason = None
        self.move(RunState.UPLOADING, at, "resumed by an operator")

    def supersede(self, reason: str, at: datetime) -> None:
        self.superseded_reason = reason
        self.move(RunState.SUPERSEDED, at, reason)

    def stop(self, state: RunState, reason: str, at: datetime) -> None:
        """End an unfinished run (superseded or discarded). Batches it already delivered
        are still reconciled: such a run goes to ``uploaded`` instead, reason kept."""
        if state is RunState.SUPERSEDED:
            self.superseded_reason = reason
        else:
            self.discarded_reason = reason
        if not self.batches:
            self.move(state, at, reason)
            return
        if self.first_sent_at is None:
            self.first_sent_at = self.batches.first_sent_at
        done, total = len(self.batches), self.batches_total or 0
        self.move(
            RunState.UPLOADED,
            at,
            f"{reason}; the {done} of {total} batches already delivered are reconciled",
        )

    def uploaded(self, at: datetime, detail: str) -> None:
        if self.first_sent_at is None:
            self.first_sent_at = self.batches.first_sent_at or at
        self.move(RunState.UPLOADED, at, detail)
