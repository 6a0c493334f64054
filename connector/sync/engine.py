"""The sync engine: the operations the CLI and the Functions app call.

Each operation takes the source's lock, repairs what an interruption left, and sequences
the stages: :mod:`~connector.sync.planning` (delta, guard, stored plan),
:mod:`~connector.sync.turns` (hold, queue, start, supersede, discard),
:mod:`~connector.sync.sending` over :mod:`~connector.sync.upload` (the send window),
:mod:`~connector.sync.reconciling` (provisioning logs → outcomes),
:mod:`~connector.sync.child_runs` (retries, reference re-sends) and
:mod:`~connector.sync.reporting`. A run's states and allowed moves are in
:mod:`~connector.sync.journal`; every key it is stored under is in
:mod:`~connector.sync.run_store`. Build an engine with
:func:`connector.sync.wiring.build_engine`.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING

import httpx

from connector.clock import Clock
from connector.config import Source, SourcesConfig
from connector.errors import ConcurrentRunError, ConnectorError, RunError
from connector.state.base import SourceLock
from connector.state.store import StateStore
from connector.sync.child_runs import ChildRuns
from connector.sync.context import SyncContext
from connector.sync.journal import (
    DISCARDABLE_STATES,
    Journal,
    RunState,
    make_run_id,
)
from connector.sync.ordering import RunOrder
from connector.sync.planning import Planner
from connector.sync.pulling import Puller, PullResult
from connector.sync.readers import RecordReader, spooled
from connector.sync.readiness import job_health, not_ready_note
from connector.sync.receiving import Arrival, Receiver, already_received
from connector.sync.reconciling import Reconciler
from connector.sync.reporting import Reporter
from connector.sync.sending import Sender
from connector.sync.summary import PassResult, ProgressCallback, RunSummary, loggable
from connector.sync.targets import TargetFactory
from connector.sync.turns import Turns

if TYPE_CHECKING:
    from connector.sources.sql import TokenSource

__all__ = ["Engine"]

log = logging.getLogger(__name__)


class Engine:
    """The sync engine: one object per process, shared by the CLI and the Functions app
    (built by :func:`connector.sync.wiring.build_engine`)."""

    def __init__(
        self, ctx: SyncContext, *, owner: str | None = None, state_name: str | None = None
    ) -> None:
        """``owner``: who holds the source locks this engine takes; ``state_name``: how
        errors name the state store."""
        self.ctx = ctx
        self.runs = ctx.runs
        self.owner = owner or f"engine-{uuid.uuid4().hex[:8]}"
        self.state_name = state_name or repr(ctx.runs)
        self.order = RunOrder(ctx.runs)
        self.planner = Planner(self.ctx)
        self.sender = Sender(self.ctx)
        self.reporter = Reporter(self.ctx)
        self.turns = Turns(self.ctx, self.order, self.planner, self.sender, self.reporter)
        self.child_runs = ChildRuns(self.ctx, self.planner, self.sender, self.reporter)
        self.reconciler = Reconciler(self.ctx)
        self.receiver = Receiver(self.ctx, self.order, self.planner, self.reporter)
        self.puller = Puller(self.ctx, self.ingest)

    # -- what callers may swap or read ------------------------------------------------------

    @property
    def store(self) -> StateStore:
        return self.runs.store

    @property
    def config(self) -> SourcesConfig:
        return self.ctx.config

    @property
    def clock(self) -> Clock:
        return self.ctx.clock

    @property
    def targets(self) -> TargetFactory:
        return self.ctx.targets

    @targets.setter
    def targets(self, value: TargetFactory) -> None:
        self.ctx.targets = value

    @property
    def records(self) -> RecordReader:
        return self.ctx.records

    @records.setter
    def records(self, value: RecordReader) -> None:
        self.ctx.records = value

    @property
    def window(self) -> int:
        return self.ctx.options.window

    @property
    def command_flags(self) -> str:
        return self.ctx.options.command_flags

    @command_flags.setter
    def command_flags(self, value: str) -> None:
        self.ctx.options = dataclasses.replace(self.ctx.options, command_flags=value)

    # -- the source's lock --------------------------------------------------------------------

    @contextmanager
    def _locked(self, src: Source) -> Iterator[SourceLock]:
        """Hold ``src``'s lock for the body, after repairing what an interruption left
        (acknowledged batches not yet in the record index) and before the body runs; the
        lock is released on every exit. A lock held elsewhere raises
        :class:`~connector.errors.ConcurrentRunError` before anything is repaired."""
        with self.runs.lock(src.name, self.owner) as lock:
            self.sender.repair(src.name)
            yield lock

    # -- ingest -----------------------------------------------------------------------------

    async def ingest(
        self,
        source: str,
        name: str,
        stream: IO[bytes] | Path,
        received_at: datetime | None = None,
        *,
        file_time: datetime | None = None,
        dry_run: bool = False,
        full_resend: bool = False,
        progress: ProgressCallback | None = None,
        resume_waiting: bool = False,
    ) -> RunSummary:
        """Take one extract of ``source``: plan it, hold it, queue it or upload it.

        ``name`` is the file's name (used for the extract timestamp and reports);
        ``stream`` its bytes (a binary stream or a path). A dry run plans and reports
        counts without writing anything. ``resume_waiting``: a redelivered file whose run
        is waiting (``uploading``) resumes that run (at-least-once delivery: the
        redelivery is the retry). ``file_time``: the file's own time (its blob's creation
        or its modification time), which orders extracts whose name holds no date
        (:mod:`connector.extract_time`).
        """
        src = self.config.source(source)
        arrival = (received_at or self.clock.now(), file_time)
        if not dry_run:
            # Fail before recording a run when the target cannot even be built (bad
            # endpoint, loopback without permission, missing credentials).
            await self.targets(src).aclose()
        with spooled(stream, name) as (path, sha):
            run_id = make_run_id(src.name, sha)
            if dry_run:
                return self.receiver.dry_run(src, name, path, run_id, arrival, full_resend)
            summary = await self._ingest(src, name, path, run_id, arrival, full_resend, progress)
        if resume_waiting and summary.duplicate and summary.state == RunState.UPLOADING.value:
            return await self._resume_redelivered(summary, progress)
        return summary

    async def _resume_redelivered(
        self, summary: RunSummary, progress: ProgressCallback | None
    ) -> RunSummary:
        """A redelivery after a crash mid-upload continues the run where it stopped."""
        try:
            resumed = await self.resume(summary.run_id, progress)
        except ConcurrentRunError:
            summary.resumed = False
            return summary
        resumed.resumed = True
        return resumed

    async def _ingest(
        self,
        src: Source,
        name: str,
        path: Path,
        run_id: str,
        arrival: Arrival,
        full_resend: bool,
        progress: ProgressCallback | None,
    ) -> RunSummary:
        with self._locked(src) as lock:
            run_id, existing = self.order.delivery(src, run_id, name, *arrival)
            if already_received(existing):
                log.info("run %s: file already received; nothing to do", run_id)
                summary = self.reporter.summary(existing)
                summary.duplicate = True
                return summary
            journal = self.receiver.receive(src, run_id, name, arrival, lock, existing)
            if src.mode == "delta":
                # Changes only, applied in extract order: older runs go first (this one
                # queues behind any that cannot finish now).
                await self.turns.advance(src, lock, None, PassResult(), before=journal)
            keep = self.order.has_unfinished_runs(src.name, journal)
            self.planner.plan(src, journal, path, full_resend=full_resend, keep=keep)
            if journal.state is RunState.PLANNED:
                journal = await self.turns.decide(src, journal, progress)
            self.reporter.write(journal)
            return self.reporter.summary(journal)

    # -- pulled sources -----------------------------------------------------------------------

    async def pull(
        self,
        source: str,
        *,
        dry_run: bool = False,
        credential: TokenSource | None = None,
        settings: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> PullResult:
        """Pull a ``sql`` or ``rest`` source and ingest the snapshot like a dropped file.

        ``credential``: the managed identity for ``auth: entra``; ``settings``: where the
        secrets' app settings are read (default: the environment); ``transport``: an httpx
        transport (tests). A pull that fails raises
        :class:`~connector.errors.SourceError` with nothing recorded; a successful one is
        remembered per source (:mod:`connector.sync.pulling`). A dry run records nothing.
        """
        return await self.puller.pull(
            source, dry_run=dry_run, credential=credential, settings=settings, transport=transport
        )

    def last_pulls(self) -> dict[str, datetime | None]:
        """Each pulled source's last successful pull (None: never)."""
        return self.puller.last_pulls()

    # -- moving runs on -----------------------------------------------------------------------

    async def resume(self, run_id: str, progress: ProgressCallback | None = None) -> RunSummary:
        """Continue one run where its journal stopped (the redelivery and operator path).

        Uploading → sends its unacknowledged batches; held with an approval marker →
        approved and uploaded; planned (a crash after planning) → the stored guard
        decision is applied; blocked (an error retrying cannot fix, since fixed) → tried
        again. Any other state is returned as is. Runs apply in extract order: a run
        with an older run of its source still to send queues behind it instead. In
        ``delta`` mode the whole source moves on in order (older runs first, then this
        one, then the runs queued behind it). Raises
        :class:`~connector.errors.ConcurrentRunError` when the source is busy.
        """
        src = self._find(run_id)
        with self._locked(src) as lock:
            journal = self.runs.require(src.name, run_id)
            if src.mode == "delta":
                await self.turns.advance(src, lock, progress, PassResult(), operator_run=run_id)
                return self.reporter.summary(self.runs.require(src.name, run_id))
            journal.lock = lock
            blocker = self.order.find_blocker(src, journal)
            summary = await self.turns.turn(src, journal, progress, blocker, operator=True)
            return summary if summary is not None else self.reporter.summary(journal)

    async def resume_waiting(self, progress: ProgressCallback | None = None) -> PassResult:
        """Move every source's runs on, oldest extract first: continue runs left uploading,
        apply the guard decision of runs interrupted after planning, release held runs
        that have an approval marker (``approvals/<run id>``), discard runs that have a
        discard marker (``discards/<run id>``).

        In ``delta`` mode runs apply strictly in extract order: the first run that cannot
        go on (waiting, blocked, held) stops the later ones, which stay queued behind it
        (a blocked one is listed and named in :attr:`PassResult.blocked`). Each source
        is handled on its own: a source whose lock is held elsewhere is named in
        :attr:`PassResult.skipped`, one that failed in :attr:`PassResult.errors`; the
        others go on.
        """
        out = PassResult()
        for src in self.config.sources:
            try:
                if not self.order.pass_has_work(src):
                    continue
                with self._locked(src) as lock:
                    await self.turns.advance(src, lock, progress, out)
            except ConcurrentRunError as exc:
                log.info("source %s: busy, skipped this pass", src.name)
                out.skipped[src.name] = str(exc)
            except ConnectorError as exc:
                log.error("source %s: runs not moved on this pass (%s)", src.name, loggable(exc))
                out.errors[src.name] = loggable(exc)
        return out

    async def reconcile_open_runs(self) -> PassResult:
        """One reconciliation pass over every uploaded/reconciling run of every source.

        Sources are independent: a busy source (lock held) is skipped for this pass and
        named in :attr:`PassResult.skipped`; one that failed (storage, Graph, a broken
        document) is named in :attr:`PassResult.errors` and the others go on.
        """
        out = PassResult()
        for src in self.config.sources:
            try:
                await self._reconcile_source(src, out)
            except ConcurrentRunError as exc:
                log.info("source %s: busy, reconciliation skipped this pass", src.name)
                out.skipped[src.name] = str(exc)
            except ConnectorError as exc:
                log.error(
                    "source %s: reconciliation failed this pass (%s)", src.name, loggable(exc)
                )
                out.errors[src.name] = loggable(exc)
        return out

    async def _reconcile_source(self, src: Source, out: PassResult) -> None:
        sent = (RunState.UPLOADED, RunState.RECONCILING)
        open_ids = [j.run_id for j in self.runs.runs(src.name) if j.state in sent]
        if not open_ids:
            return
        target = self.targets(src)
        try:
            with self._locked(src) as lock:
                health = await job_health(src.name, target)
                if health is not None:
                    log.error("source %s: %s", src.name, not_ready_note(health))
                loaded = [self.runs.load(src.name, run_id) for run_id in open_ids]
                journals = [j for j in loaded if j is not None and j.state in sent]
                done = await self.reconciler.reconcile_source(src, journals, target, health, lock)
                for journal in done:
                    self.reporter.write(journal)
                    out.append(self.reporter.summary(journal))
                if health is None:
                    resend = await self.child_runs.resend_references(src, lock)
                    if resend is not None:
                        out.append(resend)
        finally:
            await target.aclose()

    # -- operator actions ---------------------------------------------------------------------

    async def approve(
        self, run_id: str, *, by: str = "operator", progress: ProgressCallback | None = None
    ) -> RunSummary:
        """Release a held run and upload it now.

        Refused (the run stays held) when the extract is older than the last one applied,
        or when no token can be obtained for the source's job (fix the identity first).
        """
        src = self._find(run_id)
        with self._locked(src) as lock:
            journal = self.runs.require(src.name, run_id)
            journal.lock = lock
            if journal.state is not RunState.HELD:
                raise RunError(
                    f"run {run_id} is {journal.state.value}, not held; only a held run can be"
                    " approved (see `connector runs show " + run_id + "`)"
                )
            journal = await self.turns.approve(src, journal, by, progress)
            self.reporter.write(journal)
            return self.reporter.summary(journal)

    def discard(
        self,
        run_id: str,
        *,
        by: str = "operator",
        reason: str | None = None,
        allowed_states: Iterable[RunState | str] | None = None,
    ) -> RunSummary:
        """Drop a run that has not finished sending (received, planned, held, waiting or
        blocked): nothing more of it is sent; batches it delivered are still reconciled.

        ``reason`` goes to the journal with ``by``. ``allowed_states`` narrows the states
        the run may be discarded from (checked under the source's lock, so a run approved
        and started meanwhile is refused with :class:`~connector.errors.RunError`).
        """
        allowed = (
            DISCARDABLE_STATES
            if allowed_states is None
            else frozenset(RunState(s) for s in allowed_states) & DISCARDABLE_STATES
        )
        src = self._find(run_id)
        with self._locked(src) as lock:
            journal = self.runs.require(src.name, run_id)
            journal.lock = lock
            if journal.state not in allowed:
                names = ", ".join(sorted(s.value for s in allowed))
                raise RunError(
                    f"run {run_id} is {journal.state.value}; it can be discarded only when {names}"
                )
            text = f"discarded by {by}"
            if reason:
                text += f" (reason: {' '.join(reason.split())[:300]})"
            self.turns.discard(journal, text)
            return self.reporter.summary(journal)

    async def retry_failed(
        self, run_id: str, *, progress: ProgressCallback | None = None
    ) -> RunSummary:
        """Re-send the records of ``run_id`` whose last outcome is failed, as a new run.

        Only records still owned by that run (no later run sent them) are retried, with
        the data that run sent (from its stored plan; the last payload stored as a
        fallback). Returns the new run; RunError when there is nothing to retry.
        """
        src = self._find(run_id)
        # A token first (as approve does): without one, a retry run would be created only
        # to be blocked, and a second attempt would create another (a duplicate re-send).
        await self.turns.preflight(src)
        with self._locked(src) as lock:
            parent = self.runs.require(src.name, run_id)
            return await self.child_runs.retry_failed(src, parent, lock, progress)

    # -- reading runs -------------------------------------------------------------------------

    def list_runs(self, source: str | None = None) -> list[RunSummary]:
        """Every run's summary, oldest first (by received time)."""
        out = [
            self.reporter.summary(journal)
            for src in self.config.sources
            if source is None or src.name == source
            for journal in self.runs.runs(src.name)
        ]
        out.sort(key=lambda s: s.received_at or "")
        return out

    def get_run(self, run_id: str) -> Journal:
        """The run's journal."""
        return self.runs.require(self._find(run_id).name, run_id)

    def report_paths(self, run_id: str, *, refresh: bool = False) -> dict[str, str]:
        """Where the run's reports are; ``refresh`` rebuilds them from the journal first."""
        src = self._find(run_id)
        journal = self.runs.require(src.name, run_id)
        if refresh:
            return self.reporter.write(journal)
        return self.runs.report_locations(src.name, run_id)

    def _find(self, run_id: str) -> Source:
        for src in self.config.sources:
            if run_id.startswith(src.name + "-") and self.runs.load(src.name, run_id) is not None:
                return src
        raise RunError(
            f"no run {run_id!r} in the state store {self.state_name}; check the run id and"
            " the state option, or see `connector runs list`"
        )
