"""Matching provisioning-log entries to the records a run sent: pure, no I/O.

Documented (Graph ``provisioningObjectSummary``, Entra inbound-provisioning docs):
the correlation key is ``sourceIdentity.id``, which equals the ``externalId`` we
sent; ``provisioningAction`` is one of create/update/delete/stageddelete/disable/
other; ``provisioningStatusInfo.status`` is success/failure/skipped/warning with
``errorInformation {errorCode, reason}``; logs appear 5–10 minutes after processing.
(Whether the job would process what was sent is :func:`connector.graph.jobs.readiness`.)

Documented that an unresolved reference sits inside the steps: entra-docs' Log
Analytics queries match ``UnableToResolveReferenceAttributeValue`` inside
ProvisioningSteps; Microsoft Q&A 5830481 shows it as a step detail (PropertyName
manager, SkipReason …). ``details`` is an object in the examples and "a JSON string" in
the detailsInfo text: both are read.

Our assumptions (not documented): the service applies a job's uploads in the order
it received them and logs one entry per record it processed, so a record's entries
belong to its sends **by order and time** (:func:`assign_entries`: the n-th entry to
the n-th send, never to a send made after it less a clock-skew margin); a batch sent
twice (its answer lost) is logged twice, the copy as a plain skip, and a send's outcome
is its **most significant** entry (:func:`significance`: create > update/disable >
unresolved reference > failure > other skip); an entry's skip reason may sit in
``errorInformation`` or in a provisioning step's ``details``/``description``; an
unresolved reference is looked for in **every** step whatever the entry's status (the
overall status of such an entry is not documented), and an entry carrying it is
classified *skipped* with that code unless it failed (the reference re-send keys on
it); a ``warning`` entry that carries an error code is classified *skipped* with that
code, so an operator sees it; a record with no entry after a deadline (default 2 h) is
*unconfirmed*, not failed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import orjson

__all__ = [
    "DEFAULT_DEADLINE",
    "DEFAULT_SKEW",
    "MANAGER_UNRESOLVED",
    "REFERENCE_SKIP_REASONS",
    "LogEntry",
    "Outcome",
    "ReconcileResult",
    "RecordOutcome",
    "SentRecord",
    "assign_entries",
    "entry_reason",
    "outcome_label",
    "reconcile",
    "reconcile_runs",
    "significance",
    "unresolved_reference",
]

DEFAULT_DEADLINE = timedelta(hours=2)
DEFAULT_SKEW = timedelta(minutes=5)
MANAGER_UNRESOLVED = "manager unresolved"
_UNRESOLVED_REFERENCE = "UnableToResolveReferenceAttributeValue"
REFERENCE_SKIP_REASONS = frozenset({_UNRESOLVED_REFERENCE})
"""Skip reasons saying a reference attribute (the manager) was not written."""


def outcome_label(outcome: str, error_code: str | None, provisioning_action: str | None) -> str:
    """How people see an outcome: a record *skipped* only for its manager reference, whose
    entry says the user was created or updated, reads ``created (manager unresolved)``.

    The outcome itself stays ``skipped`` (the manager re-send logic keys on it); the label
    keeps an operator from thinking the account does not exist.
    """
    if (
        outcome == "skipped"
        and error_code == _UNRESOLVED_REFERENCE
        and provisioning_action in ("create", "update")
    ):
        done = "created" if provisioning_action == "create" else "updated"
        return f"{done} ({MANAGER_UNRESOLVED})"
    return outcome


class Outcome(StrEnum):
    """What the service did with one sent record, as far as its logs tell."""

    CREATED = "created"
    UPDATED = "updated"
    DISABLED = "disabled"
    SKIPPED = "skipped"
    FAILED = "failed"
    UNCONFIRMED = "unconfirmed"
    PENDING = "pending"

    @property
    def terminal(self) -> bool:
        """Pending is the only outcome a later log read can still change on its own."""
        return self is not Outcome.PENDING

    @property
    def accepted(self) -> bool:
        """The service applied (or knowingly kept) the record."""
        return self in (Outcome.CREATED, Outcome.UPDATED, Outcome.DISABLED)


@dataclass(frozen=True, slots=True)
class SentRecord:
    """One record a run uploaded: when, in which request, and why (joiner/mover/leaver)."""

    external_id: str
    sent_at: datetime
    request_id: str | None = None
    action: str = "update"
    line: int | None = None
    after: datetime | None = None
    """Time of the log entry an earlier send of this record was matched to, when that send
    is not matched in the same call: only later entries can describe the sends here (the
    skew margin could otherwise reach back to it)."""
    run_id: str = ""
    """The run that sent it: :func:`reconcile_runs` matches the sends of several runs at
    once and keys its results by run."""


@dataclass(frozen=True, slots=True)
class LogEntry:
    """The parts of a provisioning-log entry reconciliation needs."""

    id: str
    activity_at: datetime
    external_id: str
    provisioning_action: str
    status: str
    error_code: str | None = None
    reason: str | None = None
    job_id: str | None = None
    cycle_id: str | None = None
    change_id: str | None = None

    @classmethod
    def from_graph(cls, raw: Mapping[str, Any]) -> LogEntry | None:
        """Parse a Graph ``provisioningObjectSummary``; None when it names no source identity."""
        source = raw.get("sourceIdentity") or {}
        external_id = source.get("id") if isinstance(source, Mapping) else None
        when = raw.get("activityDateTime")
        if not external_id or not when:
            return None
        activity_at = when if isinstance(when, datetime) else _parse_time(str(when))
        info = raw.get("provisioningStatusInfo") or raw.get("statusInfo") or {}
        status = str(info.get("status") or "unknownFutureValue").lower()
        error = info.get("errorInformation") or {}
        code = _opt_str(error.get("errorCode"))
        reason = _opt_str(error.get("reason"))
        code, reason = entry_reason(status, code, reason, raw.get("provisioningSteps") or [])
        return cls(
            id=str(raw.get("id") or ""),
            activity_at=activity_at,
            external_id=str(external_id),
            provisioning_action=str(raw.get("provisioningAction") or "other").lower(),
            status=status,
            error_code=code,
            reason=reason,
            job_id=_opt_str(raw.get("jobId")),
            cycle_id=_opt_str(raw.get("cycleId")),
            change_id=_opt_str(raw.get("changeId")),
        )


@dataclass(frozen=True, slots=True)
class RecordOutcome:
    """The classified outcome of one sent record and the log entry that decided it."""

    external_id: str
    outcome: Outcome
    action: str
    line: int | None = None
    request_id: str | None = None
    error_code: str | None = None
    reason: str | None = None
    log_id: str | None = None
    activity_at: datetime | None = None
    provisioning_action: str | None = None


@dataclass(frozen=True, slots=True)
class ReconcileResult:
    """Per-record outcomes plus counts; ``complete`` once nothing is pending."""

    outcomes: dict[str, RecordOutcome]
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return all(o.outcome.terminal for o in self.outcomes.values())


_SUCCESS_ACTIONS = {
    "create": Outcome.CREATED,
    "update": Outcome.UPDATED,
    "disable": Outcome.DISABLED,
    # Assumption: a delete/staged delete of a record we sent active:false is a leaver done.
    "delete": Outcome.DISABLED,
    "stageddelete": Outcome.DISABLED,
}


def _outcome_of(entry: LogEntry, action: str) -> Outcome:
    """What one entry says about a send of ``action`` (joiner/mover/leaver)."""
    if entry.status == "failure":
        return Outcome.FAILED
    if (
        entry.status == "skipped"
        or (entry.status == "warning" and entry.error_code)
        or entry.error_code in REFERENCE_SKIP_REASONS
    ):
        # A warning with an error code, or any entry whose steps say a reference was not
        # resolved, is a partial apply (the user was written, its manager was not):
        # report it as skipped, with why.
        return Outcome.SKIPPED
    # success, warning, or a future value: the service processed the record
    outcome = _SUCCESS_ACTIONS.get(entry.provisioning_action, Outcome.UPDATED)
    if outcome is Outcome.UPDATED and action == "leaver":
        return Outcome.DISABLED
    return outcome


def classify(entry: LogEntry, sent: SentRecord) -> RecordOutcome:
    """Turn the deciding log entry for ``sent`` into an outcome."""
    outcome = _outcome_of(entry, sent.action)
    return RecordOutcome(
        external_id=sent.external_id,
        outcome=outcome,
        action=sent.action,
        line=sent.line,
        request_id=sent.request_id,
        error_code=entry.error_code if outcome in (Outcome.FAILED, Outcome.SKIPPED) else None,
        reason=entry.reason if outcome is not Outcome.CREATED else None,
        log_id=entry.id,
        activity_at=entry.activity_at,
        provisioning_action=entry.provisioning_action,
    )


_RANK = {
    Outcome.CREATED: 5,
    Outcome.UPDATED: 4,
    Outcome.DISABLED: 4,
    Outcome.FAILED: 2,
}
"""How significant an outcome is for one send (higher wins; see :func:`significance`)."""


def significance(outcome: RecordOutcome) -> int:
    """Rank of an entry's outcome among the entries matched to one send.

    A send can have several entries: a batch accepted but whose answer was lost is sent
    again, and the service logs the second copy as skipped (nothing left to change). The
    most significant entry decides: a create (5) over an update or disable (4), over a
    user written without its manager (3: skipped for an unresolved reference), over a
    failure (2), over any other skip (1). Equal ranks: the later entry wins.
    """
    return _rank(outcome.outcome, outcome.error_code)


def _rank(outcome: Outcome, error_code: str | None) -> int:
    if outcome is Outcome.SKIPPED:
        return 3 if error_code in REFERENCE_SKIP_REASONS else 1
    return _RANK.get(outcome, 0)


def _plain_skip(entry: LogEntry) -> bool:
    """A skip that says nothing was left to do (not a reference that could not resolve)."""
    return entry.status == "skipped" and entry.error_code not in REFERENCE_SKIP_REASONS


def assign_entries(
    sends: Sequence[SentRecord], entries: Sequence[LogEntry], skew: timedelta
) -> list[list[LogEntry]]:
    """The entries of one record matched to its sends, by order and time (pure).

    ``sends`` is the record's sends oldest first, ``entries`` its entries in the order
    the service wrote them (oldest first). The service applies a job's uploads in the
    order it received them, so the n-th entry describes the n-th send: each entry goes to
    the oldest send that has none yet, provided that send was made before the entry (less
    ``skew``, for clocks and log times); when every such send already has one, to the
    latest of them (a redundant copy). A plain skip written before the next send was even
    made is the redundant copy of the previous send, not the next send's outcome.
    Entries older than the first send less ``skew``, or not later than its ``after``, are
    an earlier send's and dropped. Returns one list per send.
    """
    out: list[list[LogEntry]] = [[] for _ in sends]
    if not sends:
        return out
    first = sends[0]
    nxt = 0  # the oldest send without an entry yet
    for entry in entries:
        if entry.activity_at < first.sent_at - skew:
            continue
        if first.after is not None and entry.activity_at <= first.after:
            continue
        latest = -1
        for i, send in enumerate(sends):
            if send.sent_at - skew <= entry.activity_at:
                latest = i
        if latest < 0:
            continue
        if nxt > latest:
            out[latest].append(entry)
        elif nxt > 0 and _plain_skip(entry) and entry.activity_at < sends[nxt].sent_at:
            out[nxt - 1].append(entry)
        else:
            out[nxt].append(entry)
            nxt += 1
    return out


def reconcile_runs(
    sent: Iterable[SentRecord],
    entries: Iterable[LogEntry | Mapping[str, Any]],
    *,
    now: datetime,
    job_id: str | None = None,
    skew: timedelta = DEFAULT_SKEW,
    deadline: timedelta = DEFAULT_DEADLINE,
) -> dict[str, ReconcileResult]:
    """Match log entries to the sends of one or more runs; results keyed by run id.

    A :class:`~connector.reconcile_match.Matcher` given every send, then every entry:
    each record's entries are shared among its sends by :func:`assign_entries`, and each
    send's outcome is its most significant entry (:func:`significance`). Entries from
    another job (when ``job_id`` is given) or for unknown externalIds are ignored. A send
    with no entry is ``unconfirmed`` once ``deadline`` has passed since it was sent, else
    ``pending``. Entries are taken in the order given, stably sorted by
    ``activityDateTime`` (give them in the order the service wrote them when times are
    equal).
    """
    from connector.reconcile_match import Matcher

    matcher = Matcher(job_id=job_id, skew=skew)
    for record in sent:
        matcher.add(record)
    for item in entries:
        entry = item if isinstance(item, LogEntry) else LogEntry.from_graph(item)
        if entry is not None:
            matcher.feed(entry)
    out: dict[str, ReconcileResult] = {}
    for run in matcher.runs():
        outcomes = {o.external_id: o for o in matcher.outcomes(run, now=now, deadline=deadline)}
        out[run] = _result(outcomes)
    return out


def reconcile(
    sent: Iterable[SentRecord],
    entries: Iterable[LogEntry | Mapping[str, Any]],
    *,
    now: datetime,
    job_id: str | None = None,
    skew: timedelta = DEFAULT_SKEW,
    deadline: timedelta = DEFAULT_DEADLINE,
) -> ReconcileResult:
    """One run's records (one send each) matched to log entries: :func:`reconcile_runs`
    with every send in one result. Streams ``entries``: memory is a few dozen bytes per
    send (the entries of records sent more than once excepted)."""
    merged: dict[str, RecordOutcome] = {}
    results = reconcile_runs(sent, entries, now=now, job_id=job_id, skew=skew, deadline=deadline)
    for result in results.values():
        merged.update(result.outcomes)
    return _result(merged)


def _decide(
    record: SentRecord, matched: Sequence[LogEntry], now: datetime, deadline: timedelta
) -> RecordOutcome:
    best: RecordOutcome | None = None
    for entry in matched:  # oldest first: on equal rank the later entry wins
        candidate = classify(entry, record)
        if best is None or significance(candidate) >= significance(best):
            best = candidate
    if best is not None:
        return best
    waited = now - record.sent_at
    outcome = Outcome.UNCONFIRMED if waited >= deadline else Outcome.PENDING
    return RecordOutcome(
        external_id=record.external_id,
        outcome=outcome,
        action=record.action,
        line=record.line,
        request_id=record.request_id,
        reason=(
            f"no provisioning-log entry {int(waited.total_seconds() // 60)} min after send"
            if outcome is Outcome.UNCONFIRMED
            else None
        ),
    )


def _result(outcomes: dict[str, RecordOutcome]) -> ReconcileResult:
    counts = Counter(o.outcome.value for o in outcomes.values())
    return ReconcileResult(outcomes=outcomes, counts=dict(sorted(counts.items())))


def _parse_time(value: str) -> datetime:
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    # Graph may send 7 fractional digits; fromisoformat accepts at most 6.
    if "." in text:
        head, _, rest = text.partition(".")
        n = 0
        while n < len(rest) and rest[n].isdigit():
            n += 1
        text = f"{head}.{rest[:n][:6].ljust(6, '0')}{rest[n:]}"
    parsed = datetime.fromisoformat(text)
    # Graph times are UTC; a value without an offset is read as UTC.
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _opt_str(value: object) -> str | None:
    if value is None or value == "":
        return None
    return str(value)


def entry_reason(
    status: str, code: str | None, reason: str | None, steps: Iterable[Any]
) -> tuple[str | None, str | None]:
    """The error code and reason of an entry: ``errorInformation`` first, then the steps.

    For a skipped/failure/warning entry without a code, the first step with that status
    gives it (``SkipReason``/``ErrorCode`` detail, description). Whatever the status, an
    unresolved reference found in any step replaces a missing code (or a success).
    """
    step_list = [s for s in steps if isinstance(s, Mapping)]
    if status in ("skipped", "failure", "warning") and code is None:
        code, step_reason = _reason_from_steps(step_list, status)
        reason = reason or step_reason
    if status != "failure" and code not in REFERENCE_SKIP_REASONS:
        found = unresolved_reference(step_list)
        if found is not None and (code is None or status == "success"):
            return found
    return code, reason


def unresolved_reference(steps: Iterable[Mapping[str, Any]]) -> tuple[str, str | None] | None:
    """(SkipReason, step description) when any step reports an unresolved reference."""
    for step in steps:
        details = _details(step.get("details"))
        description = _opt_str(step.get("description"))
        texts = [str(v) for v in details.values()] + [description or ""]
        for known in REFERENCE_SKIP_REASONS:
            if any(known.lower() in t.lower() for t in texts):
                return known, description
    return None


def _details(value: Any) -> Mapping[str, Any]:
    """A step's details as a mapping: an object, a JSON string, or key/value pairs."""
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            return {"text": value}
    if isinstance(value, Mapping):
        return value
    if isinstance(value, list):
        pairs = [v for v in value if isinstance(v, Mapping)]
        return {str(p.get("key", i)): p.get("value") for i, p in enumerate(pairs)}
    return {}


def _reason_from_steps(steps: Iterable[Any], status: str) -> tuple[str | None, str | None]:
    """Skip/failure details the service puts on a provisioning step rather than the summary."""
    for step in steps:
        if not isinstance(step, Mapping) or str(step.get("status") or "").lower() != status:
            continue
        details = _details(step.get("details"))
        code = _opt_str(details.get("SkipReason") or details.get("ErrorCode"))
        return code, _opt_str(step.get("description"))
    return None, None
