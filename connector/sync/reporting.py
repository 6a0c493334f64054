"""A run's reports and summary, built from its journal and stored artifacts.

:meth:`Reporter.report_input` gathers what :mod:`connector.report` (the pure renderer)
shows, including who the run changes (:mod:`connector.sync.changes`, over the plan and
the records' previous payloads) and its neighbours among the source's runs;
:meth:`Reporter.write` stores the rendered reports next to the run (``held.csv`` too
while it is held), re-renders the previous run's report the first time (so it links
to this one) and rebuilds the runs index; :meth:`Reporter.summary` is what the CLI and
Functions are told about the run.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from connector.errors import DocumentConflictError
from connector.extract_time import ordering_warning
from connector.reconcile import outcome_label
from connector.report import RecordRow, ReportInput, TimelineEvent, write_reports
from connector.report_held import PAGE_ROWS
from connector.report_index import IndexRow, RunNav, build_index_html
from connector.sync.approval_hint import approval_commands
from connector.sync.changes import ChangeView, change_view, iter_held_csv, record_change
from connector.sync.context import SyncContext
from connector.sync.forecast import BudgetForecast
from connector.sync.journal import (
    Journal,
    RunState,
    from_iso,
    to_iso,
)
from connector.sync.journal_store import lock_lost
from connector.sync.planning import forecast_now
from connector.sync.plans import PlanOps
from connector.sync.priority import priority_text
from connector.sync.progress import RunProgress, calls_left_today, run_progress
from connector.sync.run_keys import HELD_NAME
from connector.sync.summary import RunSummary
from connector.sync.waiting import WaitingReason

__all__ = ["Reporter"]

log = logging.getLogger(__name__)

_INDEX_ATTEMPTS = 5
_DELIVERED = frozenset({RunState.UPLOADED, RunState.RECONCILING, RunState.DONE})

_Status = tuple[str | None, str | None, str | None, str | None]
"""A record's outcome label, error code, reason (None: no outcome yet) and request id."""


class _RecordRows:
    """The report's rows, made from the plan each time they are iterated: a run of a
    million records holds one row at a time, not a row object per record. ``brief``
    rows leave out the display name and the changed attributes (no payload is read)."""

    def __init__(
        self,
        plan: PlanOps,
        previous: Mapping[str, Mapping[str, Any]],
        status: Mapping[str, _Status],
        *,
        brief: bool = False,
    ) -> None:
        self.plan = plan
        self.previous = previous
        self.status = status
        self.brief = brief

    def __len__(self) -> int:
        return len(self.plan)

    def briefly(self) -> _RecordRows:
        """The same rows without display names and changes."""
        return _RecordRows(self.plan, self.previous, self.status, brief=True)

    def __iter__(self) -> Iterator[RecordRow]:
        if self.brief:
            table = self.plan.table
            for i, ext in enumerate(table.ext):
                yield self._row(ext, table.kind(i), table.line(i), "", ())
            return
        for op in self.plan:
            change = record_change(op, self.previous.get(op.external_id))
            changes = tuple((c.attribute, c.old, c.new) for c in change.changes)
            yield self._row(op.external_id, op.kind, op.line, change.display_name, changes)

    def _row(
        self,
        ext: str,
        action: str,
        line: int | None,
        name: str,
        changes: tuple[tuple[str, str | None, str | None], ...],
    ) -> RecordRow:
        label, code, reason, request_id = self.status.get(ext, _NOT_SENT)
        if label is None:
            label = "pending" if request_id else "not sent"
        return RecordRow(ext, action, label, line, request_id, code, reason, name, changes)


_NOT_SENT: _Status = (None, None, None, None)


def _index_doc(j: Journal) -> dict[str, Any]:
    """A run's row of the index document."""
    return {
        "source": j.source,
        "runId": j.run_id,
        "file": j.file or "",
        "state": _status(j),
        "receivedAt": to_iso(j.received_at) if j.received_at else None,
        "extractAt": to_iso(j.extract_at) if j.extract_at else None,
        "planned": dict(j.planned or {}),
        "outcomes": dict(j.outcomes or {}),
    }


def _status(j: Journal) -> str:
    """The state as people read it: ``uploading (waiting)``; ``uploaded (superseded)``
    for a run a newer extract replaced after it delivered part of its batches."""
    if j.waiting_now:
        return f"{j.state.value} (waiting)"
    if j.superseded_reason and j.state in _DELIVERED:
        return f"{j.state.value} (superseded)"
    return j.state.value


def _arrival(row: Mapping[str, Any]) -> tuple[bool, str, str]:
    received = row.get("receivedAt")
    return (received is None, str(received or ""), str(row["runId"]))


def _index_row(row: Mapping[str, Any]) -> IndexRow:
    return IndexRow(
        source=str(row["source"]),
        run_id=str(row["runId"]),
        file_name=str(row.get("file") or ""),
        state=str(row.get("state") or ""),
        received_at=from_iso(row.get("receivedAt")),
        extract_at=from_iso(row.get("extractAt")),
        planned=dict(row.get("planned") or {}),
        outcomes=dict(row.get("outcomes") or {}),
    )


class Reporter:
    """Builds and stores a run's reports; describes a run to callers."""

    def __init__(self, ctx: SyncContext) -> None:
        self.ctx = ctx
        self.runs = ctx.runs

    def report_input(self, journal: Journal) -> ReportInput:
        """A report's data from a journal (and the run's stored plan and outcomes)."""
        plan = self.runs.plan_or_empty(journal)
        return self._report_input(journal, plan, self.runs.previous_payloads(journal, plan))

    def _report_input(
        self, journal: Journal, plan: PlanOps, previous: Mapping[str, Mapping[str, Any]]
    ) -> ReportInput:
        records = _RecordRows(plan, previous, self._record_status(journal))
        status = _status(journal)
        return ReportInput(
            run_id=journal.run_id,
            source=journal.source,
            file_name=journal.file or "",
            status=status,
            generated_at=self.ctx.clock.now(),
            planned=dict(journal.planned or {}),
            outcome_counts=dict(journal.outcome_labels or journal.outcomes or {}) or None,
            records=records,
            brief_records=records.briefly(),
            timeline=[TimelineEvent(e.at, e.state.value, e.detail) for e in journal.timeline],
            rejected=self.runs.load_rejected(journal),
            request_ids=[b.request_id for b in journal.batches if b.request_id],
            held_reason=journal.held_reason_now,
            failed_reason=journal.stop_reason or journal.waiting,
            job_health=journal.job_health,
            batches_total=journal.batches_total or 0,
            batches_done=len(journal.batches),
            extract_at=journal.extract_at,
            ordering_warning=ordering_warning(journal.extract_basis),
            extra={
                "isolation": {"calls": journal.isolation_calls, "cap": self.ctx.isolation_calls}
            },
            command_flags=self.ctx.options.command_flags,
            approval=approval_commands(self.ctx.approval_hint, journal.run_id),
            # a held run's page lists some of whom it changes; any other report counts them
            changes=change_view(plan, previous, keep=PAGE_ROWS if journal.held_reason_now else 0),
            nav=self.neighbours(journal),
            send_order=priority_text(journal.send_order) if journal.send_order else None,
            progress=progress.text if (progress := self.progress(journal)) else None,
            budget_note=forecast.held_text
            if (forecast := self.held_forecast(journal, plan))
            else None,
        )

    def held_forecast(self, journal: Journal, plan: PlanOps | None = None) -> BudgetForecast | None:
        """A held run: what approving it now would ask of today's budget (None for any
        other run). Reads the stored plan unless given it."""
        if journal.state is not RunState.HELD:
            return None
        ops = self.runs.plan_or_empty(journal) if plan is None else plan
        return forecast_now(self.ctx, ops, journal.batches_total or None)

    def _record_status(self, journal: Journal) -> dict[str, _Status]:
        """Each sent record's outcome (reconciled, or pending with its request) by external
        id; tuples are shared among the records of a batch with the same outcome, so a
        million records cost about their ids."""
        status: dict[str, _Status] = {}
        members = self.runs.batch_members(journal)
        for batch in journal.batches:
            if batch.index < len(members):
                sent: _Status = (None, None, None, batch.request_id)
                for ext in members[batch.index]:
                    status[ext] = sent
        del members
        shared: dict[_Status, _Status] = {}
        for row in self.runs.iter_outcomes(journal.source, journal.run_id):
            label = sys.intern(outcome_label(row.outcome, row.error_code, row.provisioning_action))
            key: _Status = (
                label,
                row.error_code,
                row.reason,
                status.get(row.external_id, _NOT_SENT)[3],
            )
            status[row.external_id] = shared.setdefault(key, key) if row.reason is None else key
        return status

    def neighbours(self, journal: Journal) -> RunNav:
        """The runs of the source received just before and just after ``journal``."""
        rows, _ = self.runs.index_rows()
        known = [r for r in (rows or {}).values() if r.get("source") == journal.source]
        known = [r for r in known if r.get("runId") != journal.run_id]
        known.append(_index_doc(journal))
        ids = [r["runId"] for r in sorted(known, key=_arrival)]
        at = ids.index(journal.run_id)
        return RunNav(ids[at - 1] if at else None, ids[at + 1] if at + 1 < len(ids) else None)

    def update_index(self, journal: Journal) -> str:
        """Put the run's row into the index document (built from every journal the first
        time) and render ``index.html`` from it."""
        for _ in range(_INDEX_ATTEMPTS):
            rows, etag = self.runs.index_rows()
            if rows is None:
                rows = {
                    j.run_id: _index_doc(j)
                    for src in self.ctx.config.sources
                    for j in self.runs.runs(src.name)
                }
            rows[journal.run_id] = _index_doc(journal)
            try:
                self.runs.save_index_rows(rows, etag)
                break
            except DocumentConflictError:
                continue
        else:
            log.warning(
                "run %s: the runs index kept changing; left for the next report", journal.run_id
            )
            return ""
        html = build_index_html([_index_row(r) for r in rows.values()])
        return self.runs.write_index(html.encode("utf-8"))

    def write(self, journal: Journal) -> dict[str, str]:
        """Render and store the run's reports; returns where each one is."""
        if lock_lost(journal):
            # The journal may be stale: the new holder of the lock writes the reports.
            log.warning("run %s: lock lost; reports left to the new holder", journal.run_id)
            return {}
        first = not self.runs.has_report(journal)
        self.update_index(journal)  # first: the neighbours are read from the index
        data = self._write_one(journal)
        if first and data.nav is not None and data.nav.previous:
            # The previous run's report gains its "next run" link.
            previous = self.runs.load(journal.source, data.nav.previous)
            if previous is not None and self.runs.has_report(previous):
                self._write_one(previous)
        return self.runs.report_locations(journal.source, journal.run_id)

    def _write_one(self, journal: Journal) -> ReportInput:
        plan = self.runs.plan_or_empty(journal)
        previous = self.runs.previous_payloads(journal, plan)
        data = self._report_input(journal, plan, previous)

        def put(name: str, parts: Iterable[bytes], ctype: str) -> str:
            return self.runs.write_report(journal, name, parts, ctype)

        write_reports(data, put)
        if data.held_reason and data.changes is not None:
            put(HELD_NAME, iter_held_csv(plan, previous), "text/csv; charset=utf-8")
        return data

    def change_view(self, journal: Journal) -> ChangeView:
        """Whom the run disables and what it changes, every record of it (from its plan and
        the records' previous payloads)."""
        plan = self.runs.plan_or_empty(journal)
        return change_view(plan, self.runs.previous_payloads(journal, plan))

    def summary(self, journal: Journal) -> RunSummary:
        uploading = journal.state is RunState.UPLOADING
        return RunSummary(
            run_id=journal.run_id,
            source=journal.source,
            file_name=journal.file or "",
            state=journal.state.value,
            planned=dict(journal.planned or {}),
            outcomes=dict(journal.outcomes or {}),
            outcome_labels=dict(journal.outcome_labels or journal.outcomes or {}),
            held_reason=journal.held_reason_now,
            failed_reason=journal.stop_reason,
            waiting=journal.waiting if uploading else None,
            waiting_reason=journal.waiting_reason if uploading else None,
            job_health=journal.job_health,
            batches_total=journal.batches_total or 0,
            batches_done=len(journal.batches),
            isolation_calls=journal.isolation_calls,
            reports=self.runs.report_locations(journal.source, journal.run_id),
            received_at=to_iso(journal.received_at) if journal.received_at else None,
            ordering_warning=ordering_warning(journal.extract_basis),
            send_order=priority_text(journal.send_order) if journal.send_order else None,
            progress=progress.to_doc() if (progress := self.progress(journal)) else None,
        )

    def progress(self, journal: Journal) -> RunProgress | None:
        """A run still sending that takes more than today's budget: its day, share sent
        and estimated finish (None for any other run)."""
        total = journal.batches_total or 0
        if journal.state is not RunState.UPLOADING or journal.queued:
            return None  # a blocked run waits for an operator: no finish to estimate
        if total <= len(journal.batches):
            return None
        now = self.ctx.clock.now()
        budget = self.ctx.config.daily_call_budget
        if journal.waiting_reason is WaitingReason.QUOTA:
            left_today = 0  # the service's own quota may be spent before our count is
        else:
            left_today = calls_left_today(self.runs.call_counts(), budget, now)
        return run_progress(
            calls_left=total - len(journal.batches),
            records_sent=journal.batches.records_sent,
            records_total=journal.to_send or 0,
            daily_budget=budget,
            left_today=left_today,
            first_sent_at=journal.batches.first_sent_at,
            now=now,
        )
