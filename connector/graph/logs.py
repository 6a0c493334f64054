"""Provisioning logs: the OData query the client sends and the entry reconciliation reads.

:class:`LogQuery` builds the ``$filter``/``$top``/``$orderby`` parameters (pure); the
client pages through the answers as :class:`~connector.graph.models.ProvisioningObjectSummary`
and :func:`log_entry` turns one into the :class:`~connector.reconcile.LogEntry` that
reconciliation matches, in one typed step (it reads exactly what
``LogEntry.from_graph`` reads from Graph's JSON).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from connector.graph.models import ProvisioningObjectSummary, ProvisioningStep
from connector.reconcile import LogEntry

__all__ = ["LogQuery", "log_entry", "odata_datetime", "odata_string"]


def odata_string(value: str) -> str:
    """An OData string literal: single-quoted, embedded quotes doubled."""
    return "'" + value.replace("'", "''") + "'"


def odata_datetime(moment: datetime) -> str:
    """An OData DateTimeOffset literal in UTC (unquoted)."""
    if moment.tzinfo is None:
        raise ValueError("OData datetimes need an aware datetime (UTC assumed nowhere)")
    utc = moment.astimezone(UTC)
    if utc.microsecond:
        return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return utc.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class LogQuery:
    """A provisioning-logs query. ``job_id`` None means the client's own job.

    Filters use the current property names (``jobId``, ``provisioningStatusInfo/status``),
    not the deprecated ``statusInfo/status`` of older doc examples; Microsoft notes the
    filters are case sensitive.
    """

    job_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    status: str | None = None
    action: str | None = None
    external_id: str | None = None
    cycle_id: str | None = None
    change_id: str | None = None
    top: int | None = None
    order_by: str | None = "activityDateTime desc"

    def filter_expression(self, default_job_id: str | None = None) -> str | None:
        clauses: list[str] = []
        job = self.job_id or default_job_id
        if job:
            clauses.append(f"jobId eq {odata_string(job)}")
        if self.since is not None:
            clauses.append(f"activityDateTime ge {odata_datetime(self.since)}")
        if self.until is not None:
            clauses.append(f"activityDateTime lt {odata_datetime(self.until)}")
        for prop, value in (
            ("provisioningStatusInfo/status", self.status),
            ("provisioningAction", self.action),
            ("sourceIdentity/id", self.external_id),
            ("cycleId", self.cycle_id),
            ("changeId", self.change_id),
        ):
            if value is not None:
                clauses.append(f"{prop} eq {odata_string(value)}")
        return " and ".join(clauses) or None

    def params(self, default_job_id: str | None = None) -> dict[str, str]:
        params: dict[str, str] = {}
        expression = self.filter_expression(default_job_id)
        if expression:
            params["$filter"] = expression
        if self.top is not None:
            if self.top < 1:
                raise ValueError("top must be positive")
            params["$top"] = str(self.top)
        if self.order_by:
            params["$orderby"] = self.order_by
        return params


def log_entry(summary: ProvisioningObjectSummary) -> LogEntry | None:
    """The entry reconciliation matches; None when it names no source identity or time.

    Only ``provisioningStatusInfo`` (or the deprecated beta ``statusInfo``) and
    ``provisioningAction`` are read, as ``LogEntry.from_graph`` reads them: the beta
    ``action`` property is not a fallback here.
    """
    external_id = summary.source_identity.id if summary.source_identity else None
    when = summary.activity_date_time
    if not external_id or when is None:
        return None
    activity_at = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
    status, code, reason = _status(summary)
    if status in ("skipped", "failure", "warning") and code is None:
        code, step_reason = _reason_from_steps(summary.provisioning_steps, status)
        reason = reason or step_reason
    return LogEntry(
        id=summary.id or "",
        activity_at=activity_at,
        external_id=external_id,
        provisioning_action=(summary.provisioning_action or "other").lower(),
        status=status,
        error_code=code,
        reason=reason,
        job_id=_opt_str(summary.job_id),
        cycle_id=_opt_str(summary.cycle_id),
        change_id=_opt_str(summary.change_id),
    )


def _status(summary: ProvisioningObjectSummary) -> tuple[str, str | None, str | None]:
    """Status, error code and reason from the status info (current or deprecated beta)."""
    info = summary.provisioning_status_info
    if info is not None:
        error = info.error_information
        status = info.status
        code = _opt_str(error.error_code) if error else None
        reason = _opt_str(error.reason) if error else None
    else:
        legacy = _mapping((summary.model_extra or {}).get("statusInfo"))
        error_raw = _mapping(legacy.get("errorInformation"))
        status = _opt_str(legacy.get("status"))
        code = _opt_str(error_raw.get("errorCode"))
        reason = _opt_str(error_raw.get("reason"))
    return str(status or "unknownFutureValue").lower(), code, reason


def _reason_from_steps(steps: list[ProvisioningStep], status: str) -> tuple[str | None, str | None]:
    """Skip/failure details the service puts on a provisioning step rather than the summary."""
    for step in steps:
        if str(step.status or "").lower() != status:
            continue
        details = step.details or {}
        code = None
        if isinstance(details, Mapping):
            code = _opt_str(details.get("SkipReason") or details.get("ErrorCode"))
        return code, _opt_str(step.description)
    return None, None


def _mapping(value: object) -> Mapping[str, object]:
    return value if isinstance(value, Mapping) else {}


def _opt_str(value: object) -> str | None:
    if value is None or value == "":
        return None
    return str(value)
