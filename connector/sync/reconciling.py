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
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import chain

from connector.config import Source
from connector.graph.jobs import NotReady
from connector.reconcile import (
    LogEntry,
    Outcome,
    RecordOutcome,
    SentRecord,
    outcome_label,
)
from connector.reconcile_match import Matcher
from connector.state.base import RecordIndex, SourceLock
from connector.sync.context import SyncContext
from connector.sync.delta import ChangeKind
from connector.sync.journal import Journal, RunState
from connector.sync.log_book import LOG_LAG, LogBook
from connector.sync.readiness import not_ready_note
from connector.sync.result_store import OutcomeRow
from connector.sync.targets import ProvisioningTarget

__all__ = ["Reconciler"]

log = logging.getLogger(__name__)

_Head = tuple[str, int | None, str | None]
"""A planned record's kind, extract line and the run that sent it before."""

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
        health: NotReady | None,
        lock: SourceLock | None = None,
    ) -> list[Journal]:
        """One pass over ``journals`` (uploaded/reconciling runs of ``src``): one log read,
        streamed through the matching page by page. ``health``: why the job would not
        process what was sent (:func:`connector.sync.readiness.job_health`), or None."""
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
        matcher = Matcher(job_id=target.job_id, skew=cfg.skew)
        book = self._book(src, target)
        if horizon is not None:
            # Oldest run first: sends at the same instant keep the runs' order.
            considered = sorted([*journals, *_sent_since(others, horizon)], key=_run_order)
            for journal in considered:
                self.add_sends(matcher, journal)
            margin = cfg.skew + LOG_LAG
            started = book.read_from(horizon, margin)
            for kept in book.replay(started):
                matcher.feed(kept)
            async for item in target.iter_logs(started):
                entry = _of_job(item, target.job_id)
                if entry is not None and book.take(entry):
                    matcher.feed(entry)
            book.end(started=started, margin=margin)
        at = now()
        out = [self._record(src, j, matcher, at, health) for j in journals]
        after = _horizon(list(self.runs.runs(src.name)), cfg.skew)
        book.prune(after - cfg.skew if after is not None else _floor(book, cfg.skew, now()))
        self.runs.save_log_book(src.name, target.job_id, book.to_bytes())
        return out

    def _book(self, src: Source, target: ProvisioningTarget) -> LogBook:
        raw = self.runs.load_log_book(src.name, target.job_id)
        return LogBook() if raw is None else LogBook.from_bytes(raw)

    def _record(
        self, src: Source, journal: Journal, matcher: Matcher, at: datetime, health: NotReady | None
    ) -> Journal:
        """Write one run's outcomes as they stream; the run is done once none is pending."""
        now = self.ctx.clock.now
        journal.job_health = None if health is None else not_ready_note(health)
        tally = _Tally(self.runs.load_records(src.name), journal.run_id)
        deadline = self.ctx.config.reconciliation.deadline
        matched = matcher.outcomes(journal.run_id, now=at, deadline=deadline)
        outcomes = chain(matched, self._refused_outcomes(journal))
        self.runs.write_outcomes(journal, (tally.take(o) for o in outcomes))
        journal.outcomes = dict(sorted(tally.outcomes.items()))
        journal.outcome_labels = dict(sorted(tally.labels.items()))
        journal.last_reconciled_at = now()
        if tally.changed:
            self.runs.save_records(tally.index)
        if tally.complete:
            journal.move(RunState.DONE, now(), _counts_text(journal.outcomes))
            log.info("run %s: done %s", journal.run_id, journal.outcomes)
        self.runs.save(journal)
        return journal

    def add_sends(self, matcher: Matcher, journal: Journal) -> int:
        """Add the records the run sent and the service accepted (a stream over its plan);
        a record sent before by a run not matched with it is bounded by the log entry that
        run was given. Returns how many were added."""
        members = self.runs.batch_members(journal)
        acked = {b.index: b for b in journal.batches if b.index < len(members)}
        if not acked:
            return 0
        added = 0
        later: list[tuple[SentRecord, str]] = []
        for k, ext, head in self._members(journal, members):
            batch = acked.get(k)
            if head is None or batch is None or ext in batch.rejected:
                continue
            kind, line, prev = head
            send = SentRecord(
                ext, batch.sent_at, batch.request_id, kind, line, None, journal.run_id
            )
            if prev and prev != journal.run_id:
                later.append((send, prev))
            else:
                matcher.add(send)
                added += 1
        return added + self._add_resends(matcher, journal, later)

    def _members(
        self, journal: Journal, members: list[list[str]]
    ) -> Iterator[tuple[int, str, _Head | None]]:
        """(batch, externalId, what the plan says of it) of every member, in plan order:
        the plan streamed alongside the batches (they hold its records in order; should
        they not, the rest of the plan is looked up by externalId)."""
        plan = self.runs.iter_plan(journal)
        lookup: dict[str, _Head] | None = None
        for k, ids in enumerate(members):
            for ext in ids:
                if lookup is None:
                    op = next(plan, None)
                    if op is not None and op.external_id == ext:
                        yield k, ext, (op.kind, op.line, op.prev)
                        continue
                    rest = chain([op] if op is not None else [], plan)
                    lookup = {o.external_id: (o.kind, o.line, o.prev) for o in rest}
                yield k, ext, lookup.get(ext)

    def _add_resends(
        self, matcher: Matcher, journal: Journal, later: list[tuple[SentRecord, str]]
    ) -> int:
        """Records a previous run sent: the entry that run used is not this send's, unless
        it is later than this send (then the previous run took ours: no bound)."""
        wanted: dict[str, set[str]] = {}
        for send, prev in later:
            wanted.setdefault(prev, set()).add(send.external_id)
        used = {
            run: self.runs.load_outcomes(journal.source, run, only=ids)
            for run, ids in wanted.items()
        }
        for send, prev in later:
            row = used[prev].get(send.external_id)
            when = row.activity_at if row is not None else None
            after = when if when is not None and when < send.sent_at else None
            matcher.add(replace(send, after=after))
        return len(later)

    def _refused_outcomes(self, journal: Journal) -> Iterator[RecordOutcome]:
        """Records the service refused with 400 at upload: failed, no log entry expected."""
        refused = {ext for batch in journal.batches for ext in batch.rejected}
        if not refused:
            return
        lines = {
            op.external_id: op.line
            for op in self.runs.iter_plan(journal)
            if op.external_id in refused
        }
        for batch in journal.batches:
            for ext, (code, message) in batch.rejected.items():
                yield RecordOutcome(
                    external_id=ext,
                    outcome=Outcome.FAILED,
                    action="",
                    line=lines.get(ext),
                    request_id=batch.request_id,
                    error_code=code or "BadRequest",
                    reason=message,
                )


class _Tally:
    """What one run's outcomes add up to, counted as they stream past, and their effect
    on the record index (a later run's send of a record is newer: left alone)."""

    def __init__(self, index: RecordIndex, run_id: str) -> None:
        self.index = index
        self.run_id = run_id
        self.outcomes: Counter[str] = Counter()
        self.labels: Counter[str] = Counter()
        self.changed = False
        self.complete = True

    def take(self, o: RecordOutcome) -> OutcomeRow:
        value = o.outcome.value
        self.outcomes[value] += 1
        self.labels[outcome_label(value, o.error_code, o.provisioning_action)] += 1
        if o.outcome is Outcome.PENDING:
            self.complete = False
        else:
            self._apply(o)
        return _row(o)

    def _apply(self, o: RecordOutcome) -> None:
        entry = self.index.entries.get(o.external_id)
        if entry is None or entry.run_id != self.run_id:
            return  # a later run has sent this record since; its outcome is newer
        value = o.outcome.value
        if entry.outcome != value or entry.error_code != o.error_code:
            entry.outcome = value
            entry.error_code = o.error_code
            self.changed = True
        if o.outcome is Outcome.FAILED and entry.active and _create_failed(o):
            # The create failed (a joiner, or any later send — an operator retry, a
            # re-send — the service tried to create): nobody exists in Entra to count
            # in the guard's population or to disable later as a leaver.
            entry.active = False
            self.changed = True


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


def _of_job(item: object, job_id: str | None) -> LogEntry | None:
    """The entry if it is the job's (Graph-shaped mappings are parsed as reconciliation
    reads them); None for an entry naming another job."""
    entry = LogEntry.from_graph(item) if isinstance(item, Mapping) else item
    if not isinstance(entry, LogEntry):
        return None
    return entry if job_id is None or entry.job_id in (None, job_id) else None


def _floor(book: LogBook, skew: timedelta, now: datetime) -> datetime:
    """With no unfinished run, keep only the cursor's margin."""
    newest = book.cursor.newest
    return (newest if newest is not None else now) - skew
