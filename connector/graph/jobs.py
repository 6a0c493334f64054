"""Is the provisioning job ready to take uploads? A pure reading of its ``status``.

Microsoft documents (``synchronizationStatus`` resource, ``code``):

- ``NotConfigured``: "Job was not configured and never run. No authorization was provided."
- ``NotRun``: "Job was configured, and possibly started, but hasn't completed its first run."
- ``Active``: "Job is running periodically."
- ``Paused``: "Job was paused (usually by an administrator) and currently is not running,
  but the state of the job is preserved."
- ``Quarantine``: "...the synchronization process will attempt to run the job with reduced
  frequency."

and, for API-driven provisioning (Entra docs, "Troubleshoot API-driven inbound
provisioning issues"): uploads to a paused job are accepted but "Requests continue to
queue, but processing doesn't run"; the first cause of empty logs is "Your API-driven
provisioning app is paused"; for the on-premises target, "Your On-premises provisioning
agent status is inactive". So a run should not spend its call budget on a job that will
not process the data; it waits and says why.

``NotRun`` is ambiguous ("possibly started"): the job's ``schedule.state`` tells the two
apart. ``Active`` schedule -> started, its first cycle is due -> ready. Anything else ->
not started -> not ready (an upload would only queue, and a later restart purges it).

This is the one reading of a job's state: the engine asks it before sending
(:mod:`connector.sync.readiness`) and before reconciling (a run's ``job_health``), the
timer pass for ``/api/health`` (:mod:`connector.functions.jobs`), ``connector status``
for its ``uploads:`` line. Where the documentation does not decide, the reading is the
one that is safe under either interpretation:

- an unknown code (not one of the five documented values; that the list may grow is
  assumed: many Graph enums carry an ``unknownFutureValue`` member, this one lists none)
  or no status at all: not documented as running, so not ready.
  If the job does run, the cost is a run that waits a pass and a health problem that
  names the code; reading it as ready would, if it does not run, spend the call budget on
  uploads that only queue and hide the problem from ``/api/health``;
- ``NotRun`` with a schedule that is not ``Active``: not ready, for the same reason;
- a job that does not exist (404): not ready, "not found" (the sender leaves that to the
  upload, which reports the 404 itself).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from connector.graph.models import JobStatusCode, SynchronizationJob

__all__ = [
    "AGENT_INACTIVE_CODES",
    "JOB_NOT_FOUND",
    "JobReadiness",
    "NotReady",
    "Ready",
    "read_job",
    "readiness",
]

AGENT_INACTIVE_CODES = frozenset(
    {"HybridIdentityServiceNoActiveAgents", "HybridIdentityServiceNoAgentsAssigned"}
)
"""Provisioning-agent error codes (Entra cloud sync error reference; the same agent serves
API-driven provisioning to on-premises AD). Their use in a job's ``lastExecution.error``
for an API2AD job is our assumption."""


@dataclass(frozen=True, slots=True)
class Ready:
    """Uploads will be processed. ``note`` says why when that is not plain ``Active``."""

    code: str
    note: str | None = None


@dataclass(frozen=True, slots=True)
class NotReady:
    """Uploads would only queue (or be purged): wait. ``reason`` is one line for people,
    ``remedy`` what an administrator does, ``until`` the service's next attempt if known."""

    code: str
    reason: str
    remedy: str
    until: datetime | None = None


JobReadiness = Ready | NotReady

JOB_NOT_FOUND = NotReady(
    "Unknown",
    "the provisioning job was not found",
    "check the source's servicePrincipal and job id (connector status shows the job)",
)
"""A job that does not exist: ``GET .../jobs/{id}`` answered 404."""


def read_job(body: object) -> SynchronizationJob | None:
    """A job as a target returns it (the model, a Graph-shaped dict, or None when the job
    does not exist) as the typed model. ``ValueError`` when it is not a job's shape."""
    if body is None or isinstance(body, SynchronizationJob):
        return body
    if isinstance(body, Mapping):
        return SynchronizationJob.model_validate(dict(body))
    raise ValueError(f"expected a synchronizationJob, got {type(body).__name__}")


def readiness(job: SynchronizationJob | None) -> JobReadiness:
    """Ready or NotReady(reason) for a job as ``GET .../jobs/{id}`` returns it (None: 404)."""
    if job is None:
        return JOB_NOT_FOUND
    code = job.status.code if job.status is not None else None
    if code is None:
        return NotReady(
            "Unknown", "the job reported no status", "check the job in the Entra portal"
        )
    agent = _agent_error(job)
    if agent is not None and code in (JobStatusCode.ACTIVE, JobStatusCode.NOT_RUN):
        return agent
    if code == JobStatusCode.ACTIVE:
        return Ready(code)
    if code == JobStatusCode.NOT_RUN:
        return _not_run(job)
    if code == JobStatusCode.PAUSED:
        return NotReady(
            code,
            "the provisioning job is paused: uploads would queue without being processed",
            "start provisioning (Entra portal, or POST .../start)",
        )
    if code == JobStatusCode.QUARANTINE:
        return _quarantine(job)
    if code == JobStatusCode.NOT_CONFIGURED:
        return NotReady(
            code,
            "the provisioning job is not configured (no authorization was provided)",
            "finish the app's provisioning setup in the Entra portal and start it",
        )
    return NotReady(
        code,
        f"the provisioning job reports status {code!r}, which is not documented as running",
        "check the job in the Entra portal",
    )


def _not_run(job: SynchronizationJob) -> JobReadiness:
    schedule = job.schedule.state if job.schedule is not None else None
    if schedule == "Active":
        return Ready(JobStatusCode.NOT_RUN, "started; its first cycle has not completed yet")
    return NotReady(
        JobStatusCode.NOT_RUN,
        f"the provisioning job has not been started (status NotRun, schedule {schedule or '?'})",
        "start provisioning (Entra portal, or POST .../start)",
    )


def _quarantine(job: SynchronizationJob) -> NotReady:
    status = job.status
    quarantine = status.quarantine if status is not None else None
    why = quarantine.reason if quarantine is not None and quarantine.reason else "unknown reason"
    error = quarantine.error if quarantine is not None else None
    said = [p for p in (error.code, _one_line(error.message)) if p] if error is not None else []
    detail = f" ({': '.join(said)})" if said else ""
    return NotReady(
        JobStatusCode.QUARANTINE,
        f"the provisioning job is in quarantine: {why}{detail}",
        "fix the cause shown in the job's status, then restart the job"
        " (connector job restart) and wait about 40 minutes before sending",
        until=quarantine.next_attempt if quarantine is not None else None,
    )


def _agent_error(job: SynchronizationJob) -> NotReady | None:
    status = job.status
    last = status.last_execution if status is not None else None
    error = last.error if last is not None else None
    if error is None or error.code not in AGENT_INACTIVE_CODES:
        return None
    return NotReady(
        str(status.code if status is not None else "Unknown"),
        f"the on-premises provisioning agent is inactive ({error.code})",
        "restart the provisioning agent service on its server so its status is active",
    )


def _one_line(text: str | None, limit: int = 300) -> str | None:
    """An error message from the service on one line, at most ``limit`` characters."""
    if not text:
        return None
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
