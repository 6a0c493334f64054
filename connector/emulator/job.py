"""A synchronization job as the emulator runs it: its state (Active, Paused, NotRun,
Quarantine, NotConfigured), its bucket of accepted uploads, its schema, the documented
start and restart, and the job JSON the Graph job API answers with.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from connector.emulator.clock import iso
from connector.emulator.config import JobConfig, JobState
from connector.emulator.schema import ON_PREMISES_TEMPLATE, CompiledSchema

__all__ = ["JobRuntime", "Upload"]

AGENT_INACTIVE_CODE = "HybridIdentityServiceNoActiveAgents"
EXECUTION_COUNTS = (
    "countEntitled",
    "countEntitledForProvisioning",
    "countEscrowed",
    "countEscrowedRaw",
    "countExported",
    "countExports",
    "countImported",
    "countImportedDeltas",
    "countImportedReferenceDeltas",
)
"""The count fields of a synchronizationTaskExecution, as its resource page lists them."""


@dataclass(slots=True)
class Upload:
    """One accepted bulkUpload: its operations wait in the job's bucket."""

    operations: list[dict[str, Any]]
    request_id: str
    received: datetime


@dataclass(slots=True)
class JobRuntime:
    """A job's live state: status, bucket, schema, last cycle's counters.

    ``failed_operations`` are records that failed: they keep their place in the bucket
    until the job is restarted (documented: "Failed payloads remain in the queue, which can
    eventually fill the bucket"; fix: "restart the provisioning job"). ``processed`` holds
    the externalIds this job has provisioned: an on-premises AD job resolves manager
    references only against them.
    """

    config: JobConfig
    state: JobState
    schema: CompiledSchema
    verified_domains: frozenset[str]
    queue: deque[Upload] = field(default_factory=deque)
    queued_operations: int = 0
    failed_operations: int = 0
    ignored_operations: int = 0
    quarantine: dict[str, Any] | None = None
    last_execution: dict[str, Any] | None = None
    last_successful_execution: dict[str, Any] | None = None
    last_execution_with_exports: dict[str, Any] | None = None
    successive_failures: int = 0
    cycles: int = 0
    started: bool = False
    agent_active: bool = True
    agent_inactive_since: datetime | None = None
    processed: set[str] = field(default_factory=set)

    @property
    def id(self) -> str:
        return self.config.job_id

    @property
    def service_principal_id(self) -> str:
        return self.config.service_principal_id

    @property
    def on_premises(self) -> bool:
        """An API-driven provisioning job to on-premises AD (``API2AD.`` job id)."""
        return self.id.startswith(ON_PREMISES_TEMPLATE + ".")

    @property
    def runnable(self) -> bool:
        return self.scheduled and self.agent_active

    @property
    def scheduled(self) -> bool:
        """Running periodically: Active, or NotRun once started (its first cycle pending)."""
        return self.state == "Active" or (self.state == "NotRun" and self.started)

    def start(self) -> None:
        """The documented start: resumes a paused job, clears quarantine. A job that has not
        completed a cycle stays ``NotRun`` ("configured, and possibly started, but hasn't
        completed its first run") until its first cycle ends."""
        self.quarantine = None
        if self.state == "NotRun":
            self.started = True
        else:
            self.state = "Active"

    def cycle_completed(self) -> None:
        """After a cycle: a started NotRun job is now Active."""
        if self.state == "NotRun" and self.started:
            self.state = "Active"

    def bucket_full(self, incoming: int, size: int | None) -> bool:
        """Would ``incoming`` more operations overflow the bucket (queued + failed)?"""
        if size is None:
            return False
        return self.queued_operations + self.failed_operations + incoming > size

    def restart(self) -> int:
        """The documented restart: a job that is not running loses its queued uploads
        ("purges the data uploaded prior to the restart, clears any escrows"); failed
        operations (escrows) are cleared either way; quarantine is cleared. Returns the
        number of queued operations purged."""
        purged = 0
        if self.state != "Active":
            purged = self.queued_operations
            self.queue.clear()
            self.queued_operations = 0
        self.failed_operations = 0
        self.successive_failures = 0
        self.state = "Active"
        self.quarantine = None
        return purged

    def set_agent(self, active: bool, now: datetime) -> None:
        """Turn the (on-premises) provisioning agent on or off."""
        self.agent_active = active
        self.agent_inactive_since = None if active else (self.agent_inactive_since or now)

    def _agent_execution(self) -> dict[str, Any]:
        """lastExecution while the agent is inactive: a failed cycle naming the agent
        (error code from Entra cloud sync's error reference; its use here is assumed)."""
        when = iso(self.agent_inactive_since) if self.agent_inactive_since else None
        counts = dict.fromkeys(EXECUTION_COUNTS, 0)
        return {
            "activityIdentifier": None,
            **counts,
            "error": {
                "code": AGENT_INACTIVE_CODE,
                "message": "We're unable to find an active agent for the domain you're trying"
                " to sync. Restart the provisioning agent so its status is active.",
                "tenantActionable": True,
            },
            "state": "Failed",
            "timeBegan": when,
            "timeEnded": when,
        }

    def _schedule(self) -> str:
        """``schedule.state``: Active while scheduled, Paused when paused, else Disabled
        (Microsoft's paused-job example shows ``Disabled``; which one a paused API-driven
        job shows is assumed)."""
        if self.scheduled:
            return "Active"
        return "Paused" if self.state == "Paused" else "Disabled"

    def to_json(self) -> dict[str, Any]:
        quarantine = self.quarantine
        last = self.last_execution
        failures = self.successive_failures
        if self.on_premises and not self.agent_active:
            last, failures = self._agent_execution(), max(1, failures)
        return {
            "id": self.id,
            "templateId": self.id.split(".")[0],
            "schedule": {"expiration": None, "interval": "PT40M", "state": self._schedule()},
            "status": {
                "code": self.state,
                "countSuccessiveCompleteFailures": failures,
                "escrowsPruned": False,
                "lastExecution": last,
                "lastSuccessfulExecution": self.last_successful_execution,
                "lastSuccessfulExecutionWithExports": self.last_execution_with_exports,
                "progress": [],
                "quarantine": quarantine,
                "steadyStateFirstAchievedTime": "0001-01-01T00:00:00Z",
                "steadyStateLastAchievedTime": "0001-01-01T00:00:00Z",
                "synchronizedEntryCountByType": [],
                "troubleshootingUrl": None,
            },
            "synchronizationJobSettings": [
                {"name": "QuarantineTooManyDeletesThreshold", "value": "500"}
            ],
        }
