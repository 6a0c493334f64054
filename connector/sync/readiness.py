"""Is the source's provisioning job ready to take a run's batches? Asked before sending.

The decision itself is :func:`connector.graph.jobs.readiness` (pure; every documented
status code, with the sources it relies on). This module asks it at the right time:
before a run sends its first batch of a pass, once per source per pass (every run of the
pass shares the answer), and turns a "not ready" into the note a waiting run carries.

A *pass* is one holding of the source's lock: every engine operation (a file ingested, a
resume, a timer pass) takes it once per source, so the lock object a run's journal holds
names the pass. Runs sent without a lock (none in the engine today) ask every time.

Reading the job can fail where sending would not: the identity may hold only
``SynchronizationData-User.Upload`` (Microsoft's managed-identity recipe grants it and
``ProvisioningLog.Read.All``, not a job permission), or the read may hit an outage.
Then the check has no opinion and the run is sent as before (fail open): a paused job
accepts uploads and queues them (documented: "Requests continue to queue, but processing
doesn't run"), so sending is never harmful, only wasteful.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from connector.errors import ConnectorError
from connector.graph.jobs import JobReadiness, NotReady, Ready, readiness
from connector.graph.models import SynchronizationJob
from connector.sync.summary import loggable
from connector.sync.targets import ProvisioningTarget, as_mapping

__all__ = ["JobGate", "job_readiness", "not_ready_note", "wait_until"]

log = logging.getLogger(__name__)


def job_readiness(job: object) -> JobReadiness | None:
    """:func:`readiness` of a job as a target returns it (a model or a Graph-shaped dict);
    None when there is no job to read (a 404 is for the upload itself to report)."""
    if job is None:
        return None
    if not isinstance(job, SynchronizationJob):
        body = as_mapping(job)
        if not isinstance(body, Mapping):
            return None
        job = SynchronizationJob.model_validate(dict(body))
    return readiness(job)


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
        try:
            result = job_readiness(await target.get_job())
        except (ConnectorError, ValueError) as exc:
            # No opinion: send as before (see the module docstring).
            log.warning(
                "source %s: job status unavailable before sending (%s); sending anyway",
                source,
                loggable(exc),
            )
            return None
        if isinstance(result, Ready) and result.note:
            log.info("source %s: job %s (%s)", source, result.code, result.note)
        return result


def wait_until(result: NotReady, now: datetime) -> datetime | None:
    """When an automatic pass should check again: the service's next attempt, if later."""
    return result.until if result.until is not None and result.until > now else None
