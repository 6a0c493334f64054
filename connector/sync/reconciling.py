"""Reconciling sent runs: provisioning-log entries matched to the records each sent.

One pass per source reads the job's provisioning logs **once**, only what is new since
the last pass (the job's :class:`~connector.sync.log_book.LogBook`, a
:class:`~connector.graph.logs.LogCursor` plus the entries kept for runs not yet done),
and matches them to the sends of every run that sent records since the oldest
unfinished run's first send, by :func:`connector.reconcile.reconcile_runs` (pure): each
entry belongs to its record's send by order and time, so runs sent seconds apart each
keep their own. Outcomes of the open runs go to their journals, the record index and
their outcomes artifacts. Failed records keep their new fingerprint, so they are not
re-sent until their data changes or an operator runs ``retry-failed``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

from connector.config import Source
from connector.reconcile import (
    JobHealth,
    LogEntry,
    Outcome,
    ReconcileResult,
    RecordOutcome,
    SentRecord,
    outcome_label,
    reconcile_runs,
)
from connector.state.base import SourceLock
from connector.sync.context import SyncContext
from connector.sync.delta import ChangeKind
from connector.sync.journal import Journal, RunState
from connector.sync.log_book import LOG_LAG, LogBook
from connector.sync.run_store import OutcomeRow
from connector.sync.targets import ProvisioningTarget

__all__ = ["Reconciler"]

log = logging.getLogger(__name__)

UNFINISHED = (RunState.UPLOADING, RunState.UPLOADED, RunState.RECONCILING, RunState.BLOCKED)
"""States whose sends may still need log entries: open runs and runs still sending."""


class Reconciler:
    """Reads a source's new log entries once per pass and records each run's outcomes."""

    def __init__(self, ctx: SyncContext) -> None:
        self.ctx = ctx
        self.runs = ctx.runs

    async def reconcile_source(
        self,
        src: Source,
        journals: Sequence[Journal],
        target: ProvisioningTarget,
        health: JobHealth,
        lock: SourceLock | None = None,
    ) -> list[Journal]:
        """One pass over ``journals`` (uploaded/reconciling runs of ``src``): one log read."""
        now = self.ctx.clock.now
        cfg = self.ctx.config.reconciliation
        for journal in journals:
            if lock is not None:
                journal.lock = lock
            if journal.state is RunState.UPLOADED:
                journal.move(RunState.RECONCILING, now(), "reading provisioning logs")
                self.runs.save(journal)
        mine = {j.run_id for j in journals}
        others = [j for j in self.runs.runs(src.name) if j.run_id not in mine]
        horizon = _horizon([*journals, *others], cfg.skew)
        sent: list[SentRecord] = []
        book = self._book(src, target)
        if horizon is not None:
            # Oldest run first: sends at the same instant keep the runs' order.
            considered = sorted([*journals, *_sent_since(others, horizon)], key=_run_order)
            for journal in considered:
                sent.extend(self.sent_records(journal))
            margin = cfg.skew + LOG_LAG
            started = book.read_from(horizon, margin)
            read = [e async for e in target.iter_logs(started)]
            book.add(_for_job(read, target.job_id), started=started, margin=margin)
        results = reconcile_runs(
            sent,
            book.entries,
            now=now(),
            job_id=target.job_id,
            skew=cfg.skew,
            deadline=cfg.deadline,
        )
        out = [self._record(src, j, results.get(j.run_id), health) for j in journals]
        after = _horizon(list(self.runs.runs(src.name)), cfg.skew)
        book.prune(after - cfg.skew if after is not None else _floor(book, cfg.skew, now()))
        self.runs.save_log_book(src.name, target.job_id, book.to_json())
        return out

    def _book(self, src: Source, target: ProvisioningTarget) -> LogBook:
        raw = self.runs.load_log_book(src.name, target.job_id)
        return LogBook() if raw is None else LogBook.from_json(raw)

    def _record(
        self, src: Source, journal: Journal, result: ReconcileResult | None, health: JobHealth
    ) -> Journal:
        """Write one run's outcomes; the run is done once none is pending."""
        now = self.ctx.clock.now
        journal.job_health = None if health.ok else health.message
        outcomes = dict(result.outcomes) if result is not None else {}
        outcomes.update(self._refused_outcomes(journal))
        journal.outcomes = _count(o.outcome.value for o in outcomes.values())
        journal.outcome_labels = _count(
            outcome_label(o.outcome.value, o.error_code, o.provisioning_action)
            for o in outcomes.values()
        )
        journal.last_reconciled_at = now()
        self.runs.write_outcomes(journal, (_row(o) for o in outcomes.values()))
        self._apply_outcomes(src.name, journal.run_id, outcomes.values())
        if result is None or result.complete:
            journal.move(RunState.DONE, now(), _counts_text(journal.outcomes))
            log.info("run %s: done %s", journal.run_id, journal.outcomes)
        self.runs.save(journal)
        return journal

    def sent_records(self, journal: Journal) -> list[SentRecord]:
        """The records the run sent and the service accepted; a record sent before by a
        run not matched with it is bounded by the log entry that run was given."""
        ops = {op.external_id: op for op in self.runs.plan_or_empty(journal)}
        if not ops:
            return []
        members = self.runs.batch_members(journal)
        previous: dict[str, dict[str, OutcomeRow]] = {}
        out: list[SentRecord] = []
        for batch in journal.batches:
            if batch.index >= len(members):
                continue
            for ext in members[batch.index]:
                if ext in batch.rejected or ext not in ops:
                    continue
                op = ops[ext]
                after = None
                if op.prev and op.prev != journal.run_id:
                    if op.prev not in previous:
                        previous[op.prev] = self.runs.load_outcomes(journal.source, op.prev)
                    row = previous[op.prev].get(ext)
                    used = row.activity_at if row is not None else None
                    # The entry the previous run used is not this send's, unless it is
                    # later than this send (then the previous run took ours: no bound).
                    if used is not None and used < batch.sent_at:
                        after = used
                out.append(
                    SentRecord(
                        ext,
                        batch.sent_at,
                        batch.request_id,
                        op.kind,
                        op.line,
                        after,
                        journal.run_id,
                    )
                )
        return out

    def _refused_outcomes(self, journal: Journal) -> dict[str, RecordOutcome]:
        """Records the service refused with 400 at upload: failed, no log entry expected."""
        out: dict[str, RecordOutcome] = {}
        lines: dict[str, int | None] | None = None
        for batch in journal.batches:
            for ext, (code, message) in batch.rejected.items():
                if lines is None:
                    lines = {op.external_id: op.line for op in self.runs.plan_or_empty(journal)}
                out[ext] = RecordOutcome(
                    external_id=ext,
                    outcome=Outcome.FAILED,
                    action="",
                    line=lines.get(ext),
                    request_id=batch.request_id,
                    error_code=code or "BadRequest",
                    reason=message,
                )
        return out

    def _apply_outcomes(self, source: str, run_id: str, outcomes: Iterable[RecordOutcome]) -> None:
        index = self.runs.load_records(source)
        changed = False
        for o in outcomes:
            if o.outcome is Outcome.PENDING:
                continue
            entry = index.entries.get(o.external_id)
            if entry is None or entry.run_id != run_id:
                continue  # a later run has sent this record since; its outcome is newer
            value = o.outcome.value
            if entry.outcome != value or entry.error_code != o.error_code:
                entry.outcome = value
                entry.error_code = o.error_code
                changed = True
            if o.outcome is Outcome.FAILED and entry.active and _create_failed(o):
                # The create failed (a joiner, or any later send — an operator retry, a
                # re-send — the service tried to create): nobody exists in Entra to count
                # in the guard's population or to disable later as a leaver.
                entry.active = False
                changed = True
        if changed:
            self.runs.save_records(index)


def _row(o: RecordOutcome) -> OutcomeRow:
    return OutcomeRow(
        o.external_id,
        o.outcome.value,
        o.error_code,
        o.reason,
        o.provisioning_action,
        o.activity_at,
        o.log_id,
    )


def _count(values: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return dict(sorted(counts.items()))


def _create_failed(outcome: RecordOutcome) -> bool:
    """Whether a failed outcome was a create attempt: the record was sent as a joiner, or
    the log entry's action is ``create`` (documented: the service logs the action it
    attempted; assumption: a failed ``create`` means no account exists)."""
    return outcome.action == ChangeKind.JOINER.value or outcome.provisioning_action == "create"


def _counts_text(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{v} {k}" for k, v in counts.items()) or "nothing sent"


def _first_send(journal: Journal) -> datetime | None:
    return min((b.sent_at for b in journal.batches), default=None)


def _run_order(journal: Journal) -> tuple[datetime, datetime]:
    first = _first_send(journal) or datetime.max.replace(tzinfo=UTC)
    return first, journal.received_at or first


def _horizon(journals: Iterable[Journal], skew: timedelta) -> datetime | None:
    """The oldest time a log entry can still matter: the first send of the oldest
    unfinished run that sent anything, less the skew margin (None: nothing to wait for)."""
    firsts = [t for j in journals if j.state in UNFINISHED and (t := _first_send(j)) is not None]
    return min(firsts) - skew if firsts else None


def _sent_since(journals: Iterable[Journal], horizon: datetime) -> list[Journal]:
    """Other runs that sent records at or after ``horizon``: their sends take their own
    entries, whatever their state (a later run's entries are never an earlier run's)."""
    return [j for j in journals if any(b.sent_at >= horizon for b in j.batches)]


def _for_job(entries: Iterable[object], job_id: str | None) -> list[LogEntry]:
    """The entries of the job (Graph-shaped mappings are parsed as reconciliation reads
    them); entries naming another job are not kept."""
    out: list[LogEntry] = []
    for item in entries:
        entry = LogEntry.from_graph(item) if isinstance(item, Mapping) else item
        if not isinstance(entry, LogEntry):
            continue
        if job_id is None or entry.job_id in (None, job_id):
            out.append(entry)
    return out


def _floor(book: LogBook, skew: timedelta, now: datetime) -> datetime:
    """With no unfinished run, keep only the cursor's margin."""
    newest = book.cursor.newest
    return (newest if newest is not None else now) - skew
