"""The connector as hosted in Azure Functions: drop handling, the timer pass, health.

``function_app.py`` only parses trigger input and calls this module. One
:class:`Runtime` per worker process holds the settings, the storage client, the engine
and the Graph credential (built lazily by :func:`get_runtime` on the first invocation,
so a bad setting is reported by that invocation, naming the setting).

The functions are plain ``def`` functions: the host runs them on its thread pool, and
each runs its engine call in a private event loop (``asyncio.run``). So a long plan or
upload never stalls ``/api/health`` or another invocation, and the blocking Blob SDK
calls in here are fine. Nothing that belongs to one event loop is shared between
invocations: the engine builds a Graph client (HTTP pool, pacing, budget) per source per
call, and each of those gets its own token provider over the process's one credential
(which caches tokens itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from connector.clock import Clock, SystemClock
from connector.config import Source, SourcesConfig, parse_sources
from connector.dropzone import (
    STATUS_BLOB,
    SWEEP_BLOB,
    ApprovalMarker,
    DropZone,
    IncomingBlob,
    MarkerAction,
    QuarantineProblem,
    split_incoming_name,
)
from connector.errors import (
    ConcurrentRunError,
    ConfigError,
    ConnectorError,
    RunError,
    ThrottledError,
)
from connector.graph.client import RetryPolicy
from connector.reconcile import check_job_health
from connector.settings import AppSettings, schedule_interval
from connector.state.blob import BlobStateStore
from connector.sync.journal import OPEN_STATES, RunState
from connector.sync.summary import RunSummary, loggable
from connector.sync.targets import BatchReceipt, ProvisioningTarget, TargetFactory
from connector.sync.wiring import build_engine
from connector.telemetry import Telemetry, configure_telemetry, get_telemetry

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient

    from connector.scim import BulkPayload

__all__ = [
    "FUNCTIONS_RETRY",
    "MARKER_DISCARDABLE_STATES",
    "MAX_PROBLEMS",
    "STALE_FLOOR",
    "SWEEP_BUDGET_SECONDS",
    "SWEEP_MAX_FILES",
    "SWEEP_MIN_AGE",
    "WAIT_BUDGET_SECONDS",
    "ApprovalOutcome",
    "DropOutcome",
    "PassOutcome",
    "Runtime",
    "get_runtime",
    "reset_runtime",
    "set_runtime",
    "stale_after",
    "sweep_retry_delay",
]

log = logging.getLogger("connector.functions")

#: A file still in ``incoming`` this long after upload was missed by its event (or its
#: delivery gave up); the timer ingests it.
SWEEP_MIN_AGE = timedelta(minutes=10)
#: Files the timer picks up per pass, and the time it may spend on them: the sweep runs
#: last in a pass and must leave the pass well inside ``functionTimeout`` (30 min).
SWEEP_MAX_FILES = 20
SWEEP_BUDGET_SECONDS = 10 * 60.0
#: A file that failed to ingest is retried after 15 min, 30 min, 1 h … at most a day.
_SWEEP_RETRY_BASE = timedelta(minutes=15)
_SWEEP_RETRY_MAX = timedelta(hours=24)
#: Rejected rows listed in a quarantined file's error file (the report has them all).
MAX_PROBLEMS = 1000
#: Health turns ``degraded`` when the last timer pass is older than three schedule
#: intervals, but never sooner than one interval plus the function timeout (a pass may
#: legitimately run that long). Unreadable schedules use this bound alone.
STALE_FLOOR = timedelta(minutes=30)
_STALE_INTERVALS = 3
_STALE_FALLBACK = timedelta(hours=1)

#: Graph retries inside a function invocation: short. A ``Retry-After`` over 30 s, or a
#: second 429/5xx on the same request, ends the attempt and the run waits for the timer
#: (the engine records it as waiting). Documented service behaviour: 429 carries
#: ``Retry-After``; the bounds are our choice, so one invocation never sits for minutes.
FUNCTIONS_RETRY = RetryPolicy(
    max_attempts=2,
    backoff_base=1.0,
    backoff_max=10.0,
    max_retry_after=30.0,
    bucket_full_wait=30.0,
    bucket_full_attempts=1,
    timeout=60.0,
)

#: Retry waits (429, 5xx back-off) one run's upload may spend in one invocation before it
#: stops and is left waiting for the timer; with ``FUNCTIONS_RETRY`` the total stays under
#: this plus one ``max_retry_after``, however many batches are throttled.
WAIT_BUDGET_SECONDS = 30.0

#: States a discard marker in ``approvals`` may discard: the run has sent nothing yet. A
#: run already uploading (or waiting, or blocked, with batches delivered) is left alone:
#: stopping it half-way is an administrator's call (``connector runs discard``, or a
#: ``discards/<run id>`` state document), not one for the approvals container.
MARKER_DISCARDABLE_STATES = frozenset({RunState.RECEIVED, RunState.PLANNED, RunState.HELD})

_APP_ROOT = Path(__file__).resolve().parents[1]


# -- outcomes -----------------------------------------------------------------------------


@dataclass(slots=True)
class DropOutcome:
    """What became of one dropped file; ``line()`` is the invocation's one-line log."""

    blob: str
    action: str  # archived | quarantined | deferred | gone | ignored | failed | skipped
    source: str | None = None
    run_id: str | None = None
    state: str | None = None
    detail: str = ""
    placed: str | None = None
    duplicate: bool = False

    def line(self) -> str:
        parts = [f"{self.blob}: {self.action}"]
        if self.source:
            parts.append(f"source={self.source}")
        if self.run_id:
            parts.append(f"run={self.run_id}")
        if self.state:
            parts.append(f"state={self.state}")
        if self.duplicate:
            parts.append("duplicate=true")
        if self.placed:
            parts.append(f"to={self.placed}")
        if self.detail:
            parts.append(f"({self.detail})")
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class ApprovalOutcome:
    """What the timer did with one marker in ``approvals``.

    ``outcome`` for an approval: approved | already_approved | not_held | refused |
    unknown_run | busy | overridden_by_discard; for a discard: discarded |
    already_discarded | not_discardable | unknown_run | busy; for a resume: resumed |
    not_blocked | unknown_run | busy | overridden_by_discard; for a marker that is not
    understood: invalid_marker. Every outcome but ``busy`` files the marker.
    """

    run_id: str
    outcome: str
    state: str | None = None
    action: str = MarkerAction.APPROVE


@dataclass(slots=True)
class PassOutcome:
    """What one timer pass did."""

    approvals: list[ApprovalOutcome] = field(default_factory=list)
    resumed: list[RunSummary] = field(default_factory=list)
    reconciled: list[RunSummary] = field(default_factory=list)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    swept: list[DropOutcome] = field(default_factory=list)
    busy: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)
    first_error: BaseException | None = None
    failed_steps: set[str] = field(default_factory=set)
    """Steps that failed (raised, or failed for a source) in this pass."""
    blocked: dict[str, str] = field(default_factory=dict)
    """Delta sources whose queue is stopped by a blocked run (source → which run)."""

    def line(self) -> str:
        waiting = sum(1 for s in self.resumed if _is_waiting(s))
        unhealthy = sorted(n for n, j in self.jobs.items() if not j.get("ok"))
        text = (
            f"approvals={len(self.approvals)} resumed={len(self.resumed)}"
            f" still_waiting={waiting} reconciled={len(self.reconciled)} jobs={len(self.jobs)}"
            f" swept={len(self.swept)}"
        )
        if self.busy:
            text += " busy=" + ",".join(sorted(self.busy))
        if unhealthy:
            text += " unhealthy_jobs=" + ",".join(unhealthy)
        if self.blocked:
            text += " blocked=" + ",".join(sorted(self.blocked))
        if self.errors:
            text += f" errors={len(self.errors)}"
        return text


# -- pure helpers -------------------------------------------------------------------------


def sweep_retry_delay(failures: int) -> timedelta:
    """How long the sweep leaves a file alone after its ``failures``-th failure in a row."""
    step: timedelta = _SWEEP_RETRY_BASE * int(2 ** min(10, max(0, failures - 1)))
    return min(step, _SWEEP_RETRY_MAX)


def stale_after(schedule: str) -> timedelta:
    """Age of the last timer pass beyond which the timer is considered dead."""
    interval = schedule_interval(schedule)
    if interval is None:
        return _STALE_FALLBACK
    return max(interval * _STALE_INTERVALS, interval + STALE_FLOOR)


def _as_mapping(value: Any) -> Mapping[str, Any] | None:
    """A job as a Graph-shaped dict (the target returns a dict or a pydantic model)."""
    if value is None or isinstance(value, Mapping):
        return value
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        out = dump(by_alias=True, mode="json")
        return out if isinstance(out, Mapping) else None
    return None


def _is_waiting(s: RunSummary) -> bool:
    return s.waiting_reason is not None or bool(s.waiting)


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _brief(exc: BaseException) -> str:
    """An error for the status and logs: type, code, message without emails/UPNs."""
    return loggable(exc, 300)


def _parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


# -- the per-process runtime --------------------------------------------------------------


class Runtime:
    """Everything the functions share in one worker process: settings, clients, engine.

    Tests build one with their own ``clock`` / ``targets`` / ``service``.
    """

    def __init__(
        self,
        settings: AppSettings,
        *,
        clock: Clock | None = None,
        targets: TargetFactory | None = None,
        service: BlobServiceClient | None = None,
    ) -> None:
        logging.getLogger("azure").setLevel(logging.WARNING)  # not every SDK request
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        configure_telemetry(settings)
        self.telemetry: Telemetry = get_telemetry()
        self.config: SourcesConfig = _with_budget(
            parse_sources(settings.sources_document, path=_APP_ROOT / "CONNECTOR_SOURCES"),
            settings,
        )
        self.service: BlobServiceClient = service or _blob_service(settings)
        self.zone = DropZone(self.service, clock=self.clock)
        self.zone.ensure_containers()
        self.store = BlobStateStore(self.service, clock=self.clock)
        self.targets: TargetFactory = targets or _graph_target_factory(
            settings, self.config, self.store, self.clock
        )
        self.engine = build_engine(
            self.config, self.store, self.targets, self.clock, owner=_owner()
        )
        self.stale_after = stale_after(settings.reconcile_schedule)

    # -- ingest ---------------------------------------------------------------------

    async def ingest(self, trigger_name: str, data: bytes) -> DropOutcome:
        """Handle one dropped file: source → engine → archive or quarantine."""
        try:
            blob_name = split_incoming_name(trigger_name)
        except ValueError as exc:
            return DropOutcome(trigger_name, "ignored", detail=str(exc))
        incoming = self.zone.incoming(blob_name)
        if incoming is None:
            # Only ever deleted after a verified copy: an earlier delivery finished it.
            return DropOutcome(blob_name, "gone", detail="already archived or quarantined")

        try:
            source = self.config.source_for(blob_name)
        except ConfigError as exc:
            return self._quarantine(blob_name, data, None, str(exc), "ambiguous_source")
        if source is None:
            names = ", ".join(s.name for s in self.config.sources)
            reason = (
                f"no source matches {blob_name!r} (sources: {names}); drop the file under a"
                " source's folder, or add a source whose match rule covers it"
            )
            return self._quarantine(blob_name, data, None, reason, "unknown_source")

        import io

        try:
            summary = await self.engine.ingest(
                source.name,
                blob_name,
                io.BytesIO(data),
                incoming.received_at,
                resume_waiting=True,
            )
        except ConcurrentRunError:
            # Another file of this source is being applied. Do not hold the invocation:
            # the file stays in incoming and the timer picks it up.
            return DropOutcome(
                blob_name, "deferred", source.name, detail="source busy; the timer will take it"
            )
        if summary.resumed is False:
            return DropOutcome(
                blob_name,
                "deferred",
                source.name,
                summary.run_id,
                summary.state,
                detail="source busy; the timer continues the run",
                duplicate=True,
            )
        if summary.resumed:
            self.telemetry.record_run(summary, "resume")
            summary.duplicate = True
        elif not summary.duplicate:
            self.telemetry.record_run(summary, "ingest")

        if summary.state == RunState.FAILED and not summary.planned:
            return self._quarantine(
                blob_name,
                data,
                source.name,
                summary.failed_reason or "the extract could not be planned",
                "extract_refused",
                problems=self._rejected_rows(summary.run_id),
                run_id=summary.run_id,
                summary=summary,
            )
        placed = self.zone.archive(
            source=source.name,
            blob_name=blob_name,
            data=data,
            received_at=incoming.received_at,
            run_id=summary.run_id,
        )
        return DropOutcome(
            blob_name,
            "archived",
            source.name,
            summary.run_id,
            summary.state,
            detail=_summary_detail(summary),
            placed=f"archive/{placed.blob_name}",
            duplicate=summary.duplicate,
        )

    def _rejected_rows(self, run_id: str) -> list[QuarantineProblem]:
        """Line numbers and reasons of a refused file's bad rows, from the run's journal.

        The engine journals the rejected rows of a run it refused (messages name columns
        and rules, never values); the first :data:`MAX_PROBLEMS` go in the error file.
        """
        try:
            journal = self.engine.get_run(run_id)
        except RunError:
            return []
        rows = journal.rejected or []
        return [QuarantineProblem(r.reason or "rejected", r.line) for r in rows[:MAX_PROBLEMS]]

    def _quarantine(
        self,
        blob_name: str,
        data: bytes,
        source: str | None,
        reason: str,
        code: str,
        *,
        problems: list[QuarantineProblem] | None = None,
        run_id: str | None = None,
        summary: RunSummary | None = None,
    ) -> DropOutcome:
        incoming = self.zone.incoming(blob_name)
        placed = self.zone.quarantine(
            source=source,
            blob_name=blob_name,
            data=data,
            reason=reason,
            problems=problems,
            run_id=run_id,
            received_at=incoming.received_at if incoming else None,
        )
        if placed.written:
            self.telemetry.file_quarantined(
                source=source or "unknown", reason_code=code, run_id=run_id
            )
        return DropOutcome(
            blob_name,
            "quarantined",
            source,
            run_id,
            summary.state if summary else None,
            detail=code,
            placed=f"quarantine/{placed.blob_name}",
            duplicate=bool(summary and summary.duplicate),
        )

    # -- timer ------------------------------------------------------------------------

    async def run_pass(self) -> PassOutcome:
        """One timer pass: approvals, resume, reconcile, job health, sweep, status.

        Each step is guarded on its own: a busy source (another instance ingesting) is
        skipped and reported, and an unexpected failure in one step is recorded without
        stopping the others. The status for ``/api/health`` is always written.
        """
        out = PassOutcome()
        with self._step(out, "approvals"):
            out.approvals = await self.process_approvals(out.busy)
        with self._step(out, "resume"):
            out.resumed = await self._resume_waiting(out)
        with self._step(out, "reconcile"):
            out.reconciled = await self._reconcile_open_runs(out)
        with self._step(out, "jobs"):
            out.jobs = await self.check_jobs()
        with self._step(out, "sweep"):
            out.swept = await self.sweep_incoming()
        with self._step(out, "status"):
            self._write_status(out)
        return out

    @contextlib.contextmanager
    def _step(self, out: PassOutcome, name: str) -> Iterator[None]:
        try:
            yield
        except ConcurrentRunError as exc:  # a lock held elsewhere is not a failure
            out.busy.add(getattr(exc, "source", None) or name)
            log.info("reconcile: %s skipped (a source is busy)", name)
        except Exception as exc:  # keep the pass going: the steps are independent
            # No traceback: a service's message can echo a UPN; type, code and a
            # sanitised message are enough to find the cause (the journal has the rest).
            log.error("reconcile: %s failed (%s)", name, loggable(exc))
            out.failed_steps.add(name)
            out.errors.append(f"{name}: {type(exc).__name__}")
            if out.first_error is None:
                # The host logs what the function raises (and its cause): a sanitised
                # stand-in, never the original with its message.
                out.first_error = ConnectorError(f"{name} failed: {loggable(exc)}")

    async def _resume_waiting(self, out: PassOutcome) -> list[RunSummary]:
        result = await self.engine.resume_waiting()  # a busy source is skipped, not raised
        out.busy.update(result.skipped)
        out.blocked.update(result.blocked)
        self._source_errors(out, "resume", result.errors)
        for s in result:
            self.telemetry.record_run(s, "resume")
        return list(result)

    async def _reconcile_open_runs(self, out: PassOutcome) -> list[RunSummary]:
        result = await self.engine.reconcile_open_runs()
        out.busy.update(result.skipped)
        self._source_errors(out, "reconcile", result.errors)
        for s in result:
            self.telemetry.record_run(s, "reconcile")
        return list(result)

    @staticmethod
    def _source_errors(out: PassOutcome, step: str, errors: Mapping[str, str]) -> None:
        """A source that failed in a step fails the step (the other sources went on)."""
        for source, error in sorted(errors.items()):
            out.failed_steps.add(step)
            out.errors.append(f"{step}[{source}]: {error.split(':', 1)[0]}")
            log.error("reconcile: %s failed for source %s (%s)", step, source, error)
            if out.first_error is None:
                out.first_error = ConnectorError(f"{step} failed for source {source}: {error}")

    async def process_approvals(self, busy: set[str] | None = None) -> list[ApprovalOutcome]:
        """Approve or discard the runs named by markers in ``approvals``, then file them.

        Discard markers are handled first, and an approval marker for a run that also has
        a discard marker in this pass is never acted on (``overridden_by_discard``): when
        an operator asked for both, not sending is the cautious choice. Idempotent: a
        marker for a run already approved or discarded (by an earlier marker, the CLI or a
        state document) is filed without doing anything. A marker for a busy source stays
        for the next pass (and so does an approval waiting on a busy discard). Who
        approved or discarded (``by``, ``reason``) goes to the run's journal, not to logs.
        """
        markers = self.zone.approval_markers()
        discarding = {m.run_id for m in markers if m.action is MarkerAction.DISCARD}
        # Discards first; otherwise oldest first, as listed (the sort is stable).
        markers.sort(key=lambda m: m.action is not MarkerAction.DISCARD)
        busy_discards: set[str] = set()
        out: list[ApprovalOutcome] = []
        for marker in markers:
            result = await self._handle_marker(marker, discarding, busy_discards)
            out.append(result)
            if result.outcome == "busy":
                if result.action is MarkerAction.DISCARD:
                    busy_discards.add(marker.run_id)
                if busy is not None:
                    busy.add(marker.run_id.rsplit("-", 1)[0])
                continue  # the marker stays: the next pass tries again
            self.zone.file_approval_marker(marker, result.outcome)
            log.info(
                "reconcile: %s marker for run %s: %s (state=%s)",
                result.action,
                marker.run_id,
                result.outcome,
                result.state,
            )
        return out

    async def _handle_marker(
        self, marker: ApprovalMarker, discarding: set[str], busy_discards: set[str]
    ) -> ApprovalOutcome:
        action = marker.action
        if action is MarkerAction.INVALID:
            return ApprovalOutcome(marker.run_id, "invalid_marker", action=action)
        if action is MarkerAction.DISCARD:
            return self._discard(marker)
        if marker.run_id in discarding:
            code = "busy" if marker.run_id in busy_discards else "overridden_by_discard"
            return ApprovalOutcome(
                marker.run_id, code, self._run_state(marker.run_id), action=action
            )
        if action is MarkerAction.RESUME:
            return await self._resume(marker)
        return await self._approve(marker)

    def _run_state(self, run_id: str) -> str | None:
        try:
            return self.engine.get_run(run_id).state.value
        except (RunError, ConnectorError):
            return None

    async def _approve(self, marker: ApprovalMarker) -> ApprovalOutcome:
        run_id = marker.run_id
        try:
            journal = self.engine.get_run(run_id)
        except (RunError, ConnectorError):
            return ApprovalOutcome(run_id, "unknown_run")
        state = journal.state.value
        if state != RunState.HELD:
            code = "already_approved" if journal.approved_by else "not_held"
            return ApprovalOutcome(run_id, code, state)
        by = marker.by or "approvals container"
        try:
            summary = await self.engine.approve(run_id, by=by)
        except ConcurrentRunError:
            return ApprovalOutcome(run_id, "busy", state)
        except RunError as exc:
            log.warning("reconcile: run %s cannot be approved (%s)", run_id, type(exc).__name__)
            return ApprovalOutcome(run_id, "refused", state)
        self.telemetry.record_run(summary, "resume")
        return ApprovalOutcome(run_id, "approved", summary.state)

    async def _resume(self, marker: ApprovalMarker) -> ApprovalOutcome:
        """Resume a blocked run (the timer never retries one: the cause needs fixing first).

        The engine applies runs in order, so a resumed run of a ``delta`` source may end
        queued behind an older one, and the runs queued behind it follow it.
        """
        run_id = marker.run_id
        resume = MarkerAction.RESUME
        try:
            journal = self.engine.get_run(run_id)
        except (RunError, ConnectorError):
            return ApprovalOutcome(run_id, "unknown_run", action=resume)
        state = journal.state.value
        if state != RunState.BLOCKED:
            return ApprovalOutcome(run_id, "not_blocked", state, resume)
        try:
            summary = await self.engine.resume(run_id)
        except ConcurrentRunError:
            return ApprovalOutcome(run_id, "busy", state, resume)
        self.telemetry.record_run(summary, "resume")
        return ApprovalOutcome(run_id, "resumed", summary.state, resume)

    def _discard(self, marker: ApprovalMarker) -> ApprovalOutcome:
        """Discard the run a discard marker names, if it has sent nothing yet.

        The state is checked by the engine under the source's lock
        (:data:`MARKER_DISCARDABLE_STATES`), so a run approved and started meanwhile is
        not stopped half-way. The engine records ``discarded by <by> (reason: <reason>)``
        in the run's journal (``discardedReason`` and the timeline) and its report.
        """
        run_id = marker.run_id
        discard = MarkerAction.DISCARD
        try:
            journal = self.engine.get_run(run_id)
        except (RunError, ConnectorError):
            return ApprovalOutcome(run_id, "unknown_run", action=discard)
        state = journal.state.value
        if state == RunState.DISCARDED or journal.discarded_reason:
            return ApprovalOutcome(run_id, "already_discarded", state, discard)
        by = marker.by or "approvals container"
        try:
            summary = self.engine.discard(
                run_id,
                by=by,
                reason=marker.reason,
                allowed_states=MARKER_DISCARDABLE_STATES,
            )
        except ConcurrentRunError:
            return ApprovalOutcome(run_id, "busy", state, discard)
        except RunError as exc:  # its state changed since it was read
            log.warning("reconcile: run %s cannot be discarded (%s)", run_id, type(exc).__name__)
            return ApprovalOutcome(run_id, "not_discardable", self._run_state(run_id), discard)
        return ApprovalOutcome(run_id, "discarded", summary.state, discard)

    async def sweep_incoming(self) -> list[DropOutcome]:
        """Ingest files still in ``incoming`` well after their upload, one at a time.

        Names are listed first (no bytes); each file is downloaded only when its turn
        comes. A file that failed is left alone for a growing delay (a failure-count
        record in ``reports/_connector/sweep.json``), so a permanently broken file cannot
        block the ones behind it. The sweep stops at :data:`SWEEP_MAX_FILES` files or
        :data:`SWEEP_BUDGET_SECONDS`, whichever comes first; the rest wait for the next pass.
        """
        started = self.clock.monotonic()
        now = self.clock.now()
        listed = self.zone.list_incoming()
        failures = self._sweep_failures()
        changed = False
        outcomes: list[DropOutcome] = []
        for blob in listed:
            if blob.received_at > now - SWEEP_MIN_AGE:
                continue  # too fresh: its event may still be on the way
            if len(outcomes) >= SWEEP_MAX_FILES:
                break
            if self.clock.monotonic() - started >= SWEEP_BUDGET_SECONDS:
                log.info("reconcile: sweep time budget spent; the rest waits for the next pass")
                break
            record = failures.get(blob.name)
            if record is not None and record.get("etag") == blob.etag:
                retry_at = _parse_time(record.get("nextAttemptAt"))
                if retry_at is not None and now < retry_at:
                    continue
            outcome = await self._sweep_one(blob)
            log.info("reconcile: swept %s", outcome.line())
            outcomes.append(outcome)
            if outcome.action == "failed":
                count = 1
                if record is not None and record.get("etag") == blob.etag:
                    count = int(record.get("failures", 0)) + 1
                failures[blob.name] = {
                    "etag": blob.etag,
                    "failures": count,
                    "lastFailureAt": self.clock.now().isoformat(),
                    "nextAttemptAt": (self.clock.now() + sweep_retry_delay(count)).isoformat(),
                    "error": outcome.detail,
                }
                changed = True
            elif failures.pop(blob.name, None) is not None:
                changed = True
        present = {b.name for b in listed}
        for name in [n for n in failures if n not in present]:
            del failures[name]  # gone from incoming: forget it
            changed = True
        if changed:
            self.zone.write_json(*SWEEP_BLOB, {"failures": failures})
        return outcomes

    async def _sweep_one(self, blob: IncomingBlob) -> DropOutcome:
        try:
            data = self.zone.read_incoming(blob.name)
            if data is None:
                return DropOutcome(blob.name, "gone", detail="removed meanwhile")
            return await self.ingest(blob.name, data)
        except Exception as exc:  # one stuck file must not block the others
            log.warning("reconcile: %s could not be ingested (%s)", blob.name, type(exc).__name__)
            return DropOutcome(blob.name, "failed", detail=type(exc).__name__)

    def _sweep_failures(self) -> dict[str, dict[str, Any]]:
        try:
            doc = self.zone.read_json(*SWEEP_BLOB)
        except Exception:  # a corrupt record must not stop the sweep; it is rewritten
            return {}
        failures = (doc or {}).get("failures") if isinstance(doc, dict) else None
        return dict(failures) if isinstance(failures, dict) else {}

    async def check_jobs(self) -> dict[str, dict[str, Any]]:
        """Every source's provisioning-job health (one GET per source)."""
        result: dict[str, dict[str, Any]] = {}
        for src in self.config.sources:
            target = self.targets(src)
            try:
                job = await target.get_job()
                health = check_job_health(_as_mapping(job))
                result[src.name] = {
                    "ok": health.ok,
                    "code": health.code,
                    "reason": health.reason,
                    "message": health.message,
                }
                if health.code == "Quarantine":
                    self.telemetry.job_quarantined(
                        source=src.name, reason_code=health.reason or "Unknown"
                    )
                elif not health.ok:
                    log.warning("source %s: %s", src.name, health.message)
            except Exception as exc:  # one unreachable job must not hide the others
                result[src.name] = {"ok": False, "code": "Unreachable", "message": _brief(exc)}
                log.warning("source %s: job status unavailable (%s)", src.name, type(exc).__name__)
            finally:
                await target.aclose()
        return result

    def _run_counts(self) -> dict[str, dict[str, int]]:
        """Open, held, waiting and blocked runs per source (for the health probe)."""
        counts: dict[str, dict[str, int]] = {}
        for src in self.config.sources:
            runs = [r for r in self.engine.list_runs(src.name) if r.state in OPEN_STATES]
            counts[src.name] = {
                "openRuns": len(runs),
                "held": sum(1 for r in runs if r.state == RunState.HELD),
                "waiting": sum(1 for r in runs if _is_waiting(r)),
                "blocked": sum(1 for r in runs if r.state == RunState.BLOCKED),
            }
        return counts

    def _write_status(self, out: PassOutcome) -> None:
        try:
            runs: dict[str, dict[str, int]] = self._run_counts()
        except Exception as exc:  # the status is informative; never fail the pass for it
            log.warning("reconcile: run counts unavailable (%s)", type(exc).__name__)
            runs = {}
        now = self.clock.now().isoformat()
        last_ok: Any = now
        if "reconcile" in out.failed_steps:
            try:
                previous = self.zone.read_json(*STATUS_BLOB)
            except Exception:  # unreadable: no success on record
                previous = None
            last_ok = (
                (previous or {}).get("lastSuccessfulReconcileAt")
                if isinstance(previous, dict)
                else None
            )
        self.zone.write_json(
            *STATUS_BLOB,
            {
                "lastReconcileAt": now,
                "lastSuccessfulReconcileAt": last_ok,
                "approvals": len(out.approvals),
                "swept": len(out.swept),
                "resumed": len(out.resumed),
                "stillWaiting": sum(1 for s in out.resumed if _is_waiting(s)),
                "reconciled": len(out.reconciled),
                "busy": sorted(out.busy),
                "jobs": out.jobs,
                "runs": runs,
                "blocked": out.blocked,
                "errors": out.errors,
            },
        )

    # -- health -----------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """The connector's view: config, storage, last reconciliation, per-source status.

        Cheap on purpose (a probe may call it often): one storage call and the status
        the last timer pass wrote; no Graph call, no scan of run journals. ``degraded``
        when storage is unreachable, a job is unhealthy, a run is blocked (the timer never
        retries one), or no pass has reconciled successfully within :attr:`stale_after`
        (a dead or failing timer means nothing is reconciled).
        """
        reachable = self.zone.probe()
        status: dict[str, Any] | None = None
        if reachable:
            try:
                status = self.zone.read_json(*STATUS_BLOB)
            except Exception:  # a corrupt status blob must not break the probe
                status = None
        jobs = (status or {}).get("jobs") or {}
        runs = (status or {}).get("runs") or {}
        sources = {
            src.name: {"job": jobs.get(src.name), **(runs.get(src.name) or {})}
            for src in self.config.sources
        }
        problems: list[str] = []
        if not reachable:
            problems.append("storage unreachable")
        unhealthy = sorted(
            n for n, v in sources.items() if not (v.get("job") or {}).get("ok", True)
        )
        if unhealthy:
            problems.append("job unhealthy: " + ", ".join(unhealthy))
        blocked = sorted(n for n, v in sources.items() if _int_or_none(v.get("blocked")))
        if blocked:
            problems.append("blocked runs (fix the cause, then resume them): " + ", ".join(blocked))
        last = _parse_time((status or {}).get("lastSuccessfulReconcileAt"))
        if reachable and last is None:
            problems.append("no successful reconcile pass recorded yet")
        elif last is not None and self.clock.now() - last > self.stale_after:
            minutes = int(self.stale_after.total_seconds() // 60)
            problems.append(
                f"last successful reconcile pass is older than {minutes} min:"
                " is the timer running and succeeding?"
            )
        return {
            "status": "degraded" if problems else "ok",
            "problems": problems,
            "config": {"loaded": True, "sources": [s.name for s in self.config.sources]},
            "storage": {"reachable": reachable},
            "lastReconcileAt": (status or {}).get("lastReconcileAt"),
            "lastSuccessfulReconcileAt": (status or {}).get("lastSuccessfulReconcileAt"),
            "staleAfterMinutes": int(self.stale_after.total_seconds() // 60),
            "sources": sources,
        }


# -- composition ----------------------------------------------------------------------------


class _WaitBoundedTarget:
    """A Graph target that stops sending once its client has waited long enough.

    ``FUNCTIONS_RETRY`` bounds each request's waits; this bounds their sum over one
    upload, so a run throttled on every batch leaves the invocation after about
    :data:`WAIT_BUDGET_SECONDS` instead of ``batches × Retry-After``. Raising
    :class:`ThrottledError` makes the engine record the run as waiting (``throttled``).
    """

    def __init__(self, inner: ProvisioningTarget) -> None:
        self._inner = inner

    @property
    def job_id(self) -> str | None:
        return self._inner.job_id

    def waited(self) -> float:
        metrics = getattr(getattr(self._inner, "client", None), "metrics", None)
        return float(getattr(metrics, "waited_seconds", 0.0))

    async def send(self, payload: BulkPayload) -> BatchReceipt:
        waited = self.waited()
        if waited >= WAIT_BUDGET_SECONDS:
            raise ThrottledError(
                f"waited {waited:.0f} s on throttling during this invocation (budget"
                f" {WAIT_BUDGET_SECONDS:.0f} s); the timer continues the run"
            )
        return await self._inner.send(payload)

    def iter_logs(self, since: datetime) -> AsyncIterator[Any]:
        return self._inner.iter_logs(since)

    async def get_job(self) -> Any:
        return await self._inner.get_job()

    async def aclose(self) -> None:
        await self._inner.aclose()


class _PerLoopTargets:
    """A target factory with one inner factory per running event loop.

    Each invocation runs its own event loop on its own thread; the inner factory's
    per-source rate limiter holds an ``asyncio.Lock``, which must not be shared between
    loops. Runs of one source never upload at the same time (the engine's source lock),
    so pacing per loop loses nothing; the service's 429 stays the backstop.
    """

    def __init__(self, build: Callable[[], TargetFactory]) -> None:
        self._build = build
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, TargetFactory] = (
            weakref.WeakKeyDictionary()
        )
        self._outside: TargetFactory | None = None
        self._lock = threading.Lock()

    def factory(self) -> TargetFactory:
        """The inner factory of the running loop (a shared one outside any loop)."""
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        with self._lock:
            if loop is None:
                if self._outside is None:
                    self._outside = self._build()
                return self._outside
            found = self._by_loop.get(loop)
            if found is None:
                found = self._by_loop[loop] = self._build()
            return found

    def __call__(self, src: Source) -> ProvisioningTarget:
        return _WaitBoundedTarget(self.factory()(src))


def _owner() -> str:
    return f"functions:{socket.gethostname()}:{os.getpid()}"


def _with_budget(config: SourcesConfig, settings: AppSettings) -> SourcesConfig:
    """CONNECTOR_DAILY_CALL_BUDGET, when set, overrides the sources config's budget."""
    if "connector_daily_call_budget" not in settings.model_fields_set:
        return config
    return config.model_copy(update={"daily_call_budget": settings.connector_daily_call_budget})


def _blob_service(settings: AppSettings) -> BlobServiceClient:
    """The drop-zone account's client, resolved like the host resolves the trigger."""
    from azure.storage.blob import BlobServiceClient

    target = settings.storage
    if target.connection_string is not None:
        return BlobServiceClient.from_connection_string(target.connection_string)
    if target.mode == "managed_identity":
        from azure.identity import ManagedIdentityCredential

        credential: Any = ManagedIdentityCredential(client_id=target.managed_identity_client_id)
    else:
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential()
    if target.blob_service_uri is None:  # the settings model refuses this
        raise ConfigError("HrDropStorage__blobServiceUri: missing")
    return BlobServiceClient(target.blob_service_uri, credential=credential)


def _graph_target_factory(
    settings: AppSettings, config: SourcesConfig, store: BlobStateStore, clock: Clock
) -> TargetFactory:
    """Graph targets for the sources: managed identity in Azure, the emulator locally."""
    from connector.graph.auth import CredentialTokenProvider
    from connector.graph.endpoint import Cloud, ProvisioningEndpoint
    from connector.sync.targets import graph_targets, source_cloud

    if settings.connector_emulator_url is not None:
        return _emulator_target_factory(settings, config, store, clock)
    from azure.identity import ManagedIdentityCredential

    # One credential per process (it caches tokens and is thread-safe); a token provider
    # per Graph client, because a provider's lock belongs to the event loop that uses it.
    credential = ManagedIdentityCredential(client_id=settings.require_graph_client_id())

    def tokens(src: Source) -> CredentialTokenProvider:
        if src.endpoint is not None:
            cloud = ProvisioningEndpoint.parse(src.endpoint).cloud or Cloud.GLOBAL
        else:
            cloud = source_cloud(src)
        return CredentialTokenProvider(credential, cloud.scope, clock=clock)

    return _PerLoopTargets(
        lambda: graph_targets(config, store, tokens, clock, retry=FUNCTIONS_RETRY)
    )


def _emulator_target_factory(
    settings: AppSettings, config: SourcesConfig, store: BlobStateStore, clock: Clock
) -> TargetFactory:
    """Local development: every source's job, at the same ids, on the loopback emulator."""
    from connector.graph.auth import StaticTokenProvider
    from connector.graph.endpoint import ProvisioningEndpoint
    from connector.sync.targets import graph_targets, source_cloud

    base = settings.connector_emulator_url
    if base is None:  # pragma: no cover - checked by the caller
        raise ConfigError("CONNECTOR_EMULATOR_URL: missing")
    token = settings.emulator_token_for(base)  # refuses anything but loopback
    if token is None:  # pragma: no cover - the settings model pairs URL and token
        raise ConfigError("CONNECTOR_EMULATOR_TOKEN: missing")

    def endpoint_for(src: Source) -> str:
        if src.endpoint is not None:
            real = ProvisioningEndpoint.parse(src.endpoint)
        elif src.service_principal_id is not None and src.job_id is not None:
            real = ProvisioningEndpoint.build(
                src.service_principal_id, src.job_id, cloud=source_cloud(src)
            )
        else:  # pragma: no cover - the config model refuses this
            raise ConfigError(f"source {src.name} has no provisioning endpoint")
        return (
            f"{base}/{real.api_version}/servicePrincipals/{real.service_principal_id}"
            f"/synchronization/jobs/{real.job_id}/bulkUpload"
        )

    return _PerLoopTargets(
        lambda: graph_targets(
            config,
            store,
            StaticTokenProvider(token),
            clock,
            allow_loopback=True,
            endpoint_for=endpoint_for,
            retry=FUNCTIONS_RETRY,
        )
    )


def _summary_detail(s: RunSummary) -> str:
    from connector.telemetry import waiting_kind

    parts: list[str] = []
    if s.planned:
        parts.append(", ".join(f"{k}={v}" for k, v in s.planned.items()))
    if s.batches_total:
        parts.append(f"batches {s.batches_done}/{s.batches_total}")
    if _is_waiting(s):
        parts.append(f"waiting: {waiting_kind(s)}")
    if s.state == RunState.HELD:
        parts.append("held by the mass-change guard")
    if s.state in (RunState.FAILED, RunState.SUPERSEDED) and s.failed_reason:
        parts.append(s.state)
    return "; ".join(parts)


# -- the process's runtime ------------------------------------------------------------------

_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def get_runtime(factory: Callable[[], Runtime] | None = None) -> Runtime:
    """The worker process's runtime, built on first use (a bad setting raises ConfigError)."""
    global _runtime
    if _runtime is None:
        with _runtime_lock:
            if _runtime is None:
                if factory is None:
                    from connector.settings import load_settings

                    _runtime = Runtime(load_settings())
                else:
                    _runtime = factory()
    return _runtime


def set_runtime(runtime: Runtime | None) -> None:
    """Install a runtime (tests) or forget it (``None``)."""
    global _runtime
    with _runtime_lock:
        _runtime = runtime


def reset_runtime() -> None:
    set_runtime(None)
