"""The job states every reader of a job's state is tested with (Graph ``synchronizationJob``
bodies as ``GET .../jobs/{id}`` returns them, and None for a job that does not exist)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

JOB_ID = "API2AAD.0123456789abcdef0123456789abcdef.11111111-2222-3333-4444-555555555555"
NEXT_ATTEMPT = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@dataclass(frozen=True)
class JobCase:
    """A job body and what every reader must make of it."""

    name: str
    body: dict[str, Any] | None
    ready: bool
    code: str
    says: tuple[str, ...]
    """Phrases of the reason (not ready) or note (ready) a person is shown."""
    remedy: str = ""
    until: datetime | None = None


def _job(code: str, schedule: str | None = None, **status: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"id": JOB_ID, "status": {"code": code, **status}}
    if schedule is not None:
        body["schedule"] = {"expiration": None, "interval": "PT40M", "state": schedule}
    return body


CASES = [
    JobCase("active", _job("Active", "Active"), True, "Active", ()),
    JobCase("not_run_started", _job("NotRun", "Active"), True, "NotRun", ("first cycle",)),
    JobCase(
        "not_run_not_started",
        _job("NotRun", "Disabled"),
        False,
        "NotRun",
        ("not been started", "schedule Disabled"),
        "start provisioning",
    ),
    JobCase("paused", _job("Paused", "Paused"), False, "Paused", ("paused",), "start"),
    JobCase(
        "quarantine",
        _job(
            "Quarantine",
            "Disabled",
            quarantine={
                "reason": "EncounteredBaseEscrowThreshold",
                "nextAttempt": NEXT_ATTEMPT.isoformat().replace("+00:00", "Z"),
                "error": {
                    "code": "SystemForCrossDomainIdentityManagementBadResponse",
                    "message": "The target answered\n 500 twice.",
                },
            },
        ),
        False,
        "Quarantine",
        (
            "quarantine",
            "EncounteredBaseEscrowThreshold",
            "SystemForCrossDomainIdentityManagementBadResponse",
            "The target answered 500 twice.",
        ),
        "restart",
        NEXT_ATTEMPT,
    ),
    JobCase(
        "not_configured",
        _job("NotConfigured", "Disabled"),
        False,
        "NotConfigured",
        ("not configured",),
        "setup",
    ),
    JobCase(
        "unknown_code",
        _job("unknownFutureValue", "Active"),
        False,
        "unknownFutureValue",
        ("'unknownFutureValue'", "not documented as running"),
        "Entra portal",
    ),
    JobCase(
        "agent_inactive",
        _job(
            "Active",
            "Active",
            lastExecution={
                "state": "Failed",
                "error": {"code": "HybridIdentityServiceNoActiveAgents", "message": "no agent"},
            },
        ),
        False,
        "Active",
        ("on-premises provisioning agent is inactive", "HybridIdentityServiceNoActiveAgents"),
        "restart the provisioning agent",
    ),
    JobCase("missing", None, False, "Unknown", ("not found",), "job id"),
]

BY_NAME = {case.name: case for case in CASES}
