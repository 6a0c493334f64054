"""Each source's provisioning-job readiness, for the timer pass's status and alerts.

The one reading of a job's state (:func:`connector.graph.jobs.readiness`, the same the
engine applies before sending and before reconciling): a job that would not process an
upload (paused, quarantined, not configured, not started, an unknown code, its
on-premises agent inactive, not found) is not ``ok``, with the reason and the remedy, so
``/api/health`` says why runs are waiting.
"""

from __future__ import annotations

import logging
from typing import Any

from connector.config import SourcesConfig
from connector.functions.telemetry import Telemetry
from connector.graph.jobs import NotReady, read_job, readiness
from connector.graph.models import JobStatusCode, SynchronizationJob
from connector.sync.summary import loggable
from connector.sync.targets import TargetFactory

__all__ = ["check_jobs", "job_status"]

log = logging.getLogger("connector.functions")


def _brief(exc: BaseException) -> str:
    """An error for the status and logs: type, code, message without emails/UPNs."""
    return loggable(exc, 300)


def _quarantine_reason(job: SynchronizationJob | None) -> str | None:
    quarantine = job.status.quarantine if job is not None and job.status is not None else None
    return quarantine.reason if quarantine is not None else None


def job_status(body: object) -> dict[str, Any]:
    """One source's entry in the status (stored in ``status.json``, read back by
    ``/api/health``: the shape is kept): ``ok``, ``code``, ``reason`` (the quarantine
    reason, if any), ``message``, and for a job that is not ready ``remedy`` and
    ``until``."""
    job = read_job(body)
    result = readiness(job)
    if not isinstance(result, NotReady):
        note = f" ({result.note})" if result.note else ""
        return {
            "ok": True,
            "code": result.code,
            "reason": None,
            "message": f"job {result.code}{note}",
        }
    return {
        "ok": False,
        "code": result.code,
        "reason": _quarantine_reason(job),
        "message": result.reason,
        "remedy": result.remedy,
        "until": result.until.isoformat() if result.until is not None else None,
    }


async def check_jobs(
    config: SourcesConfig, targets: TargetFactory, telemetry: Telemetry
) -> dict[str, dict[str, Any]]:
    """Every source's provisioning-job readiness (one GET per source).

    A quarantined job raises the ``job_quarantined`` event (the alert); one unreachable
    job is reported as such and does not hide the others.
    """
    result: dict[str, dict[str, Any]] = {}
    for src in config.sources:
        target = targets(src)
        try:
            status = job_status(await target.get_job())
            result[src.name] = status
            if status["code"] == JobStatusCode.QUARANTINE:
                telemetry.job_quarantined(
                    source=src.name, reason_code=status["reason"] or "Unknown"
                )
            elif not status["ok"]:
                log.warning("source %s: %s", src.name, status["message"])
        except Exception as exc:  # one unreachable job must not hide the others
            result[src.name] = {"ok": False, "code": "Unreachable", "message": _brief(exc)}
            log.warning("source %s: job status unavailable (%s)", src.name, type(exc).__name__)
        finally:
            await target.aclose()
    return result
