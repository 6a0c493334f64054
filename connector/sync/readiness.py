"""Is the source's provisioning job ready to take a run's batches? Asked before sending,
and again before reconciling.

The decision itself is :func:`connector.graph.jobs.readiness` (pure; every documented
status code, with the sources it relies on). This module asks it at the right time:
before a run sends its first batch of a pass, once per source per pass (every run of the
pass shares the answer), and turns a "not ready" into the note a waiting run carries;
before a reconciliation pass reads the logs (:func:`job_health`: the same note, on each
open run as its ``job_health``).

A *pass* is one holding of the source's lock: every engine operation (a file ingested, a
resume, a timer pass) takes it once per source, so the lock object a run's journal holds
names the pass. Runs sent without a lock (none in the engine today) ask every time.

Reading the job can fail where sending would not: the identity may hold only
``SynchronizationData-User.Upload`` (Microsoft's managed-identity recipe grants it and
``ProvisioningLog.Read.All``, not a job permission), or the read may hit an outage.
Then the check has no opinion and the run is sent as before (fail open): a paused job
accepts uploads and queues them (documented: "Requests continue to queue, but processing
doesn't run"), so sending is never harmful, only wasteful. A job that does not exist
(404) is left to the upload too, which reports the 404 (blocked, with the endpoint to
check) as it always did.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from connector.errors import ConnectorError
from connector.graph.jobs import JOB_NOT_FOUND, JobReadiness, NotReady, Ready, read_job, readiness
from connector.sync.summary import loggable
from connector.sync.targets import ProvisioningTarget

__all__ = ["JobGate", "job_health", "not_ready_note", "read_readiness", "wait_until"]

log = logging.getLogger(__name__)


def not_ready_note(result: NotReady) -> str:
    """One line for the run's waiting note: the reason, the remedy and the next attempt."""
    note = f"job not ready ({result.code}): {result.reason}; {result.remedy}"
    if result.until is not None:
        note += f"; the service's next attempt: {result.until.isoformat()}"
    return note


@dataclass(slots=True)
class _Answer:
    lock: object
    result: JobReadiness | None


class JobGate:
    """The readiness of each source's job, fetched at most once per pass."""

    def __init__(self) -> None:
        self._answers: dict[str, _Answer] = {}

    async def check(
        self, source: str, target: ProvisioningTarget, lock: object | None
    ) -> NotReady | None:
        """NotReady when the run should wait, None to send (ready, or unknown)."""
        cached = self._answers.get(source)
        if lock is not None and cached is not None and cached.lock is lock:
            result = cached.result
        else:
            result = await self._ask(source, target)
            if lock is not None:
                self._answers[source] = _Answer(lock, result)
        return result if isinstance(result, NotReady) else None

    async def _ask(self, source: str, target: ProvisioningTarget) -> JobReadiness | None:
        result = await read_readiness(source, target, "sending anyway")
        if result is JOB_NOT_FOUND:
            return None  # no job (404): the upload reports it, as it always did
        if isinstance(result, Ready) and result.note:
            log.info("source %s: job %s (%s)", source, result.code, result.note)
        return result


def wait_until(result: NotReady, now: datetime) -> datetime | None:
    """When an automatic pass should check again: the service's next attempt, if later."""
    return result.until if result.until is not None and result.until > now else None


async def read_readiness(
    source: str, target: ProvisioningTarget, instead: str
) -> JobReadiness | None:
    """The job's :func:`readiness` (a job that does not exist: ``JOB_NOT_FOUND``), or None
    when the job cannot be read (no job permission, an outage, not a job's shape): no
    opinion, and the warning says what is done ``instead``."""
    try:
        job = read_job(await target.get_job())
    except (ConnectorError, ValueError) as exc:
        log.warning(
            "source %s: the job's status cannot be read (%s); %s", source, loggable(exc), instead
        )
        return None
    return readiness(job)


async def job_health(source: str, target: ProvisioningTarget) -> NotReady | None:
    """The job's readiness before its logs are read, for the runs being reconciled:
    NotReady (a job that does not exist included) when it would not process what was sent,
    None when it would, or when the job cannot be read. An identity allowed to upload and
    read the logs but not the job (Microsoft's managed-identity recipe grants only
    ``SynchronizationData-User.Upload`` and ``ProvisioningLog.Read.All``) gets a 403 here:
    the logs are still read, as the upload side does, and nothing is said about the job
    (so is an outage of the job read: the log read reports its own)."""
    result = await read_readiness(source, target, "its logs are still read")
    return result if isinstance(result, NotReady) else None
