"""Typed views of Graph payloads: provisioning log entries and synchronization job status.

Field names follow Graph's ``provisioningObjectSummary`` and ``synchronizationJob``
resources. Graph adds enum members over time (``unknownFutureValue`` is the documented
sentinel) and new properties, so every enum-like field is a plain string with a
``StrEnum`` of the values known today for comparison, and every model keeps unknown
properties instead of failing: a new value in the service must never stop a run.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.alias_generators import to_camel

__all__ = [
    "Identity",
    "JobStatusCode",
    "ModifiedProperty",
    "ProvisioningAction",
    "ProvisioningErrorInfo",
    "ProvisioningObjectSummary",
    "ProvisioningStatus",
    "ProvisioningStatusInfo",
    "ProvisioningStep",
    "QuarantineReason",
    "SynchronizationError",
    "SynchronizationJob",
    "SynchronizationQuarantine",
    "SynchronizationSchedule",
    "SynchronizationStatus",
    "SynchronizationTaskExecution",
]


class _GraphModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="allow", frozen=True
    )


class ProvisioningAction(StrEnum):
    """Values documented today; entries may carry others (kept as strings)."""

    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    STAGED_DELETE = "stagedDelete"
    DISABLE = "disable"
    OTHER = "other"
    UNKNOWN_FUTURE_VALUE = "unknownFutureValue"


class ProvisioningStatus(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    SKIPPED = "skipped"
    WARNING = "warning"
    UNKNOWN_FUTURE_VALUE = "unknownFutureValue"


class JobStatusCode(StrEnum):
    NOT_CONFIGURED = "NotConfigured"
    NOT_RUN = "NotRun"
    ACTIVE = "Active"
    PAUSED = "Paused"
    QUARANTINE = "Quarantine"


class QuarantineReason(StrEnum):
    ENCOUNTERED_BASE_ESCROW_THRESHOLD = "EncounteredBaseEscrowThreshold"
    ENCOUNTERED_TOTAL_ESCROW_THRESHOLD = "EncounteredTotalEscrowThreshold"
    ENCOUNTERED_ESCROW_PROPORTION_THRESHOLD = "EncounteredEscrowProportionThreshold"
    ENCOUNTERED_QUARANTINE_EXCEPTION = "EncounteredQuarantineException"
    UNKNOWN = "Unknown"
    QUARANTINED_ON_DEMAND = "QuarantinedOnDemand"
    TOO_MANY_DELETES = "TooManyDeletes"
    INGESTION_INTERRUPTED = "IngestionInterrupted"


class ProvisioningErrorInfo(_GraphModel):
    error_code: str | None = None
    reason: str | None = None
    additional_details: str | None = None
    error_category: str | None = None
    recommended_action: str | None = None


class ProvisioningStatusInfo(_GraphModel):
    status: str | None = None
    error_information: ProvisioningErrorInfo | None = None


class Identity(_GraphModel):
    id: str | None = None
    display_name: str | None = None
    identity_type: str | None = None
    details: Any = None


class ProvisioningStep(_GraphModel):
    name: str | None = None
    provisioning_step_type: str | None = None
    status: str | None = None
    description: str | None = None
    details: Any = None

    @property
    def step_type(self) -> str:
        """``provisioningStepType`` in lower case: the v1.0 list examples write both
        ``"Import"`` and ``"import"`` (documented values: import, scoping, matching,
        processing, referenceResolution, export, unknownFutureValue)."""
        return (self.provisioning_step_type or ProvisioningStatus.UNKNOWN_FUTURE_VALUE).lower()


class ModifiedProperty(_GraphModel):
    display_name: str | None = None
    old_value: str | None = None
    new_value: str | None = None


class ProvisioningObjectSummary(_GraphModel):
    """One provisioning log entry. ``sourceIdentity.id`` is the externalId we sent."""

    id: str
    activity_date_time: datetime | None = None
    job_id: str | None = None
    cycle_id: str | None = None
    change_id: str | None = None
    tenant_id: str | None = None
    provisioning_action: str | None = None
    provisioning_status_info: ProvisioningStatusInfo | None = None
    provisioning_steps: list[ProvisioningStep] = Field(default_factory=list)
    modified_properties: list[ModifiedProperty] = Field(default_factory=list)
    source_identity: Identity | None = None
    target_identity: Identity | None = None
    source_system: Identity | None = None
    target_system: Identity | None = None
    service_principal: Identity | None = None
    initiated_by: Any = None
    duration_in_milliseconds: int | None = None

    @property
    def external_id(self) -> str | None:
        return self.source_identity.id if self.source_identity else None

    @property
    def initiator_type(self) -> str | None:
        """``initiatedBy.initiatorType`` (``user``, ``application``, ``system``…), lower case.

        The v1.0 list page's Example 1 spells the key ``initiatingType``; both are read.
        """
        raw = self.initiated_by if isinstance(self.initiated_by, dict) else {}
        value = raw.get("initiatorType") or raw.get("initiatingType")
        return str(value).lower() if value else None

    @property
    def action(self) -> str:
        """The action, falling back to the deprecated beta ``action`` property."""
        if self.provisioning_action:
            return self.provisioning_action
        legacy = (self.model_extra or {}).get("action")
        return str(legacy) if legacy else ProvisioningAction.OTHER.value

    @property
    def status(self) -> str:
        """The status, falling back to the deprecated beta ``statusInfo.status``."""
        if self.provisioning_status_info and self.provisioning_status_info.status:
            return self.provisioning_status_info.status
        legacy = (self.model_extra or {}).get("statusInfo")
        if isinstance(legacy, dict) and legacy.get("status"):
            return str(legacy["status"])
        return ProvisioningStatus.UNKNOWN_FUTURE_VALUE.value

    @property
    def error(self) -> ProvisioningErrorInfo | None:
        info = self.provisioning_status_info
        return info.error_information if info else None


def _blank_is_none(value: Any) -> Any:
    """Graph's own job example sends ``""`` for unset quarantine times (Get
    synchronizationJob, v1.0 example: ``"currentBegan": ""``): read it as no value."""
    return None if isinstance(value, str) and not value.strip() else value


JobDateTime = Annotated[datetime | None, BeforeValidator(_blank_is_none)]
"""A date-time of the job status that may be null, absent or an empty string."""


class SynchronizationError(_GraphModel):
    code: str | None = None
    message: str | None = None
    tenant_actionable: bool | None = None


class SynchronizationQuarantine(_GraphModel):
    current_began: JobDateTime = None
    next_attempt: JobDateTime = None
    reason: str | None = None
    series_began: JobDateTime = None
    series_count: int | None = None
    error: SynchronizationError | None = None


class SynchronizationTaskExecution(_GraphModel):
    activity_identifier: str | None = None
    count_entitled: int | None = None
    count_entitled_for_provisioning: int | None = None
    count_escrowed: int | None = None
    count_escrowed_raw: int | None = None
    count_exported: int | None = None
    count_exports: int | None = None
    count_imported: int | None = None
    count_imported_deltas: int | None = None
    count_imported_reference_deltas: int | None = None
    error: SynchronizationError | None = None
    state: str | None = None
    time_began: JobDateTime = None
    time_ended: JobDateTime = None


class SynchronizationStatus(_GraphModel):
    code: str | None = None
    count_successive_complete_failures: int | None = None
    escrows_pruned: bool | None = None
    last_execution: SynchronizationTaskExecution | None = None
    last_successful_execution: SynchronizationTaskExecution | None = None
    last_successful_execution_with_exports: SynchronizationTaskExecution | None = None
    quarantine: SynchronizationQuarantine | None = None
    steady_state_first_achieved_time: JobDateTime = None
    steady_state_last_achieved_time: JobDateTime = None
    troubleshooting_url: str | None = None


class SynchronizationSchedule(_GraphModel):
    """``schedule``: ``state`` is ``Active``, ``Disabled`` or ``Paused`` (documented)."""

    expiration: JobDateTime = None
    interval: str | None = None
    state: str | None = None


class SynchronizationJob(_GraphModel):
    id: str
    template_id: str | None = None
    schedule: SynchronizationSchedule | None = None
    status: SynchronizationStatus | None = None
    synchronization_job_settings: Any = None

    @property
    def code(self) -> str:
        return (self.status.code if self.status else None) or "Unknown"
