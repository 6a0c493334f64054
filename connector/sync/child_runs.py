"""Runs that send again records of earlier runs.

An operator's retry of a run's failed records (``<run>-retryN``) and the automatic
re-send of records skipped for an unresolved manager reference once the manager exists
(``<source>-refsN``, kind ``references``). Each is a run of its own, journaled,
reconciled and reported like any other.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from connector.config import Source
from connector.errors import RunError
from connector.state.base import Outcome as StateOutcome
from connector.state.base import RecordIndex, SourceLock
from connector.sync.context import SyncContext
from connector.sync.delta import Change, ChangeKind, with_active
from connector.sync.journal import REFERENCES_KIND, Journal, RunState
from connector.sync.ordering import RunOrder
from connector.sync.planning import Planner
from connector.sync.references import (
    UNRESOLVED_REFERENCE,
    ResendCandidate,
    count_resends,
    select_reference_resends,
)
from connector.sync.reporting import Reporter
from connector.sync.sending import Sender
from connector.sync.summary import ProgressCallback, RunSummary

__all__ = ["ChildRuns"]

log = logging.getLogger(__name__)


class ChildRuns:
    """Creates and sends retry and reference re-send runs."""

    def __init__(
        self, ctx: SyncContext, planner: Planner, sender: Sender, reporter: Reporter
    ) -> None:
        self.ctx = ctx
        self.runs = ctx.runs
        self.order = RunOrder(ctx.runs)
        self.planner = planner
        self.sender = sender
        self.reporter = reporter

    async def retry_failed(
        self, src: Source, parent: Journal, lock: SourceLock, progress: ProgressCallback | None
    ) -> RunSummary:
        """Re-send the parent's records whose last outcome is failed, as a new run, with
        the data the parent sent (its stored plan; the last payload as a fallback)."""
        run_id = parent.run_id
        index = self.runs.load_records(src.name)
        failed = [
            ext
            for ext, e in index.entries.items()
            if e.run_id == run_id and e.outcome == StateOutcome.FAILED.value
        ]
        if not failed:
            raise RunError(f"run {run_id} has no failed records to retry")
        planned = self.runs.plan_or_empty(parent)
        rows = {ext: planned.table.position(ext) for ext in failed}
        missing = [ext for ext in failed if rows[ext] is None]
        payloads = self.runs.payloads(src.name, missing) if missing else {}
        changes: list[Change] = []
        for ext in failed:
            entry = index.entries[ext]
            row = rows[ext]
            op = planned[row] if row is not None else None
            if op is not None:
                data: Mapping[str, Any] = op.data
                fp, active, line = op.fingerprint, op.active, op.line
            elif ext in payloads:
                data, fp, active, line = payloads[ext], entry.fingerprint, entry.active, None
            else:
                continue
            data = with_active(data, active)
            changes.append(Change(ChangeKind.RETRY, ext, line, data, fp, active))
        n = self.runs.count_runs(src.name, f"{run_id}-retry")
        journal = Journal(
            run_id=f"{run_id}-retry{n + 1}",
            source=src.name,
            state=RunState.RECEIVED,
            file=parent.file,
            kind="retry",
            parent_run_id=run_id,
            received_at=self.ctx.clock.now(),
            extract_at=parent.extract_at,
            lock=lock,
        )
        self._create(journal, f"retry of {len(changes)} failed records", changes, index)
        journal.planned = {"retries": len(changes)}
        self._move(journal, RunState.PLANNED, f"{len(changes)} retries")
        self._move(journal, RunState.UPLOADING, "retry requested by operator")
        return await self._send(src, journal, progress)

    async def resend_references(self, src: Source, lock: SourceLock) -> RunSummary | None:
        """Re-send records skipped for an unresolved manager whose manager now exists.

        Runs after reconciliation, under the source's lock, carrying each record's last
        accepted payload. Bounded: at most ``max_reference_resends`` automatic re-sends
        per record with the same data, none when the manager is unknown to the source,
        failed or not yet confirmed (see
        :func:`connector.sync.references.select_reference_resends`), and none while a
        run of the source still has batches to send (its data is newer).
        """
        limit = self.ctx.options.max_reference_resends
        if limit == 0 or self.order.with_batches_left(src.name):
            return None
        index = self.runs.load_records(src.name)
        skipped = self._skipped_for_references(src.name, index)
        if not skipped:
            return None
        payloads = self.runs.payloads(src.name, skipped)
        resent, etag = self.runs.reference_resends(src.name)
        chosen, left = select_reference_resends(index.entries, payloads, resent, max_resends=limit)
        if not chosen:
            return None
        changes = [_resend_change(c, index, payloads) for c in chosen]
        counted = count_resends(resent, ((c.external_id, c.fingerprint) for c in changes))
        self.runs.save_reference_resends(src.name, counted, etag)
        journal = self._references_journal(src.name, chosen, left, lock)
        self._plan_references(journal, changes, index, chosen, lock)
        self._move(journal, RunState.UPLOADING, "automatic re-send")
        log.info(
            "run %s: re-sending %d records for manager references", journal.run_id, len(changes)
        )
        return await self._send(src, journal, None)

    def _skipped_for_references(self, source: str, index: RecordIndex) -> list[str]:
        """Records last skipped for an unresolved manager reference that no held or
        planned run of the source carries."""
        pending = self.order.records_in_unsent_plans(source)
        return [
            ext
            for ext, e in index.entries.items()
            if e.outcome == StateOutcome.SKIPPED.value
            and e.error_code == UNRESOLVED_REFERENCE
            and ext not in pending
        ]

    def _references_journal(
        self,
        source: str,
        chosen: list[ResendCandidate],
        left: Mapping[str, str],
        lock: SourceLock,
    ) -> Journal:
        """The new ``<source>-refsN`` run: its parents, and why the others are not re-sent."""
        parents = sorted({c.run_id for c in chosen if c.run_id})
        n = self.runs.count_runs(source, f"{source}-refs")
        not_resent: dict[str, int] = {}
        for why in left.values():
            not_resent[why] = not_resent.get(why, 0) + 1
        return Journal(
            run_id=f"{source}-refs{n + 1}",
            source=source,
            state=RunState.RECEIVED,
            kind=REFERENCES_KIND,
            parent_run_ids=parents,
            received_at=self.ctx.clock.now(),
            extract_at=self.runs.last_applied(source),
            not_resent=not_resent,
            lock=lock,
        )

    def _plan_references(
        self,
        journal: Journal,
        changes: list[Change],
        index: RecordIndex,
        chosen: list[ResendCandidate],
        lock: SourceLock,
    ) -> None:
        """Store the re-send run's plan, planned, and note it on each parent run."""
        parents = journal.parent_run_ids or []
        detail = (
            f"re-send of {len(changes)} records skipped for an unresolved manager reference"
            f" (their managers are now provisioned); from runs {', '.join(parents) or '-'}"
        )
        self._create(journal, detail, changes, index, kind=REFERENCES_KIND)
        journal.planned = {"references": len(changes)}
        self._move(journal, RunState.PLANNED, f"{len(changes)} references to resolve")
        for parent_id in parents:
            self._note_resend(journal.source, parent_id, journal.run_id, chosen, lock)

    def _create(
        self,
        journal: Journal,
        detail: str,
        changes: list[Change],
        index: RecordIndex,
        *,
        kind: str | None = None,
    ) -> None:
        journal.event(self.ctx.clock.now(), detail, RunState.RECEIVED)
        self.runs.create(journal)
        self.planner.store_plan(journal, changes, index, kind=kind)

    def _move(self, journal: Journal, state: RunState, detail: str) -> None:
        journal.move(state, self.ctx.clock.now(), detail)
        self.runs.save(journal)

    async def _send(
        self, src: Source, journal: Journal, progress: ProgressCallback | None
    ) -> RunSummary:
        journal = await self.sender.upload(src, journal, progress)
        self.reporter.write(journal)
        return self.reporter.summary(journal)

    def _note_resend(
        self,
        source: str,
        parent_id: str,
        child_id: str,
        chosen: Iterable[ResendCandidate],
        lock: SourceLock,
    ) -> None:
        """Record on the skipped records' run which of them were re-sent, and where."""
        parent = self.runs.load(source, parent_id)
        if parent is None:
            return
        parent.lock = lock
        count = sum(1 for c in chosen if c.run_id == parent_id)
        parent.reference_resends = {**(parent.reference_resends or {}), child_id: count}
        parent.event(
            self.ctx.clock.now(),
            f"{count} records skipped for an unresolved manager re-sent in run {child_id}",
        )
        self.runs.save(parent)
        self.reporter.write(parent)


def _resend_change(
    c: ResendCandidate, index: RecordIndex, payloads: Mapping[str, Mapping[str, Any]]
) -> Change:
    entry = index.entries[c.external_id]
    return Change(
        ChangeKind.RETRY,
        c.external_id,
        None,
        with_active(payloads[c.external_id], entry.active),
        entry.fingerprint,
        entry.active,
    )
