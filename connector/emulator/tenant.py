"""The emulated tenant: one directory shared by every job, the jobs, the provisioning log,
the bulkUpload calls seen, the limits and the fault lottery.

All mutation happens on the server's event loop; other threads read through
``RunningEmulator`` helpers that hop onto that loop.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from connector.clock import Clock
from connector.emulator.clock import EmulatorClock, iso
from connector.emulator.config import EmulatorConfig
from connector.emulator.faults import FaultLottery
from connector.emulator.job import JobRuntime
from connector.emulator.limits import Limits
from connector.emulator.log_entry import LogEntry
from connector.emulator.log_store import LogStore
from connector.emulator.schema import compile_schema, default_schema

__all__ = ["CallRecord", "DirectoryUser", "EmulatorState"]


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
class CallRecord:
    """One bulkUpload call as the server saw it: when, what it answered, how many ops."""

    time: datetime
    monotonic: float
    status: int
    operations: int


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
        self.limits = Limits(cfg, self.clock)
        self.faults = FaultLottery(cfg)
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

    def record_call(self, status: int, operations: int) -> None:
        """Remember a bulkUpload call and its answer (0: the connection was dropped)."""
        self.calls.append(CallRecord(self.clock.now(), self.clock.monotonic(), status, operations))

    # --- logs ----------------------------------------------------------------
    def log_cutoff(self) -> datetime:
        """Entries stamped at or before this are visible (logs are written ``log_delay`` late)."""
        return self.clock.now() - timedelta(seconds=self.config.log_delay_seconds)

    def visible_logs(self) -> Sequence[LogEntry]:
        """Entries whose log delay has passed, oldest first."""
        return self.logs.visible(self.log_cutoff())
