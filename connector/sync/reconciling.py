"""Reconciling a sent run: its provisioning-log entries matched to its records.

Provisioning logs since the run's first send minus the skew are read from the target and
matched to the records it sent by :func:`connector.reconcile.reconcile` (pure); outcomes
go to the journal, the record index and the run's outcomes artifact. Failed records keep
their new fingerprint, so they are not re-sent until their data changes or an operator
runs ``retry-failed``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping
from datetime import datetime

from connector.config import Source
from connector.reconcile import (
    JobHealth,
    Outcome,
    RecordOutcome,
    SentRecord,
    outcome_label,
    reconcile,
)
from connector.sync.context import SyncContext
from connector.sync.delta import ChangeKind
from connector.sync.journal import Journal, RunState
from connector.sync.run_store import OutcomeRow
from connector.sync.targets import ProvisioningTarget

__all__ = ["Reconciler"]

log = logging.getLogger(__name__)


class Reconciler:
    """Reads a run's log entries and records each record's outcome."""

    def __init__(self, ctx: SyncContext) -> None:
        self.ctx = ctx
        self.runs = ctx.runs

    async def reconcile(
        self, src: Source, journal: Journal, target: ProvisioningTarget, health: JobHealth
    ) -> Journal:
        now = self.ctx.clock.now
        if journal.state is RunState.UPLOADED:
            journal.move(RunState.RECONCILING, now(), "reading provisioning logs")
            self.runs.save(journal)
        journal.job_health = None if health.ok else health.message
        sent = self.sent_records(journal)
        cfg = self.ctx.config.reconciliation
        if sent:
            since = min(s.sent_at for s in sent) - cfg.skew
            entries = [e async for e in target.iter_logs(since)]
        else:
            entries = []
        result = reconcile(
            sent,
            entries,
            now=now(),
            job_id=target.job_id,
            skew=cfg.skew,
            deadline=cfg.deadline,
        )
        outcomes = dict(result.outcomes)
        outcomes.update(self._refused_outcomes(journal))
        journal.outcomes = _count(o.outcome.value for o in outcomes.values())
        journal.outcome_labels = _count(
            outcome_label(o.outcome.value, o.error_code, o.provisioning_action)
            for o in outcomes.values()
        )
        journal.last_reconciled_at = now()
        self.runs.write_outcomes(journal, (_row(o) for o in outcomes.values()))
        self._apply_outcomes(src.name, journal.run_id, outcomes.values())
        if result.complete:
            journal.move(RunState.DONE, now(), _counts_text(journal.outcomes))
            log.info("run %s: done %s", journal.run_id, journal.outcomes)
        self.runs.save(journal)
        return journal

    def sent_records(self, journal: Journal) -> list[SentRecord]:
        """The records the run sent and the service accepted, each bounded by the log
        entries of the previous run that sent it (and of a later one, if any)."""
        ops = {op.external_id: op for op in self.runs.load_plan(journal)}
        members = self.runs.batch_members(journal)
        previous: dict[str, dict[str, OutcomeRow]] = {}
        out: list[SentRecord] = []
        for batch in journal.batches:
            for ext in members[batch.index]:
                if ext in batch.rejected:
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
                    SentRecord(ext, batch.sent_at, batch.request_id, op.kind, op.line, after)
                )
        later = self._later_sends(journal, out)
        if later:
            out = [
                dataclasses.replace(s, before=later[s.external_id]) if s.external_id in later else s
                for s in out
            ]
        return out

    def _later_sends(self, journal: Journal, sent: list[SentRecord]) -> dict[str, datetime]:
        """For records of this run that a later run sent again: the time of the next send.

        Log entries from that time on describe the newer send, so they belong to the
        newer run (one reconciliation pass after two syncs must not give day 1 the
        entries of day 2). The record index names the last run per record: when it is
        this run for every record (the usual case), no other journal is read.
        """
        if not sent:
            return {}
        index = self.runs.load_records(journal.source)
        mine = {s.external_id: s.sent_at for s in sent}
        resent = {
            ext
            for ext in mine
            if (e := index.entries.get(ext)) is not None and e.run_id not in (None, journal.run_id)
        }
        if not resent:
            return {}
        first = min(mine[ext] for ext in resent)
        out: dict[str, datetime] = {}
        for other in self.runs.runs(journal.source):
            if other.run_id == journal.run_id:
                continue
            if not other.batches or max(b.sent_at for b in other.batches) <= first:
                continue
            members = self.runs.batch_members(other)
            for batch in other.batches:
                if batch.index >= len(members):
                    continue
                at = batch.sent_at
                for ext in members[batch.index]:
                    if ext not in resent or ext in batch.rejected or at <= mine[ext]:
                        continue
                    if ext not in out or at < out[ext]:
                        out[ext] = at
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
