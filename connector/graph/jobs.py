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
An unknown future code is not documented as running, so it is not ready either.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from connector.graph.models import JobStatusCode, SynchronizationJob

__all__ = [
    "AGENT_INACTIVE_CODES",
    "JobReadiness",
    "NotReady",
    "PassReadiness",
    "Ready",
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


def readiness(job: SynchronizationJob) -> JobReadiness:
    """Ready or NotReady(reason) for a job as ``GET .../jobs/{id}`` returns it."""
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
    detail = f" ({error.code})" if error is not None and error.code else ""
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


class PassReadiness:
    """The readiness of one job, fetched at most once per pass (then cached).

    ``fetch`` is ``GraphClient.get_job`` (or a fake in tests). The engine asks before a
    run's first batch; every run of the same pass shares the one answer.
    """

    def __init__(self, fetch: Callable[[], Awaitable[SynchronizationJob]]) -> None:
        self._fetch = fetch
        self._result: JobReadiness | None = None

    async def get(self) -> JobReadiness:
        if self._result is None:
            self._result = readiness(await self._fetch())
        return self._result
