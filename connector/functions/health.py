"""The ``/api/health`` document: config, storage, last reconciliation, per-source status.

Cheap on purpose (a probe may call it often): one storage call and the status the last
timer pass wrote; no Graph call, no scan of run journals.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from connector.clock import Clock
from connector.config import SourcesConfig
from connector.functions.dropzone import STATUS_BLOB, DropZone
from connector.functions.settings import schedule_interval
from connector.functions.staleness import Stale, stale_sources
from connector.functions.values import as_int, as_time

__all__ = ["STALE_FLOOR", "health_document", "stale_after"]

#: Health turns ``degraded`` when the last timer pass is older than three schedule
#: intervals, but never sooner than one interval plus the function timeout (a pass may
#: legitimately run that long). Unreadable schedules use this bound alone.
STALE_FLOOR = timedelta(minutes=30)
_STALE_INTERVALS = 3
_STALE_FALLBACK = timedelta(hours=1)


def stale_after(schedule: str) -> timedelta:
    """Age of the last timer pass beyond which the timer is considered dead."""
    interval = schedule_interval(schedule)
    if interval is None:
        return _STALE_FALLBACK
    return max(interval * _STALE_INTERVALS, interval + STALE_FLOOR)


def _read_status(zone: DropZone) -> tuple[bool, dict[str, Any] | None]:
    """Whether storage answers, and the status the last timer pass wrote."""
    reachable = zone.probe()
    status: dict[str, Any] | None = None
    if reachable:
        try:
            status = zone.read_json(*STATUS_BLOB)
        except Exception:  # a corrupt status blob must not break the probe
            status = None
    return reachable, status


def _job_problem(source: str, job: dict[str, Any]) -> str:
    """A job that would not process uploads: its reason and remedy (runs wait for it)."""
    text = f"job not ready for source {source}: {job.get('message') or job.get('code')}"
    if job.get("remedy"):
        text += f"; {job['remedy']}"
    if job.get("until"):
        text += f"; the service's next attempt: {job['until']}"
    return text


def _stale(config: SourcesConfig, status: dict[str, Any] | None, clock: Clock) -> list[Stale]:
    """Sources whose last arrival (as the timer recorded it) is older than their
    ``expect_every``; judged against now, so health turns without waiting for a pass."""
    arrivals = (status or {}).get("arrivals") or {}
    times = {k: as_time(v) for k, v in arrivals.items()}
    return stale_sources(config.sources, times, clock.now())


def _stale_problem(s: Stale, now: datetime) -> str:
    return (
        f"no new file for source {s.source} for {s.hours_since(now)} h"
        f" (expected every {_hours(s.expected)} h; last at {s.last.isoformat()})"
    )


def _hours(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 3600:g}"


def health_document(
    zone: DropZone, config: SourcesConfig, clock: Clock, stale: timedelta
) -> dict[str, Any]:
    """The connector's view of itself.

    ``degraded`` when storage is unreachable, a job is not ready (the reason of
    :func:`connector.graph.jobs.readiness`: runs wait instead of sending), a run is blocked
    (the timer never retries one), a source with ``expect_every`` got nothing new in
    time, the last pull of a ``sql``/``rest`` source failed, or no
    pass has reconciled successfully within ``stale`` (a dead or failing timer means
    nothing is reconciled). ``multiDayRuns``: runs that take more than a day's call
    budget, with their day, share sent and estimated finish (not a problem).
    """
    reachable, status = _read_status(zone)
    jobs = (status or {}).get("jobs") or {}
    runs = (status or {}).get("runs") or {}
    pulls = (status or {}).get("pulls") or {}
    sources = {
        src.name: {"job": jobs.get(src.name), **(runs.get(src.name) or {})}
        | ({"pull": pulls[src.name]} if src.name in pulls else {})
        for src in config.sources
    }
    problems: list[str] = []
    if not reachable:
        problems.append("storage unreachable")
    for name in sorted(n for n, v in sources.items() if not (v.get("job") or {}).get("ok", True)):
        problems.append(_job_problem(name, sources[name]["job"]))
    blocked = sorted(n for n, v in sources.items() if as_int(v.get("blocked")))
    if blocked:
        problems.append("blocked runs (fix the cause, then resume them): " + ", ".join(blocked))
    failed = sorted(
        n for n, v in sources.items() if (v.get("pull") or {}).get("outcome") == "failed"
    )
    if failed:
        problems.append("pull failed (nothing from it applied): " + ", ".join(failed))
    stale_now = _stale(config, status, clock)
    problems.extend(_stale_problem(s, clock.now()) for s in stale_now)
    last = as_time((status or {}).get("lastSuccessfulReconcileAt"))
    if reachable and last is None:
        problems.append("no successful reconcile pass recorded yet")
    elif last is not None and clock.now() - last > stale:
        minutes = int(stale.total_seconds() // 60)
        problems.append(
            f"last successful reconcile pass is older than {minutes} min:"
            " is the timer running and succeeding?"
        )
    return {
        "status": "degraded" if problems else "ok",
        "problems": problems,
        "config": {"loaded": True, "sources": [s.name for s in config.sources]},
        "storage": {"reachable": reachable},
        "lastReconcileAt": (status or {}).get("lastReconcileAt"),
        "lastSuccessfulReconcileAt": (status or {}).get("lastSuccessfulReconcileAt"),
        "staleAfterMinutes": int(stale.total_seconds() // 60),
        "sources": sources,
        "staleSources": [s.source for s in stale_now],
        "multiDayRuns": _multi_day_runs(sources),
    }


def _multi_day_runs(sources: dict[str, dict[str, Any]]) -> list[str]:
    """Runs that take more than a day's call budget, as the last timer pass saw them:
    ``employees: run <id>: 3 of 10 days, 38 % sent, done ~2026-12-14``."""
    return [
        f"{name}: run {p.get('runId')}: {p.get('text')}"
        for name in sorted(sources)
        for p in sources[name].get("progress") or []
        if isinstance(p, dict) and p.get("text")
    ]
