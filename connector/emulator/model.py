"""In-memory state of the emulated tenant: directory, jobs and their buckets, logs, limits.

All mutation happens on the server's event loop; other threads read through
``RunningEmulator`` helpers that hop onto that loop.
"""

from __future__ import annotations

import random
import threading
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from connector.clock import Clock, SystemClock
from connector.emulator.config import EmulatorConfig, JobConfig, JobState
from connector.emulator.log_store import LogStore
from connector.emulator.schema import (
    ON_PREMISES_TEMPLATE,
    CompiledSchema,
    compile_schema,
    default_schema,
)

__all__ = [
    "CallRecord",
    "DirectoryUser",
    "EmulatorClock",
    "EmulatorState",
    "Fault",
    "JobRuntime",
    "LogEntry",
    "Upload",
    "iso",
]

SERVICE_PRINCIPAL_NAME = "API-driven provisioning to Microsoft Entra ID"
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
SOURCE_SYSTEM_NAME = "API"
"""``sourceSystem.displayName`` of API-driven entries: not documented (assumption)."""
UNRESOLVED = "UnableToResolveReferenceAttributeValue"


def iso(value: datetime) -> str:
    """Graph's UTC timestamp form: ``2026-01-01T00:00:00.123Z`` (milliseconds)."""
    return (
        value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    )


class EmulatorClock:
    """A clock that can be moved forward from any thread (``advance``/``set_offset``).

    Wraps the injected clock (``FakeClock`` in tests), so the introspection API's
    time offset and a test's ``FakeClock.advance`` both move the emulator's time.
    """

    def __init__(self, base: Clock | None = None) -> None:
        self._base: Clock = base or SystemClock()
        self._offset = 0.0
        self._lock = threading.Lock()

    @property
    def offset(self) -> float:
        return self._offset

    def now(self) -> datetime:
        return self._base.now() + timedelta(seconds=self._offset)

    def monotonic(self) -> float:
        return self._base.monotonic() + self._offset

    async def sleep(self, seconds: float) -> None:
        await self._base.sleep(seconds)

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("time only moves forward; use set_offset to go back")
        with self._lock:
            self._offset += seconds

    def set_offset(self, seconds: float) -> None:
        with self._lock:
            self._offset = seconds


@dataclass(slots=True)
class DirectoryUser:
    """One Entra user as the emulator keeps it; ``attributes`` use target (Entra) names."""

    object_id: str
    external_id: str
    account_enabled: bool
    attributes: dict[str, Any]
    created: datetime
    modified: datetime
    manager: str | None = None
    pending_manager: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.object_id,
            "externalId": self.external_id,
            "accountEnabled": self.account_enabled,
            "attributes": dict(self.attributes),
            "manager": self.manager,
            "pendingManager": self.pending_manager,
            "createdDateTime": iso(self.created),
            "lastModifiedDateTime": iso(self.modified),
        }


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    code: str
    reason: str
    category: str = "nonServiceFailure"
    recommended_action: str | None = None


@dataclass(slots=True)
class LogEntry:
    """One provisioningObjectSummary, kept compact and rendered to JSON on read."""

    seq: int
    id: str
    activity: datetime
    job_id: str
    cycle_id: str
    change_id: str
    action: str
    status: str
    error: ErrorInfo | None
    modified: list[tuple[str, Any, Any]]
    source_id: str
    source_display: str | None
    target_id: str | None
    target_display: str | None
    service_principal_id: str
    tenant_id: str
    duration_ms: int
    skipped_attributes: tuple[str, ...] = ()
    matched: bool = True
    pending_reference: str | None = None

    def value(self, name: str) -> Any:
        """A field by the flat name the $filter parser uses."""
        return _LOG_FIELDS[name](self)

    def to_json(self) -> dict[str, Any]:
        """The v1.0 ``provisioningObjectSummary`` shape (resource page and list Example 2)."""
        err = None
        if self.error is not None:
            err = {
                "errorCode": self.error.code,
                "reason": self.error.reason,
                "additionalDetails": None,
                "errorCategory": self.error.category,
                "recommendedAction": self.error.recommended_action,
            }
        return {
            "id": self.id,
            "activityDateTime": iso(self.activity),
            "tenantId": self.tenant_id,
            "jobId": self.job_id,
            "cycleId": self.cycle_id,
            "changeId": self.change_id,
            "durationInMilliseconds": self.duration_ms,
            # initiator resource: initiatorType is user/application/system (the list
            # page's Example 1 misspells it "initiatingType"; the resource is authoritative).
            "initiatedBy": {
                "id": "",
                "displayName": "Azure AD Provisioning Service",
                "initiatorType": "system",
            },
            "provisioningAction": self.action,
            "provisioningStatusInfo": {"status": self.status, "errorInformation": err},
            "provisioningSteps": self._steps(),
            "modifiedProperties": [
                {"displayName": n, "oldValue": _text(o), "newValue": _text(v)}
                for n, o, v in self.modified
            ],
            "servicePrincipal": {
                "id": self.service_principal_id,
                "displayName": SERVICE_PRINCIPAL_NAME,
            },
            "sourceIdentity": {
                "id": self.source_id,
                "displayName": self.source_display,
                "identityType": "User",
                "details": {},
            },
            "targetIdentity": {
                "id": self.target_id,
                "displayName": self.target_display,
                "identityType": "User",
                "details": {},
            },
            "sourceSystem": {"id": None, "displayName": SOURCE_SYSTEM_NAME, "details": {}},
            "targetSystem": {
                "id": None,
                "displayName": target_system_name(self.job_id),
                "details": {
                    "ApplicationId": None,
                    "ServicePrincipalId": self.service_principal_id,
                    "ServicePrincipalDisplayName": SERVICE_PRINCIPAL_NAME,
                },
            },
        }

    def _steps(self) -> list[dict[str, Any]]:
        """Steps named as in Microsoft's examples: ``EntryImport``/``EntryImportAdd``,
        ``EntrySynchronizationAdd`` (matching, create only, as in list Example 2; updates
        have import and export only, as in Example 1), ``EntryExportAdd``/``EntryExportUpdate``;
        ``EntrySynchronizationSkipped`` (monitoring docs) for a record that changes nothing.
        An unresolved manager is a detail of the export step (SkipReason), the entry
        otherwise a success (entra-docs log-analytics queries; Q&A 5830481).
        """
        create = self.action == "create"
        steps: list[dict[str, Any]] = [
            _step(
                "EntryImportAdd" if create else "EntryImport",
                "import",
                "success",
                f"Received User '{self.source_id}' change of type"
                f" ({'Add' if create else 'Update'}) from {SOURCE_SYSTEM_NAME}",
            )
        ]
        if create:
            steps.append(
                _step(
                    "EntrySynchronizationAdd",
                    "matching",
                    "success",
                    f"User '{self.source_id}' will be created in {target_system_name(self.job_id)}"
                    " (no matching User was found)",
                )
            )
        if self.status == "skipped":
            reason = self.error.reason if self.error else "Nothing to change"
            steps.append(_step("EntrySynchronizationSkipped", "matching", "skipped", reason))
            return steps
        details: dict[str, Any] = {"ReportableIdentifier": self.source_id}
        description = (
            self.error.reason
            if self.error and self.status == "failure"
            else f"User '{self.source_id}' was {'created' if create else 'updated'}"
        )
        if self.skipped_attributes and self.status != "failure":
            details.update(PropertyName=", ".join(self.skipped_attributes), SkipReason=UNRESOLVED)
            description = (
                f"We were unable to assign {self.pending_reference or '(unknown)'} as the"
                f" manager of {self.source_id}. Ensure the manager is in scope for"
                " provisioning, then send this record again."
            )
        steps.append(
            _step(
                "EntryExportAdd" if create else "EntryExportUpdate",
                "export",
                "failure" if self.status == "failure" else "success",
                description,
                details,
            )
        )
        return steps


def _step(
    name: str, kind: str, status: str, description: str, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "name": name,
        "provisioningStepType": kind,
        "status": status,
        "description": description,
        "details": details or {},
    }


def target_system_name(job_id: str) -> str:
    """``targetSystem.displayName``: no API-driven example exists (assumption by job type)."""
    return "Active Directory" if job_id.upper().startswith("API2AD.") else "Microsoft Entra ID"


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "True" if value else "False"
    return str(value)


_LOG_FIELDS: dict[str, Any] = {
    "id": lambda e: e.id,
    "jobId": lambda e: e.job_id,
    "cycleId": lambda e: e.cycle_id,
    "changeId": lambda e: e.change_id,
    "tenantId": lambda e: e.tenant_id,
    "provisioningAction": lambda e: e.action,
    "status": lambda e: e.status,
    "sourceId": lambda e: e.source_id,
    "sourceDisplayName": lambda e: e.source_display,
    "identityType": lambda e: "User",
    "targetId": lambda e: e.target_id,
    "targetDisplayName": lambda e: e.target_display,
    "servicePrincipalId": lambda e: e.service_principal_id,
    "sourceSystemName": lambda e: SOURCE_SYSTEM_NAME,
    "targetSystemName": lambda e: target_system_name(e.job_id),
    "activityDateTime": lambda e: e.activity,
}


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


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One bulkUpload call as the server saw it: when, what it answered, how many ops."""

    time: datetime
    monotonic: float
    status: int
    operations: int


class Fault:
    """Outcomes of the fault lottery, drawn once per bulkUpload call."""

    NONE = "none"
    ERROR_500 = "500"
    ERROR_503 = "503"
    DROP_BEFORE = "drop_before"
    DROP_AFTER = "drop_after"


class EmulatorState:
    """The whole emulated tenant. Not thread-safe: use it from the server loop only."""

    def __init__(self, config: EmulatorConfig, clock: Clock | None = None) -> None:
        self.config = config
        self.clock = clock if isinstance(clock, EmulatorClock) else EmulatorClock(clock)
        self.reset()

    def reset(self) -> None:
        """Forget users, logs, buckets, counters; jobs go back to their configured state."""
        cfg = self.config
        self.users: dict[str, DirectoryUser] = {}
        self.upn_index: dict[str, str] = {}
        self.logs = LogStore()
        self.calls: list[CallRecord] = []
        self.rate_window: deque[float] = deque()
        self.logs_window: deque[float] = deque()
        self.quota_window: deque[datetime] = deque()
        self.rng = random.Random(cfg.seed)
        self.jobs: dict[str, JobRuntime] = {}
        for job in cfg.jobs:
            domains = (
                job.verified_domains if job.verified_domains is not None else cfg.verified_domains
            )
            self.jobs[job.job_id] = JobRuntime(
                config=job,
                state=job.state,
                schema=compile_schema(default_schema(job.job_id)),
                verified_domains=frozenset(d.lower() for d in domains),
            )
            self.jobs[job.job_id].set_agent(job.agent_active, self.clock.now())
        self._seq = 0
        self._objects = 0
        # uuid4 per log entry costs an os.urandom call each; a per-run random prefix
        # plus a counter keeps ids GUID-shaped and unique at a fraction of the cost.
        self._entry_prefix = str(uuid.uuid4())[:24]
        self._change_prefix = str(uuid.uuid4())[:24]
        self._object_prefix = str(uuid.uuid4())[:24]

    # --- lookups -------------------------------------------------------------
    def job(self, service_principal_id: str, job_id: str) -> JobRuntime | None:
        job = self.jobs.get(job_id)
        if job is None or job.service_principal_id.lower() != service_principal_id.lower():
            return None
        return job

    def has_service_principal(self, service_principal_id: str) -> bool:
        sp = service_principal_id.lower()
        return any(j.service_principal_id.lower() == sp for j in self.jobs.values())

    @property
    def queued_operations(self) -> int:
        return sum(j.queued_operations for j in self.jobs.values())

    def new_object_id(self) -> str:
        """A GUID-shaped user object id (cheap: a random prefix plus a counter)."""
        self._objects += 1
        return f"{self._object_prefix}{self._objects:012x}"

    def new_entry_ids(self) -> tuple[int, str, str]:
        """(seq, id, changeId) of the next log entry; GUID-shaped, unique per run."""
        self._seq += 1
        tail = f"{self._seq:012x}"
        return self._seq, self._entry_prefix + tail, self._change_prefix + tail

    # --- limits --------------------------------------------------------------
    def check_limits(self) -> tuple[str, float] | None:
        """``None`` when the call may go on (and it is counted), else (which limit, retry s)."""
        cfg = self.config
        mono = self.clock.monotonic()
        now = self.clock.now()
        window = cfg.rate_limit_window_seconds
        if cfg.rate_limit_calls is not None:
            rw = self.rate_window
            while rw and rw[0] <= mono - window:
                rw.popleft()
            if len(rw) >= cfg.rate_limit_calls:
                retry = rw[len(rw) - cfg.rate_limit_calls] + window - mono
                if cfg.count_throttled_calls:
                    rw.append(mono)
                return "rate", max(retry, 0.001)
        if cfg.daily_quota is not None:
            qw = self.quota_window
            if cfg.quota_window == "rolling":
                day = timedelta(hours=24)
                while qw and qw[0] <= now - day:
                    qw.popleft()
                if len(qw) >= cfg.daily_quota:
                    return "quota", max(
                        (qw[len(qw) - cfg.daily_quota] + day - now).total_seconds(), 1
                    )
            else:
                midnight = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
                while qw and qw[0] < midnight:
                    qw.popleft()
                if len(qw) >= cfg.daily_quota:
                    return "quota", max((midnight + timedelta(days=1) - now).total_seconds(), 1)
            qw.append(now)
        if cfg.rate_limit_calls is not None:
            self.rate_window.append(mono)
        return None

    def draw_fault(self) -> tuple[str, float]:
        """Seeded lottery: which fault (if any) this call gets, and its added latency (s)."""
        cfg = self.config
        r = self.rng.random()
        kind = self.rng.random()
        jitter = self.rng.random()
        latency = (cfg.latency_ms + jitter * cfg.latency_jitter_ms) / 1000.0
        if r < cfg.fault_rate:
            return (Fault.ERROR_500 if kind < 0.5 else Fault.ERROR_503), latency
        r -= cfg.fault_rate
        if r < cfg.drop_before_rate:
            return Fault.DROP_BEFORE, latency
        r -= cfg.drop_before_rate
        if r < cfg.drop_after_rate:
            return Fault.DROP_AFTER, latency
        return Fault.NONE, latency

    def record_call(self, status: int, operations: int) -> None:
        self.calls.append(CallRecord(self.clock.now(), self.clock.monotonic(), status, operations))

    # --- logs ----------------------------------------------------------------
    def check_logs_limit(self) -> float | None:
        """``None`` when a log read may go on (it is counted), else seconds to Retry-After.

        Graph throttling limits, "Identity and access reports service limits": "Five
        requests per 10 seconds" per app per tenant, for auditLogRoot and
        provisioningObjectSummary. Throttled reads are not counted (assumption).
        """
        cfg = self.config
        if cfg.logs_rate_limit_calls is None:
            return None
        mono = self.clock.monotonic()
        window = cfg.logs_rate_limit_window_seconds
        lw = self.logs_window
        while lw and lw[0] <= mono - window:
            lw.popleft()
        if len(lw) >= cfg.logs_rate_limit_calls:
            return max(lw[len(lw) - cfg.logs_rate_limit_calls] + window - mono, 0.001)
        lw.append(mono)
        return None

    def log_cutoff(self) -> datetime:
        """Entries stamped at or before this are visible (logs are written ``log_delay`` late)."""
        return self.clock.now() - timedelta(seconds=self.config.log_delay_seconds)

    def visible_logs(self) -> Sequence[LogEntry]:
        """Entries whose log delay has passed, oldest first."""
        return self.logs.visible(self.log_cutoff())
