"""Planning a run: the delta against the record index, the guard, and the stored plan.

A run is planned once from its file (:meth:`Planner.plan`), the guard's decision stored
with the plan so a crash before it is applied can be continued without the extract; a
run planned while older runs could still change the record index keeps its mapped
records and is planned again on its turn when the index changed
(:meth:`Planner.replan_if_stale`).
"""

from __future__ import annotations

import functools
import gzip
import logging
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson

from connector.config import Source
from connector.errors import ConnectorError, ReadAgainError, TooManyRejectedRowsError
from connector.report import RejectedRow
from connector.state.base import RecordIndex
from connector.sync.context import SyncContext
from connector.sync.delta import (
    Change,
    DeltaPlan,
    MappedRecordLike,
    attach_leaver_payloads,
    plan_delta,
)
from connector.sync.forecast import BudgetForecast, budget_forecast
from connector.sync.guard import check_guard
from connector.sync.journal import (
    MAX_REJECTED_IN_JOURNAL,
    Journal,
    RefusedRow,
    RunState,
    to_iso,
)
from connector.sync.plans import PlanOps, order_plan, suppress_refused_resends
from connector.sync.progress import calls_left_today
from connector.sync.readers import ExtractRecords, Rereadable
from connector.sync.summary import RunSummary, loggable

__all__ = ["Planner", "forecast_now"]

log = logging.getLogger(__name__)


class Planner:
    """Turns a run's file (or its kept records) into a stored plan and a guard decision."""

    def __init__(self, ctx: SyncContext) -> None:
        self.ctx = ctx
        self.runs = ctx.runs

    def plan(
        self, src: Source, journal: Journal, path: Path, *, full_resend: bool, keep: bool
    ) -> None:
        """Plan the run and record the guard's decision with it (applied later), so a
        crash between the two can be continued without the extract.

        ``keep``: other runs of the source may still change the record index before this
        one is sent; every mapped record is then kept with the run, so it can be planned
        again against the index as they leave it.
        """
        now = self.ctx.clock.now
        last = self.runs.last_applied(src.name)
        extract_at = journal.extract_at
        if last is not None and extract_at is not None and extract_at < last:
            reason = (
                f"extract taken {to_iso(extract_at)} is older than the last one applied"
                f" ({to_iso(last)}); not applied over newer data"
            )
            journal.supersede(reason, now())
            self.runs.save(journal)
            log.warning("run %s: superseded (older extract)", journal.run_id)
            return
        try:
            plan, rows, rejected, index = self.compute(
                src, path, full_resend=full_resend, keep=journal if keep else None
            )
        except TooManyRejectedRowsError as exc:
            _journal_refused_rows(journal, exc)
            journal.fail(str(exc), now())
            self.runs.save(journal)
            log.error("run %s: refused at the rejected-row cap", journal.run_id)
            return
        except ConnectorError as exc:
            journal.fail(str(exc), now())
            self.runs.save(journal)
            log.error("run %s: failed to plan: %s", journal.run_id, loggable(exc))
            return
        counts = plan.counts()
        counts["rejected"] = len(rejected)
        journal.planned = counts
        journal.rows_in_file = rows
        journal.rejected_count = len(rejected)
        journal.rejected = None
        self.runs.write_rejected(journal, rejected)
        self.store_plan(journal, plan.to_send, index)
        hold = check_guard(
            plan, index.active_count(), rows, src.thresholds, rejected_rows=len(rejected)
        )
        journal.record_plan(
            hold.to_dict() if hold is not None else None, index.version, full_resend=full_resend
        )
        journal.move(
            RunState.PLANNED,
            now(),
            f"{plan.joiners} joiners, {plan.movers} movers, {len(plan.leavers)} leavers,"
            f" {plan.unchanged} unchanged, {len(rejected)} rejected",
        )
        self.runs.save(journal)

    def compute(
        self, src: Source, path: Path, *, full_resend: bool, keep: Journal | None = None
    ) -> tuple[DeltaPlan, int, list[RejectedRow], RecordIndex]:
        """Diff the extract against the index; with ``keep``, every mapped record is also
        written to that run's kept records once the file is read.

        The file is read once, its ids counted as the records go by. When an id repeats
        (:class:`~connector.errors.ReadAgainError`, after the last record), the delta made
        so far is dropped, nothing of it stored, and the file is read again with the
        repeated ids known, so every row carrying one is rejected.
        """
        index = self.runs.load_records(src.name)
        mapped = self.ctx.records(src, path)
        read_again: Callable[[], ExtractRecords] | None = None
        try:
            plan = self._delta(src, mapped, index, full_resend=full_resend, keep=keep)
        except ReadAgainError as exc:
            if not isinstance(mapped, Rereadable):
                raise
            read_again = functools.partial(mapped.again, exc.duplicates)
        if read_again is not None:
            # Outside the handler: the error's traceback, and with it the first read's
            # delta and spooled payloads, is released before the second read starts.
            log.info("an id repeats in the extract: reading it again to reject its rows")
            mapped = read_again()
            plan = self._delta(src, mapped, index, full_resend=full_resend, keep=keep)
        if not full_resend:
            suppress_refused_resends(plan, index, self.runs.attempted(src.name)[0])
        rejected = [_rejected_row(r) for r in mapped.rejected]
        rejected_ids = {r.external_id for r in rejected if r.external_id}
        if rejected_ids and plan.leavers:
            # A rejected row still means the person is in the file: never disable them.
            plan.leavers = [c for c in plan.leavers if c.external_id not in rejected_ids]
        if plan.leavers:
            payloads = self.runs.payloads(src.name, plan.leaver_ids)
            plan = attach_leaver_payloads(plan, payloads, ignore_attributes=src.ignore_attributes)
        return plan, mapped.rows, rejected, index

    def _delta(
        self,
        src: Source,
        mapped: ExtractRecords,
        index: RecordIndex,
        *,
        full_resend: bool,
        keep: Journal | None,
    ) -> DeltaPlan:
        """The delta of one read of the file; the kept records are stored only once the
        read is complete (a read that raises leaves nothing behind)."""
        with tempfile.TemporaryFile(prefix="connector-kept-") as kept:
            sink = gzip.GzipFile(fileobj=kept, mode="wb", compresslevel=5) if keep else None
            plan = plan_delta(
                _tee(mapped, sink) if sink is not None else mapped,
                index,
                mode=src.mode,
                leaver_policy=src.leavers,
                ignore_attributes=src.ignore_attributes,
                rejected_ids=(),  # filled in by compute once the stream is consumed
                full_resend=full_resend,
                retry_unconfirmed=src.retry_unconfirmed,
            )
            if sink is not None and keep is not None:
                sink.close()
                kept.seek(0)
                self.runs.write_kept_records(keep, kept)
                keep.records_kept = True
        return plan

    def dry_run(
        self, src: Source, name: str, path: Path, run_id: str, *, full_resend: bool
    ) -> RunSummary:
        """What a sync of the file would plan, without writing anything."""
        plan, rows, rejected, index = self.compute(src, path, full_resend=full_resend)
        counts = plan.counts()
        counts["rejected"] = len(rejected)
        hold = check_guard(
            plan, index.active_count(), rows, src.thresholds, rejected_rows=len(rejected)
        )
        forecast = forecast_now(self.ctx, order_plan(plan.to_send, index))
        return RunSummary(
            run_id=run_id,
            source=src.name,
            file_name=name,
            state="dry-run",
            planned=counts,
            dry_run=True,
            held_reason=hold.message if hold else None,
            batches_total=forecast.calls_needed,
            send_order=forecast.send_order,
            forecast=forecast,
        )

    def store_plan(
        self,
        journal: Journal,
        changes: Iterable[Change],
        index: RecordIndex,
        *,
        kind: str | None = None,
    ) -> None:
        """Store the records to send in order, managers first, and their batches."""
        ops = order_plan(changes, index, kind=kind)
        journal.batches_total = self.runs.write_plan(journal, ops)
        journal.to_send = len(ops)
        levels = max(ops.table.levels, default=0) + 1
        if levels > 1:
            journal.reference_levels = levels

    def replan_if_stale(self, src: Source, journal: Journal) -> tuple[bool, dict[str, Any] | None]:
        """Plan a run again from its kept records when the record index changed since it
        was planned (a run before it sent records meanwhile). Returns whether it did, and
        the guard's new decision (a hold as a dict, or None)."""
        if not journal.records_kept or journal.batches:
            return False, None
        index = self.runs.load_records(src.name)
        if index.version == journal.plan_index_version:
            return False, None
        records = self.runs.load_kept_records(journal)
        full_resend = journal.full_resend
        rejected = self.runs.load_rejected(journal)
        plan = plan_delta(
            records,
            index,
            mode=src.mode,
            leaver_policy=src.leavers,
            ignore_attributes=src.ignore_attributes,
            rejected_ids={r.external_id for r in rejected if r.external_id},
            full_resend=full_resend,
            retry_unconfirmed=src.retry_unconfirmed,
        )
        if not full_resend:
            suppress_refused_resends(plan, index, self.runs.attempted(src.name)[0])
        if plan.leavers:
            payloads = self.runs.payloads(src.name, plan.leaver_ids)
            plan = attach_leaver_payloads(plan, payloads, ignore_attributes=src.ignore_attributes)
        rejected_count = (
            journal.rejected_count if journal.rejected_count is not None else len(rejected)
        )
        counts = plan.counts()
        counts["rejected"] = rejected_count
        journal.planned = counts
        self.store_plan(journal, plan.to_send, index)
        rows = journal.rows_in_file if journal.rows_in_file is not None else plan.rows
        hold = check_guard(
            plan, index.active_count(), rows, src.thresholds, rejected_rows=rejected_count
        )
        hold_doc = hold.to_dict() if hold is not None else None
        journal.record_plan(hold_doc, index.version, full_resend=False)
        journal.event(
            self.ctx.clock.now(),
            "planned again against the record index as earlier runs left it:"
            f" {plan.joiners} joiners, {plan.movers} movers, {len(plan.leavers)} leavers,"
            f" {plan.unchanged} unchanged",
        )
        self.runs.save(journal)
        log.info("run %s: planned again (%d to send)", journal.run_id, len(plan.to_send))
        return True, hold_doc


def forecast_now(ctx: SyncContext, ops: PlanOps, calls_needed: int | None = None) -> BudgetForecast:
    """What sending the plan ``ops`` now would ask of today's budget (reads the stored
    call counts, writes nothing): the sender's own decision and order, and the days its
    progress line would estimate (:mod:`connector.sync.forecast`)."""
    now = ctx.clock.now()
    budget = ctx.config.daily_call_budget
    return budget_forecast(
        ops,
        calls_needed=calls_needed,
        left_today=calls_left_today(ctx.runs.call_counts(), budget, now),
        daily_budget=budget,
        now=now,
    )


def _journal_refused_rows(journal: Journal, exc: TooManyRejectedRowsError) -> None:
    """Keep a refused file's rejected rows (first :data:`MAX_REJECTED_IN_JOURNAL`) and
    counts on its run, so error files list them without reading the extract again."""
    rows: list[RefusedRow] = []
    for r in list(getattr(exc, "rejected", ()) or ())[:MAX_REJECTED_IN_JOURNAL]:
        code = getattr(r, "reason_code", None)
        message = getattr(r, "message", None) or getattr(r, "reason", None) or ""
        rows.append(
            RefusedRow(
                line=int(getattr(r, "line", 0) or 0),
                external_id=getattr(r, "external_id", None) or None,
                reason=f"{code}: {message}" if code else str(message),
            )
        )
    stats = getattr(exc, "stats", None)
    total = int(getattr(stats, "rows_rejected", len(rows)) or len(rows))
    journal.rejected = rows
    journal.rejected_count = total
    journal.rejected_omitted = max(0, total - len(rows))
    if stats is not None:
        journal.rows_in_file = int(getattr(stats, "rows_read", 0) or 0)
        by_reason = getattr(stats, "rejected_by_reason", None)
        if isinstance(by_reason, Mapping):
            journal.rejected_by_reason = {str(k): int(v) for k, v in by_reason.items()}


def _rejected_row(r: object) -> RejectedRow:
    if isinstance(r, RejectedRow):
        return r
    return RejectedRow(
        line=int(getattr(r, "line", 0) or 0),
        reason=str(getattr(r, "reason", "") or getattr(r, "message", "") or ""),
        external_id=getattr(r, "external_id", None) or None,
    )


def _tee(records: Iterable[MappedRecordLike], sink: gzip.GzipFile) -> Iterator[MappedRecordLike]:
    """Stream ``records`` on while writing each as ``[line, externalId, data]`` to ``sink``."""
    for rec in records:
        sink.write(orjson.dumps([rec.line, rec.external_id, rec.data], default=dict))
        sink.write(b"\n")
        yield rec
