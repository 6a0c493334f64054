"""A run's turn: apply its guard decision, hold it, queue it, start it, or end it.

Called by the engine under the source's lock. :meth:`Turns.advance` moves a source's
open runs on, oldest first; :meth:`Turns.turn` gives one run its turn. ``delta`` mode:
the first run that cannot go on (planned, held, waiting, blocked) stops the later ones,
which are queued behind it. ``full`` mode: a run sent supersedes older unsent runs.
"""

from __future__ import annotations

import logging
from typing import Any

from connector.config import Source
from connector.errors import RunError
from connector.state.base import SourceLock
from connector.sync.context import SyncContext
from connector.sync.journal import DISCARDABLE_STATES, QUEUE_STATES, Journal, RunState, to_iso
from connector.sync.ordering import RunOrder
from connector.sync.planning import Planner
from connector.sync.plans import PlannedOp
from connector.sync.reporting import Reporter
from connector.sync.sending import Sender
from connector.sync.summary import PassResult, ProgressCallback, RunSummary
from connector.sync.superseding import Pending, guard_over_remainder

__all__ = ["Turns"]

log = logging.getLogger(__name__)


class Turns:
    """Moves runs through their states once they are planned."""

    def __init__(
        self,
        ctx: SyncContext,
        order: RunOrder,
        planner: Planner,
        sender: Sender,
        reporter: Reporter,
    ) -> None:
        self.ctx = ctx
        self.runs = ctx.runs
        self.order = order
        self.planner = planner
        self.sender = sender
        self.reporter = reporter

    async def advance(
        self,
        src: Source,
        lock: SourceLock,
        progress: ProgressCallback | None,
        out: PassResult,
        *,
        before: Journal | None = None,
        operator_run: str | None = None,
    ) -> Journal | None:
        """Move the source's open runs on, oldest first; returns the run that stopped the
        queue (``delta``), if any.

        ``before``: only runs older than this one (the ingest path). ``operator_run``: the
        run an operator resumes (a blocked one is tried again). In ``delta`` mode the first
        run left planned, held, uploading or blocked is the blocker: later runs are not
        sent, they are queued behind it. In ``full`` mode a waiting run stops the pass for
        the source (the quota or back-pressure applies to the later runs too); held and
        blocked runs do not hold up newer files, which supersede them once sent.
        """
        blocker: Journal | None = None
        for journal in self.order.open_runs(src.name):
            if before is not None and (
                journal.run_id == before.run_id or journal.order >= before.order
            ):
                continue
            journal.lock = lock
            operator = journal.run_id == operator_run
            summary = await self.turn(src, journal, progress, blocker, operator=operator)
            if summary is not None:
                out.append(summary)
            state = journal.state
            if src.mode == "delta":
                if blocker is None and state in QUEUE_STATES:
                    blocker = journal
                    if state is RunState.BLOCKED:
                        out.blocked[src.name] = (
                            f"run {journal.run_id} is blocked; later runs of the source are"
                            " queued behind it (resume or discard it)"
                        )
            elif state is RunState.UPLOADING and journal.waiting:
                break  # later runs of this source queue behind this one
        return blocker

    async def turn(
        self,
        src: Source,
        journal: Journal,
        progress: ProgressCallback | None,
        blocker: Journal | None,
        *,
        operator: bool = False,
    ) -> RunSummary | None:
        """Give one run its turn; ``blocker``: an older run it must wait for (then nothing
        is sent, the run is queued behind it). None when nothing was done with it."""
        state = journal.state
        if state in DISCARDABLE_STATES:
            discard = self.runs.discard_marker(journal.run_id)
            if discard is not None:
                # A discard marker wins over an approval marker: the cautious choice.
                self.discard(journal, f"discarded by {discard}")
                return self.reporter.summary(journal)
        if state is RunState.HELD:
            by = self.runs.approval_marker(journal.run_id)
            if by is None:
                return None
            journal = await self.approve(src, journal, by, progress, blocker=blocker)
        elif state is RunState.PLANNED:
            journal = await self.decide(src, journal, progress, blocker=blocker)
        elif state is RunState.UPLOADING:
            if blocker is not None:
                if not self.queue(journal, blocker):
                    return None  # still queued behind the same run: nothing new to say
            elif journal.queued:
                journal = await self.start(src, journal, progress, "its turn came")
            else:
                journal = await self.sender.upload(src, journal, progress, recheck=operator)
        elif state is RunState.BLOCKED:
            if not operator:
                # An operator resumes it. Listed when it holds up later runs (delta).
                return self.reporter.summary(journal) if src.mode == "delta" else None
            journal.unblock(self.ctx.clock.now())
            self.runs.save(journal)
            if blocker is not None:
                self.queue(journal, blocker)
            else:
                journal = await self.sender.upload(src, journal, progress)
        else:
            return None
        self.reporter.write(journal)
        return self.reporter.summary(journal)

    async def decide(
        self,
        src: Source,
        journal: Journal,
        progress: ProgressCallback | None,
        *,
        blocker: Journal | None = None,
    ) -> Journal:
        """Apply a planned run's guard decision: hold it, queue it, or start it.

        ``delta``: a run with an older run still to send is queued behind it, before the
        guard: it is planned again (and guarded) against the record index once its turn
        comes. ``full``: held, or started (which supersedes older unsent runs).
        """
        if not journal.decided:
            return journal  # planned by an older version: deliver the file again to re-plan
        if src.mode == "delta":
            blocker = blocker or self.order.find_blocker(src, journal)
            if blocker is not None:
                self.queue(journal, blocker)
                return journal
        if journal.decision_hold and src.mode == "full":
            self.guard_over_remainder(src, journal)
        if journal.decision_hold:
            self.hold(journal, journal.decision_hold)
            return journal
        return await self.start(src, journal, progress, None)

    def guard_over_remainder(self, src: Source, journal: Journal) -> None:
        """A held ``full`` run that would supersede runs still sending: ask the guard again,
        not counting what their unsent remainder carries already (it passed the guard, or
        was approved, with them; :mod:`connector.sync.superseding`)."""
        sending = [
            o
            for o in self.order.older_to_supersede(src, journal)
            if o.state in (RunState.UPLOADING, RunState.BLOCKED)
        ]
        if not sending:
            return
        remainder: dict[str, Pending] = {}
        for older in sorted(sending, key=lambda j: j.order):
            members = self.runs.batch_members(older)
            acked = {ext for b in older.batches for ext in members[b.index]}
            for op in self.runs.plan_or_empty(older):
                if op.external_id not in acked:
                    remainder[op.external_id] = _pending(op)
        hold, carried = guard_over_remainder(
            mode=src.mode,
            leaver_policy=src.leavers,
            counts=journal.planned or {},
            ops=(_pending(op) for op in self.runs.load_plan(journal)),
            remainder=remainder,
            population=self.runs.load_records(src.name).active_count(),
            rows=journal.rows_in_file or 0,
            rejected_rows=journal.rejected_count or 0,
            thresholds=src.thresholds,
        )
        if not carried:
            return
        journal.record_plan(hold, journal.plan_index_version, full_resend=False)
        names = ", ".join(o.run_id for o in sending)
        verdict = "it passes" if hold is None else f"still held: {hold.get('message')}"
        journal.event(
            self.ctx.clock.now(),
            f"guard asked again without the {carried} records the unsent remainder of run"
            f" {names} carries already: {verdict}",
        )
        self.runs.save(journal)

    async def approve(
        self,
        src: Source,
        journal: Journal,
        by: str,
        progress: ProgressCallback | None,
        *,
        blocker: Journal | None = None,
    ) -> Journal:
        """Release a held run (refused when its extract is older than the last applied,
        or when the source's target cannot get a token)."""
        last = self.runs.last_applied(src.name)
        extract_at = journal.extract_at
        if last is not None and extract_at is not None and extract_at < last:
            raise RunError(
                f"run {journal.run_id} holds an extract from {to_iso(extract_at)}, older than"
                f" the last one applied ({to_iso(last)}); discard it instead"
            )
        await self.preflight(src)
        journal.approve(by)
        self.runs.delete_markers(journal.run_id, discard=False)
        if src.mode == "delta":
            blocker = blocker or self.order.find_blocker(src, journal)
            if blocker is not None:
                journal.event(self.ctx.clock.now(), f"approved by {by}")
                self.queue(journal, blocker)
                return journal
        return await self.start(src, journal, progress, f"approved by {by}")

    async def start(
        self, src: Source, journal: Journal, progress: ProgressCallback | None, why: str | None
    ) -> Journal:
        """Send a run whose turn has come (guard passed, approved, or queued until now).

        ``full``: older unsent runs are superseded first (this file carries everyone).
        A run planned while other runs could still change the record index is planned
        again if the index changed since; the guard is then asked again, unless an
        operator approved the run.
        """
        approved = bool(journal.approved_by)
        superseded: list[str] = []
        for other in self.order.older_to_supersede(src, journal):
            reason = f"superseded by newer extract run {journal.run_id}"
            if other.batches:
                reason += ", which sends what this run had not sent yet from its newer file"
            self.stop(other, RunState.SUPERSEDED, reason)
            superseded.append(other.run_id)
        if superseded:
            took_over = f"supersedes run {', '.join(superseded)}"
            why = f"{why}; {took_over}" if why else took_over
        replanned, hold = self.planner.replan_if_stale(src, journal)
        if not replanned:
            hold = journal.decision_hold
        if hold and not approved:
            self.hold(journal, hold)
            return journal
        self.runs.mark_applied(src.name, journal)
        detail = f"{journal.to_send or 0} records to send"
        journal.start(self.ctx.clock.now(), f"{why}: {detail}" if why else detail)
        self.runs.save(journal)
        blocker = self.order.find_blocker(src, journal) if src.mode == "full" else None
        if blocker is not None:
            self.queue(journal, blocker)
            return journal
        return await self.sender.upload(src, journal, progress)

    def queue(self, journal: Journal, blocker: Journal) -> bool:
        """Leave ``journal`` queued behind ``blocker``; returns whether its note changed."""
        changed = journal.queue_behind(blocker, self.ctx.clock.now())
        self.runs.save(journal)
        return changed

    def hold(self, journal: Journal, hold: dict[str, Any]) -> None:
        journal.hold_for(hold, self.ctx.clock.now())
        self.runs.save(journal)
        log.warning("run %s: held by the mass-change guard (%s)", journal.run_id, hold.get("code"))

    def discard(self, journal: Journal, text: str) -> None:
        self.stop(journal, RunState.DISCARDED, text)
        self.runs.delete_markers(journal.run_id)

    def stop(self, journal: Journal, state: RunState, reason: str) -> None:
        """End an unfinished run (superseded or discarded); batches it already delivered
        are still reconciled."""
        if journal.batches:
            self.sender.index_acks(journal.source, journal)
        journal.stop(state, reason, self.ctx.clock.now())
        self.runs.save(journal)
        self.reporter.write(journal)

    async def preflight(self, src: Source) -> None:
        """Check the source's target can get a token before anything is released."""
        target = self.ctx.targets(src)
        try:
            check = getattr(target, "preflight", None)
            if callable(check):
                await check()
        finally:
            await target.aclose()


def _pending(op: PlannedOp) -> Pending:
    return Pending(op.kind, op.external_id, op.fingerprint, op.active)
