"""The timer pass: approvals, waiting runs, due pulls, reconciliation, job health, sweep,
status.

Each step is guarded on its own: a busy source (another instance ingesting) is skipped
and reported, and an unexpected failure in one step is recorded without stopping the
others. The status for ``/api/health`` is always written, last.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from connector.clock import Clock
from connector.config import SourcesConfig
from connector.errors import ConcurrentRunError, ConnectorError
from connector.functions.dropzone import STATUS_BLOB, DropZone
from connector.functions.outcomes import ApprovalOutcome, DropOutcome, PassOutcome, is_waiting
from connector.functions.pulls import PullOutcome
from connector.functions.staleness import last_arrival, stale_sources
from connector.functions.telemetry import Telemetry
from connector.functions.values import as_time
from connector.sync.engine import Engine
from connector.sync.journal import OPEN_STATES, RunState
from connector.sync.summary import RunSummary, loggable

__all__ = ["PassHost", "TimerPass"]

log = logging.getLogger("connector.functions")


class PassHost(Protocol):
    """What a pass runs against: the process's runtime (its steps can be replaced)."""

    engine: Engine
    telemetry: Telemetry
    zone: DropZone
    clock: Clock
    config: SourcesConfig

    async def process_approvals(self, busy: set[str] | None = None) -> list[ApprovalOutcome]: ...

    async def check_jobs(self) -> dict[str, dict[str, Any]]: ...

    async def sweep_incoming(self) -> list[DropOutcome]: ...

    async def pull_sources(self) -> list[PullOutcome]: ...


class TimerPass:
    """One timer pass over every source."""

    def __init__(self, host: PassHost) -> None:
        self.host = host

    async def run(self) -> PassOutcome:
        """Run the steps in order; the outcome says which failed and why, briefly."""
        host = self.host
        out = PassOutcome()
        with _step(out, "approvals"):
            out.approvals = await host.process_approvals(out.busy)
        with _step(out, "resume"):
            out.resumed = await self._resume_waiting(out)
        with _step(out, "pull"):
            out.pulls = await host.pull_sources()
            out.busy.update(p.source for p in out.pulls if p.outcome == "busy")
        with _step(out, "reconcile"):
            out.reconciled = await self._reconcile_open_runs(out)
        with _step(out, "jobs"):
            out.jobs = await host.check_jobs()
        with _step(out, "sweep"):
            out.swept = await host.sweep_incoming()
        with _step(out, "status"):
            self._write_status(out)
        return out

    async def _resume_waiting(self, out: PassOutcome) -> list[RunSummary]:
        result = await self.host.engine.resume_waiting()  # a busy source is skipped
        out.busy.update(result.skipped)
        out.blocked.update(result.blocked)
        _source_errors(out, "resume", result.errors)
        for s in result:
            self.host.telemetry.record_run(s, "resume")
        return list(result)

    async def _reconcile_open_runs(self, out: PassOutcome) -> list[RunSummary]:
        result = await self.host.engine.reconcile_open_runs()
        out.busy.update(result.skipped)
        _source_errors(out, "reconcile", result.errors)
        for s in result:
            self.host.telemetry.record_run(s, "reconcile")
        return list(result)

    def _run_counts(self) -> dict[str, dict[str, Any]]:
        """Open, held, waiting and blocked runs per source, and the progress of runs that
        take more than a day's call budget (for the health probe)."""
        counts: dict[str, dict[str, Any]] = {}
        for src in self.host.config.sources:
            runs = [r for r in self.host.engine.list_runs(src.name) if r.state in OPEN_STATES]
            counts[src.name] = {
                "openRuns": len(runs),
                "held": sum(1 for r in runs if r.state == RunState.HELD),
                "waiting": sum(1 for r in runs if is_waiting(r)),
                "blocked": sum(1 for r in runs if r.state == RunState.BLOCKED),
            }
            progress = [{"runId": r.run_id, **r.progress} for r in runs if r.progress]
            if progress:
                counts[src.name]["progress"] = progress
        return counts

    def _previous_status(self) -> dict[str, Any]:
        try:
            previous = self.host.zone.read_json(*STATUS_BLOB)
        except Exception:  # unreadable: nothing on record
            previous = None
        return previous if isinstance(previous, dict) else {}

    def _pull_status(self, out: PassOutcome) -> dict[str, Any]:
        """Each pulled source's last pull outcome: this pass's, else the one on record
        (a failed pull stays listed until a pull of that source succeeds)."""
        names = {s.name for s in self.host.config.sources if s.kind in ("sql", "rest")}
        if not names:
            return {}
        earlier = self._previous_status().get("pulls")
        status = {k: v for k, v in (earlier or {}).items() if k in names}
        status.update({p.source: p.to_status() for p in out.pulls if p.outcome != "busy"})
        return status

    def _last_success(self, out: PassOutcome, now: str) -> object:
        """When reconciliation last succeeded: now, unless this pass's reconcile failed."""
        if "reconcile" not in out.failed_steps:
            return now
        return self._previous_status().get("lastSuccessfulReconcileAt")

    def _arrivals(self) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
        """Per source with ``expect_every``: when watching started, the last arrival (the
        newest run's received time, else the start of watching) and that run's id."""
        watching = dict(self._previous_status().get("watchingSince") or {})
        now = self.host.clock.now()
        arrivals: dict[str, str] = {}
        last_runs: dict[str, str] = {}
        for src in self.host.config.sources:
            if src.expect_every is None:
                continue
            since = as_time(watching.get(src.name)) or now
            watching[src.name] = since.isoformat()
            runs = self.host.engine.list_runs(src.name)  # oldest first
            received = [as_time(r.received_at) for r in runs]
            arrivals[src.name] = last_arrival(received, since).isoformat()
            if runs:
                last_runs[src.name] = runs[-1].run_id
        return watching, arrivals, last_runs

    def _report_stale(self, arrivals: dict[str, str], last_runs: dict[str, str]) -> None:
        """One ``source_stale`` event per stale source, once per pass."""
        now = self.host.clock.now()
        times = {k: as_time(v) for k, v in arrivals.items()}
        for s in stale_sources(self.host.config.sources, times, now):
            self.host.telemetry.source_stale(
                source=s.source,
                hours=s.hours_since(now),
                expected_hours=round(s.expected.total_seconds() / 3600, 2),
                run_id=last_runs.get(s.source, ""),
            )

    def _write_status(self, out: PassOutcome) -> None:
        try:
            runs: dict[str, dict[str, Any]] = self._run_counts()
        except Exception as exc:  # the status is informative; never fail the pass for it
            log.warning("reconcile: run counts unavailable (%s)", type(exc).__name__)
            runs = {}
        try:
            watching, arrivals, last_runs = self._arrivals()
        except Exception as exc:  # as above: staleness is then judged on the next pass
            log.warning("reconcile: arrivals unavailable (%s)", type(exc).__name__)
            watching, arrivals, last_runs = {}, {}, {}
        now = self.host.clock.now().isoformat()
        self.host.zone.write_json(
            *STATUS_BLOB,
            {
                "lastReconcileAt": now,
                "lastSuccessfulReconcileAt": self._last_success(out, now),
                "approvals": len(out.approvals),
                "swept": len(out.swept),
                "resumed": len(out.resumed),
                "stillWaiting": sum(1 for s in out.resumed if is_waiting(s)),
                "reconciled": len(out.reconciled),
                "busy": sorted(out.busy),
                "jobs": out.jobs,
                "runs": runs,
                "blocked": out.blocked,
                "pulls": self._pull_status(out),
                "watchingSince": watching,
                "arrivals": arrivals,
                "errors": out.errors,
            },
        )
        self._report_stale(arrivals, last_runs)


@contextlib.contextmanager
def _step(out: PassOutcome, name: str) -> Iterator[None]:
    """Run one step; a busy source or a failure is recorded, and the pass goes on."""
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


def _source_errors(out: PassOutcome, step: str, errors: Mapping[str, str]) -> None:
    """A source that failed in a step fails the step (the other sources went on)."""
    for source, error in sorted(errors.items()):
        out.failed_steps.add(step)
        out.errors.append(f"{step}[{source}]: {error.split(':', 1)[0]}")
        log.error("reconcile: %s failed for source %s (%s)", step, source, error)
        if out.first_error is None:
            out.first_error = ConnectorError(f"{step} failed for source {source}: {error}")
