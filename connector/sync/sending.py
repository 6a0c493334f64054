"""Sending a run: its unacknowledged batches through the window, and what follows.

Each acknowledgement is journaled as it arrives (with its batch index), off the event
loop (:class:`~connector.sync.journal_writer.JournalWriter`), and its batch's worker
takes no other batch before that write is done, so after a crash at most the window's
batches (in flight, or acknowledged and not yet journaled) are sent again. What stopped the window
(:class:`~connector.sync.upload.Stop`) is applied to the run here: failed, blocked or
left waiting. Acknowledged batches are folded into the record index idempotently
(``indexed``), so a crash between the two is repaired on the next call
(:meth:`Sender.index_acks`).
"""

from __future__ import annotations

import logging
from array import array
from collections.abc import Awaitable, Iterator, Sequence

from connector.config import Source
from connector.errors import (
    BadRequestError,
    ConcurrentRunError,
    LockLostError,
    SystemicRefusalError,
)
from connector.graph.jobs import NotReady
from connector.scim import BulkPayload
from connector.state.base import Outcome as StateOutcome
from connector.state.base import RecordEntry
from connector.sync.acks import AckedBatch
from connector.sync.context import SyncContext
from connector.sync.forecast import fits_budget
from connector.sync.journal import Journal
from connector.sync.journal_store import check_lock, lock_lost
from connector.sync.journal_writer import JournalWriter
from connector.sync.plans import NEVER_ACCEPTED, PlanOps
from connector.sync.priority import (
    PlanKeys,
    group_barriers,
    group_counts,
    priority_note,
    priority_order,
    priority_text,
    with_group_barriers,
)
from connector.sync.progress import calls_left_today
from connector.sync.readiness import JobGate, not_ready_note, wait_until
from connector.sync.summary import ProgressCallback
from connector.sync.targets import BatchReceipt, ProvisioningTarget
from connector.sync.upload import Stop, StopKind, isolate_refusal, send_window
from connector.sync.waiting import WaitingReason, waiting_reason_of

__all__ = ["Sender"]

log = logging.getLogger(__name__)


class _JournalAllowance:
    """The isolation allowance of one run, counted in its journal (``isolationCalls``)."""

    def __init__(self, limit: int, journal: Journal) -> None:
        self._limit = limit
        self._journal = journal

    def left(self) -> int:
        return self._limit - self._journal.isolation_calls

    def spend(self) -> None:
        self._journal.isolation_calls += 1


class Sender:
    """Sends runs whose turn has come and records what the service said."""

    def __init__(self, ctx: SyncContext) -> None:
        self.ctx = ctx
        self.runs = ctx.runs
        self.gate = JobGate()

    async def upload(
        self,
        src: Source,
        journal: Journal,
        progress: ProgressCallback | None,
        *,
        recheck: bool = False,
    ) -> Journal:
        """Send the run's unacknowledged batches, up to ``window`` at once.

        First the job must be ready to process them (:mod:`connector.sync.readiness`,
        asked once per pass): otherwise nothing is sent and the run waits with reason
        ``job_not_ready``; an automatic pass asks again only after the time the service
        named (a quarantine's next attempt), an operator's resume (``recheck``) at once.
        A spent budget, back-pressure or an outage stops new sends; batches in flight
        finish; every batch not acknowledged is left for the next call.
        """
        ops = self.runs.load_plan(journal)
        if not journal.batches:
            ops = self._order_for_budget(journal, ops)
        batches = ops.batches()  # built a request at a time as the window sends them
        deps = ops.batch_deps()
        if journal.send_order:  # groups in order: none overtakes an earlier one
            lowest = group_barriers(PlanKeys(ops.table), ops.bounds())
            deps = with_group_barriers(deps, lowest)
        total = len(batches)
        journal.batches_total = total
        acked = journal.acked_indices
        pending = [i for i in range(total) if i not in acked]
        if progress is not None:
            progress(len(acked), total)
        stop: Stop | None = None
        if pending:
            if not recheck and self._not_yet(journal):
                return journal
            target = self.ctx.targets(src)
            try:
                not_ready = await self.gate.check(src.name, target, journal.lock)
                if not_ready is not None:
                    self._not_ready(journal, not_ready, total)
                    return journal
                stop = await self._send(journal, target, batches, pending, deps, progress)
            finally:
                await target.aclose()
        if stop is not None:
            self._stopped(src.name, journal, ops, stop)
            return journal
        self.index_acks(src.name, journal, ops)
        journal.uploaded(
            self.ctx.clock.now(), f"{total} batch{'es' if total != 1 else ''} acknowledged"
        )
        self.runs.save(journal)
        log.info("run %s: uploaded %d batches", journal.run_id, total)
        return journal

    def _order_for_budget(self, journal: Journal, ops: PlanOps) -> PlanOps:
        """Before the first batch is acknowledged: a run that needs more calls than
        today's budget has left is sent in priority order (:mod:`connector.sync.priority`),
        stored as its plan; a run that fits keeps its order. Idempotent: the journal says
        so first, then the plan is rewritten (an interrupted rewrite is done again)."""
        needed = journal.batches_total or ops.batch_count()
        counts = self.runs.call_counts()
        left = calls_left_today(counts, self.ctx.config.daily_call_budget, self.ctx.clock.now())
        if fits_budget(needed, left):
            return ops
        keys = PlanKeys(ops.table)
        groups = group_counts(keys)
        if journal.send_order != groups:
            journal.send_order = groups
            journal.event(self.ctx.clock.now(), priority_note(groups, needed, left))
            self.runs.save(journal)
            log.info("run %s: %s", journal.run_id, priority_text(groups))
        order = priority_order(keys)
        if order != list(range(len(ops))):
            ops = PlanOps(ops.table.take(order))
            self.runs.write_plan(journal, ops)
        elif self.runs.batch_members(journal) != ops.members():
            self.runs.write_plan(journal, ops)  # stopped between the plan and its batches
        return ops

    def _not_yet(self, journal: Journal) -> bool:
        """Waiting for a job that the service said it would not retry before a time."""
        until = journal.waiting_until
        return (
            journal.waiting_reason is WaitingReason.JOB_NOT_READY
            and until is not None
            and self.ctx.clock.now() < until
        )

    def _not_ready(self, journal: Journal, result: NotReady, total: int) -> None:
        """Nothing sent: the run waits, its note naming the reason and the remedy."""
        now = self.ctx.clock.now()
        note = not_ready_note(result)
        done = len(journal.batches)
        journal.wait(
            WaitingReason.JOB_NOT_READY, note, now, f"waiting after {done}/{total} batches: {note}"
        )
        journal.waiting_until = wait_until(result, now)
        self.runs.save(journal)
        log.warning(
            "run %s: not sent, the provisioning job is not ready (%s)", journal.run_id, result.code
        )

    async def _send(
        self,
        journal: Journal,
        target: ProvisioningTarget,
        batches: Sequence[BulkPayload],
        pending: list[int],
        deps: list[tuple[int, ...]],
        progress: ProgressCallback | None,
    ) -> Stop | None:
        allowance = _JournalAllowance(self.ctx.isolation_calls, journal)

        async def send(payload: BulkPayload) -> BatchReceipt:
            check_lock(journal)
            try:
                return await target.send(payload)
            except BadRequestError as exc:
                return await isolate_refusal(target, payload, exc, allowance)

        writer = JournalWriter(self.runs, journal)

        def on_ack(i: int, receipt: BatchReceipt, stopping: StopKind | None) -> Awaitable[None]:
            payload = batches[i]
            journal.batches.append(
                AckedBatch(
                    index=i,
                    size=len(payload),
                    sent_at=self.ctx.clock.now(),
                    request_id=receipt.request_id,
                    rejected=dict(receipt.rejected),
                )
            )
            _note_whole_refusal(journal, payload, receipt)
            if stopping is None or stopping == "waiting":
                journal.clear_wait()
            if progress is not None:
                progress(len(journal.batches), len(batches))
            return writer.save()

        try:
            stop = await send_window(
                batches,
                deps,
                pending,
                send=send,
                on_ack=on_ack,
                width=self.ctx.options.window,
            )
        except BaseException:
            await writer.drain(report=False)  # the error in hand is the one to raise
            raise
        await writer.drain()
        return stop

    def _stopped(self, source: str, journal: Journal, ops: PlanOps, stop: Stop) -> None:
        total = journal.batches_total or 0
        done = len(journal.batches)
        exc = stop.error
        now = self.ctx.clock.now()
        if isinstance(exc, LockLostError) or (
            isinstance(exc, ConcurrentRunError) and lock_lost(journal)
        ):
            # Not ours any more: write nothing; the new holder continues from the journal.
            journal.lost_lock(f"{type(exc).__name__}: {exc}")
            log.warning(
                "run %s: lost the source lock; stopped after %d/%d", journal.run_id, done, total
            )
            return
        if stop.kind == "failed":
            reason = (
                f"the service refused batch {stop.batch + 1}/{total} (400) in a way that is not"
                f" about single records: {exc}. The payload is invalid for this job: fix the"
                " mapping or the job schema (e.g. `connector schema add`), then deliver the"
                " extract again"
            )
            journal.failed_reason = reason
            self.index_acks(source, journal, ops)
            journal.fail(reason, now)
            self.runs.save(journal)
            log.error("run %s: failed: systemic 400 at batch %d", journal.run_id, stop.batch + 1)
            return
        if stop.kind == "blocked":
            reason = (
                f"{type(exc).__name__}: {exc}. Retrying cannot fix this; fix the identity,"
                " permission or endpoint, then resume the run with"
                f" `connector runs resume {journal.run_id}`"
            )
            journal.blocked_reason = reason
            self.index_acks(source, journal, ops)
            journal.block(reason, now)
            self.runs.save(journal)
            log.error(
                "run %s: blocked (%s) after %d/%d batches",
                journal.run_id,
                type(exc).__name__,
                done,
                total,
            )
            return
        note = f"{type(exc).__name__}: {exc}"
        detail = f"waiting after {done}/{total} batches: {note}"
        journal.wait(waiting_reason_of(exc), note, now, detail)
        self.runs.save(journal)
        self.index_acks(source, journal, ops)
        log.warning(
            "run %s: paused after %d/%d batches (%s)",
            journal.run_id,
            done,
            total,
            type(exc).__name__,
        )

    def index_acks(self, source: str, journal: Journal, ops: PlanOps | None = None) -> None:
        """Fold acknowledged batches into the record index (idempotent, resumable).

        Accepted records get the planned fingerprint and payload. Records the service
        refused (400) keep their last *accepted* fingerprint, payload and active flag;
        the fingerprint of what was refused is kept apart (``attempted/<source>``) so an
        unchanged refused record is not sent again until its data changes or an operator
        retries it. Payloads go to the store as the plan's JSON bytes, streamed.
        """
        done, acked = journal.indexed, len(journal.batches)
        if done >= acked:
            return
        plan = ops if ops is not None else self.runs.load_plan(journal)
        table = plan.table
        members = self.runs.batch_members(journal)
        index = self.runs.load_records(source)
        attempted, etag = self.runs.attempted(source)
        attempted_before = dict(attempted)
        accepted = array("q")
        bounds = plan.bounds()
        for batch in journal.batches[done:acked]:
            sent_at = int(batch.sent_at.timestamp())
            for ext, k in _rows_of(plan, members[batch.index], bounds, batch.index):
                if ext in batch.rejected:
                    index.entries[ext] = _refused_entry(
                        index.entries.get(ext), batch, ext, sent_at, journal.run_id
                    )
                    attempted[ext] = table.fingerprint(k).hex()
                    continue
                index.entries[ext] = RecordEntry(
                    fingerprint=table.fingerprint(k),
                    active=table.active(k),
                    outcome=StateOutcome.SENT.value,
                    sent_at=sent_at,
                    run_id=journal.run_id,
                )
                attempted.pop(ext, None)
                accepted.append(k)
        self.runs.save_records(index, _payloads(plan, accepted))
        if attempted != attempted_before:
            self.runs.save_attempted(source, attempted, etag)
        journal.indexed = acked
        self.runs.save(journal)

    def repair(self, source: str) -> None:
        """Fold acknowledged-but-unindexed batches of any run into the index (crash repair)."""
        for journal in self.runs.runs(source):
            if len(journal.batches) > journal.indexed:
                log.info(
                    "run %s: recording acknowledged batches after an interruption",
                    f"runs/{source}/{journal.run_id}",
                )
                self.index_acks(source, journal)


def _rows_of(
    plan: PlanOps, members: list[str], bounds: Sequence[int], k: int
) -> Iterator[tuple[str, int]]:
    """Each member of batch ``k`` with its row in the plan: the batch's own rows when the
    stored members are the plan's batch (always, for plans written by this version),
    else looked up by externalId."""
    table = plan.table
    if k + 1 < len(bounds):
        start, end = bounds[k], bounds[k + 1]
        if table.ext[start:end] == members:
            yield from zip(members, range(start, end), strict=True)
            return
    for ext in members:
        row = table.position(ext)
        if row is None:
            raise KeyError(ext)
        yield ext, row


def _payloads(plan: PlanOps, rows: Sequence[int]) -> Iterator[tuple[str, bytes]]:
    """Each accepted row's externalId and payload JSON (a plan holds an id once)."""
    table = plan.table
    for k in rows:
        yield table.ext[k], table.payload(k) or b"{}"


def _refused_entry(
    old: RecordEntry | None, batch: AckedBatch, ext: str, sent_at: int, run_id: str
) -> RecordEntry:
    return RecordEntry(
        fingerprint=old.fingerprint if old is not None else NEVER_ACCEPTED,
        active=old.active if old is not None else False,
        outcome=StateOutcome.FAILED.value,
        error_code=batch.rejected[ext][0] or "BadRequest",
        sent_at=sent_at,
        run_id=run_id,
    )


def _note_whole_refusal(journal: Journal, payload: BulkPayload, receipt: BatchReceipt) -> None:
    """Two batches in a row refused record by record is systemic, not bad data. A batch
    refused as a group only because the isolation allowance was spent proves nothing
    either way (the count is kept as it is)."""
    accepted = len(payload) - len(receipt.rejected)
    if receipt.unisolated and accepted <= 0:
        return
    if receipt.rejected and accepted <= 0:
        journal.refused_in_a_row = (journal.refused_in_a_row or 0) + 1
        if journal.refused_in_a_row >= 2:
            code, message = next(iter(receipt.rejected.values()))
            raise SystemicRefusalError(
                f"two batches in a row were refused whole: {message}", code=code
            )
    else:
        journal.refused_in_a_row = 0
