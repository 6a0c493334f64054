"""One provisioning log entry (a provisioningObjectSummary): kept compact while the emulator
runs, rendered to the documented v1.0 JSON shape when read, and read field by field by the
``$filter`` clauses.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from connector.emulator.clock import iso

__all__ = [
    "SOURCE_SYSTEM_NAME",
    "UNRESOLVED",
    "ErrorInfo",
    "LogEntry",
    "display_name",
    "target_system_name",
]

SERVICE_PRINCIPAL_NAME = "API-driven provisioning to Microsoft Entra ID"
SOURCE_SYSTEM_NAME = "API"
"""``sourceSystem.displayName`` of API-driven entries: not documented (assumption)."""
UNRESOLVED = "UnableToResolveReferenceAttributeValue"


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


def display_name(attributes: dict[str, Any]) -> str | None:
    """An identity's ``displayName`` in an entry: the attribute, when it is a string."""
    value = attributes.get("displayName")
    return value if isinstance(value, str) else None
