"""In-memory stand-ins for the engine's seams: a provisioning service and a record reader."""

from __future__ import annotations

import asyncio
import csv
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from connector.clock import FakeClock
from connector.config import Source, SourcesConfig, parse_sources
from connector.errors import BadRequestError, GraphError, QuotaExhaustedError
from connector.scim import CORE_USER_SCHEMA, ENTERPRISE_USER_SCHEMA, BulkPayload
from connector.sync.targets import BatchReceipt

JOB = "API2AAD.0123456789abcdef0123456789abcdef.11111111-2222-3333-4444-555555555555"
SP = "00000000-0000-0000-0000-00000000aaaa"


def config(mode: str = "full", **thresholds: Any) -> SourcesConfig:
    th = "".join(f"\n      {k}: {v}" for k, v in thresholds.items())
    text = f"""
reconciliation: {{deadline: 2h, skew: 5m}}
sources:
  - name: employees
    match: employees/
    mapping: mapping.yaml
    service_principal_id: {SP}
    job_id: {JOB}
    mode: {mode}
    leavers: disable
    extract_timestamp: {{pattern: '_(?P<ts>\\d{{8}})\\.csv$', format: '%Y%m%d'}}
    thresholds:{th or " {}"}
"""
    return parse_sources(text)


@dataclass(frozen=True, slots=True)
class Rec:
    line: int
    external_id: str
    data: dict[str, Any]


@dataclass(slots=True)
class Rej:
    line: int
    reason: str
    external_id: str | None = None


class CsvRecords:
    """Reads ``id,upn,name,dept,manager,status`` rows; an empty upn is a rejected row."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rejected: list[Rej] = []
        self.rows = 0

    def __iter__(self) -> Iterator[Rec]:
        with self.path.open(newline="", encoding="utf-8") as fh:
            for i, row in enumerate(csv.DictReader(fh), start=2):
                self.rows += 1
                if not row["upn"]:
                    self.rejected.append(Rej(i, "missing userName", row["id"]))
                    continue
                data: dict[str, Any] = {
                    "schemas": [CORE_USER_SCHEMA, ENTERPRISE_USER_SCHEMA],
                    "externalId": row["id"],
                    "userName": row["upn"],
                    "displayName": row["name"],
                    "active": row["status"] == "Active",
                    ENTERPRISE_USER_SCHEMA: {"department": row["dept"]},
                }
                if row["manager"]:
                    data[ENTERPRISE_USER_SCHEMA]["manager"] = {"value": row["manager"]}
                yield Rec(i, row["id"], data)


def csv_reader(source: Source, path: Path) -> CsvRecords:
    return CsvRecords(path)


def write_extract(path: Path, people: list[tuple[str, ...]]) -> Path:
    lines = ["id,upn,name,dept,manager,status"] + [",".join(p) for p in people]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def people(n: int, dept: str = "Sales", start: int = 1) -> list[tuple[str, ...]]:
    return [
        (
            f"E{i:04}",
            f"user{i}@contoso.com",
            f"User {i}",
            dept,
            "" if i == start else f"E{start:04}",
            "Active",
        )
        for i in range(start, start + n)
    ]


class Crash(Exception):
    """Simulates the process dying mid-upload."""


class CrashAfter:
    """Wraps a target: the service accepts call ``n``, then the process dies before it
    records the 202 (``counter`` is shared so a test can count across targets)."""

    def __init__(self, inner: Any, n: int, counter: list[int]) -> None:
        self.inner, self.n, self.counter = inner, n, counter

    @property
    def job_id(self) -> str | None:
        return self.inner.job_id  # type: ignore[no-any-return]

    async def send(self, payload: Any) -> Any:
        receipt = await self.inner.send(payload)
        self.counter[0] += 1
        if self.counter[0] == self.n:
            raise Crash("killed after the service accepted the batch")
        return receipt

    def iter_logs(self, since: Any) -> Any:
        return self.inner.iter_logs(since)

    async def get_job(self) -> Any:
        return await self.inner.get_job()

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class FakeService:
    """A provisioning job in memory: applies records, writes log entries like Entra's."""

    clock: FakeClock
    log_delay: timedelta = timedelta(minutes=6)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    logs: list[dict[str, Any]] = field(default_factory=list)
    calls: list[list[str]] = field(default_factory=list)
    quota: int | None = None
    crash_on_call: int | None = None
    silent: set[str] = field(default_factory=set)
    job_state: str = "Active"
    refuse: Callable[[dict[str, Any]], str | None] | None = None
    """Per operation: a 400 message when the service refuses it (the whole request fails)."""
    error: GraphError | None = None
    """Raised by every send while set (e.g. a 403)."""
    job_error: GraphError | None = None
    """Raised by every read of the job while set (e.g. a 403 for an identity without a
    job permission)."""
    yield_in_send: bool = False
    """Let other sends run while one is in flight (to observe the window)."""
    in_flight: int = 0
    max_in_flight: int = 0

    def target(self, source: Source) -> FakeTarget:
        return FakeTarget(self)

    def apply(self, payload: BulkPayload) -> None:
        body = orjson.loads(payload.body)
        now = self.clock.now()
        for op in body["Operations"]:
            data = op["data"]
            ext = data["externalId"]
            if ext in self.silent:
                continue
            upn_owner = next(
                (
                    k
                    for k, u in self.users.items()
                    if u["userName"] == data["userName"] and k != ext
                ),
                None,
            )
            entry: dict[str, Any] = {
                "id": f"log-{len(self.logs)}",
                "activityDateTime": (now + self.log_delay).isoformat(),
                "jobId": JOB,
                "sourceIdentity": {"id": ext},
            }
            if upn_owner is not None:
                entry["provisioningAction"] = "create" if ext not in self.users else "update"
                entry["provisioningStatusInfo"] = {
                    "status": "failure",
                    "errorInformation": {
                        "errorCode": "AzureActiveDirectoryConflictEncountered",
                        "reason": "userPrincipalName already in use",
                    },
                }
            else:
                existed = ext in self.users
                was_enabled = self.users.get(ext, {}).get("enabled", True)
                self.users[ext] = {
                    "userName": data["userName"],
                    "displayName": data.get("displayName"),
                    "enabled": data.get("active", True),
                    "department": data.get(ENTERPRISE_USER_SCHEMA, {}).get("department"),
                }
                action = "create" if not existed else "update"
                if existed and was_enabled and data.get("active") is False:
                    action = "disable"
                entry["provisioningAction"] = action
                entry["provisioningStatusInfo"] = {"status": "success"}
            self.logs.append(entry)


@dataclass
class FakeTarget:
    service: FakeService
    closed: bool = False

    @property
    def job_id(self) -> str | None:
        return JOB

    async def send(self, payload: BulkPayload) -> BatchReceipt:
        s = self.service
        if s.error is not None:
            raise s.error
        if s.refuse is not None:
            for op in orjson.loads(payload.body)["Operations"]:
                message = s.refuse(op["data"])
                if message is not None:
                    s.calls.append(list(payload.external_ids))
                    raise BadRequestError(message, status=400, code="InvalidRequest")
        if s.yield_in_send:
            s.in_flight += 1
            s.max_in_flight = max(s.max_in_flight, s.in_flight)
            try:
                await asyncio.sleep(0.001)
            finally:
                s.in_flight -= 1
        n = len(s.calls) + 1
        if s.crash_on_call is not None and n == s.crash_on_call:
            s.crash_on_call = None
            s.apply(payload)  # the service got it, but we die before recording the 202
            s.calls.append(list(payload.external_ids))
            raise Crash("process killed")
        if s.quota is not None and n > s.quota:
            raise QuotaExhaustedError("daily call budget spent (test)")
        s.calls.append(list(payload.external_ids))
        s.apply(payload)
        return BatchReceipt(request_id=f"req-{n}")

    async def iter_logs(self, since: datetime) -> AsyncIterator[dict[str, Any]]:
        now = self.service.clock.now()
        for e in self.service.logs:
            at = datetime.fromisoformat(e["activityDateTime"])
            if since <= at <= now:
                yield e

    async def get_job(self) -> dict[str, Any]:
        if self.service.job_error is not None:
            raise self.service.job_error
        status: dict[str, Any] = {"code": self.service.job_state}
        if self.service.job_state == "Quarantine":
            status["quarantine"] = {"reason": "EncounteredQuarantineException"}
        return {"id": JOB, "status": status}

    async def aclose(self) -> None:
        self.closed = True
