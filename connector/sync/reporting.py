"""A run's reports and summary, built from its journal and stored artifacts.

:meth:`Reporter.report_input` gathers what :mod:`connector.report` (the pure renderer)
shows; :meth:`Reporter.write` stores the rendered reports next to the run;
:meth:`Reporter.summary` is what the CLI and Functions are told about the run.
"""

from __future__ import annotations

import logging

from connector.reconcile import outcome_label
from connector.report import RecordRow, ReportInput, TimelineEvent, write_reports
from connector.sync.context import SyncContext
from connector.sync.journal import AckedBatch, Journal, RunState, to_iso
from connector.sync.run_store import lock_lost
from connector.sync.summary import RunSummary

__all__ = ["Reporter"]

log = logging.getLogger(__name__)


class Reporter:
    """Builds and stores a run's reports; describes a run to callers."""

    def __init__(self, ctx: SyncContext) -> None:
        self.ctx = ctx
        self.runs = ctx.runs

    def report_input(self, journal: Journal) -> ReportInput:
        """A report's data from a journal (and the run's stored plan and outcomes)."""
        outcomes = self.runs.load_outcomes(journal.source, journal.run_id)
        members = self.runs.batch_members(journal)
        acked: dict[str, AckedBatch] = {
            ext: batch
            for batch in journal.batches
            if batch.index < len(members)
            for ext in members[batch.index]
        }
        records: list[RecordRow] = []
        for op in self.runs.plan_or_empty(journal):
            batch = acked.get(op.external_id)
            row = outcomes.get(op.external_id)
            if row is not None:
                outcome = outcome_label(row.outcome, row.error_code, row.provisioning_action)
                code, reason = row.error_code, row.reason
            else:
                outcome, code, reason = ("pending" if batch else "not sent"), None, None
            records.append(
                RecordRow(
                    external_id=op.external_id,
                    action=op.kind,
                    outcome=outcome,
                    line=op.line,
                    request_id=batch.request_id if batch else None,
                    error_code=code,
                    reason=reason,
                )
            )
        counts = dict(journal.outcome_labels or journal.outcomes or {})
        if not counts:
            for r in records:
                counts[r.outcome] = counts.get(r.outcome, 0) + 1
        status = journal.state.value + (" (waiting)" if journal.waiting_now else "")
        return ReportInput(
            run_id=journal.run_id,
            source=journal.source,
            file_name=journal.file or "",
            status=status,
            generated_at=self.ctx.clock.now(),
            planned=dict(journal.planned or {}),
            outcome_counts=counts,
            records=records,
            timeline=[TimelineEvent(e.at, e.state.value, e.detail) for e in journal.timeline],
            rejected=self.runs.load_rejected(journal),
            request_ids=[b.request_id for b in journal.batches if b.request_id],
            held_reason=journal.held_reason_now,
            failed_reason=journal.stop_reason or journal.waiting,
            job_health=journal.job_health,
            batches_total=journal.batches_total or 0,
            batches_done=len(journal.batches),
            extract_at=journal.extract_at,
            extra={
                "isolation": {"calls": journal.isolation_calls, "cap": self.ctx.isolation_calls}
            },
            command_flags=self.ctx.options.command_flags,
        )

    def write(self, journal: Journal) -> dict[str, str]:
        """Render and store the run's reports; returns where each one is."""
        if lock_lost(journal):
            # The journal may be stale: the new holder of the lock writes the reports.
            log.warning("run %s: lock lost; reports left to the new holder", journal.run_id)
            return {}
        data = self.report_input(journal)

        def put(name: str, body: bytes, ctype: str) -> str:
            return self.runs.write_report(journal, name, body, ctype)

        return {k: str(v) for k, v in write_reports(data, put).items()}

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
        )
