"""Provisioning-log entries become reconciliation's LogEntry in one typed step.

``log_entry`` must read exactly what ``LogEntry.from_graph`` reads from Graph's JSON: each
case compares it with the dict path it replaces (model → Graph-shaped dict → LogEntry).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from connector.graph.logs import log_entry
from connector.graph.models import ProvisioningObjectSummary
from connector.reconcile import LogEntry, Outcome, SentRecord, classify, outcome_label


def raw(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "act-1",
        "activityDateTime": "2026-01-01T10:00:00.1234567Z",
        "jobId": "job-1",
        "cycleId": "cycle-1",
        "changeId": "change-1",
        "provisioningAction": "Create",
        "provisioningStatusInfo": {"status": "Success", "errorInformation": None},
        "sourceIdentity": {"id": "E00001", "displayName": "x"},
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not ...}


CASES = {
    "success": raw(),
    "no source identity": raw(sourceIdentity=...),
    "empty source id": raw(sourceIdentity={"id": ""}),
    "no time": raw(activityDateTime=...),
    "naive time": raw(activityDateTime="2026-01-01T10:00:00"),
    "offset time": raw(activityDateTime="2026-01-01T12:00:00+02:00"),
    "no action": raw(provisioningAction=...),
    "legacy action only": raw(provisioningAction=..., action="Update"),
    "failure with error": raw(
        provisioningStatusInfo={
            "status": "failure",
            "errorInformation": {"errorCode": "AttrInvalid", "reason": "bad title"},
        }
    ),
    "skipped, reason on a step": raw(
        provisioningStatusInfo={"status": "skipped"},
        provisioningSteps=[
            {"name": "a", "status": "success", "description": "fine"},
            {
                "name": "b",
                "status": "Skipped",
                "description": "not in scope",
                "details": {"SkipReason": "NotEffectivelyEntitled"},
            },
        ],
    ),
    "warning, step without details": raw(
        provisioningStatusInfo={"status": "warning"},
        provisioningSteps=[{"name": "b", "status": "warning", "description": "careful"}],
    ),
    "failure, step error code": raw(
        provisioningStatusInfo={"status": "failure", "errorInformation": {"reason": "why"}},
        provisioningSteps=[{"status": "failure", "details": {"ErrorCode": "E42"}}],
    ),
    "legacy statusInfo": raw(
        provisioningStatusInfo=...,
        statusInfo={"status": "Failure", "errorInformation": {"errorCode": "Old"}},
    ),
    "no status at all": raw(provisioningStatusInfo=...),
    "empty status": raw(provisioningStatusInfo={"status": ""}),
    "unknown future values": raw(
        provisioningAction="someFutureAction",
        provisioningStatusInfo={"status": "unknownFutureValue"},
    ),
    "empty ids": raw(jobId="", cycleId=None, changeId=...),
    "success, unresolved manager in an export step": raw(
        provisioningStatusInfo={"status": "success", "errorInformation": None},
        provisioningSteps=[
            {"name": "EntryImportAdd", "provisioningStepType": "Import", "status": "success"},
            {
                "name": "EntryExportAdd",
                "provisioningStepType": "export",
                "status": "success",
                "description": "We were unable to assign M1 as the manager of E00001.",
                "details": {
                    "PropertyName": "manager",
                    "SkipReason": "UnableToResolveReferenceAttributeValue",
                },
            },
        ],
    ),
    "warning, unresolved manager in details as a JSON string": raw(
        provisioningStatusInfo={"status": "warning"},
        provisioningSteps=[
            {"status": "success", "description": "imported"},
            {
                "status": "Warning",
                "description": "manager skipped",
                "details": '{"SkipReason": "UnableToResolveReferenceAttributeValue"}',
            },
        ],
    ),
    "skipped, unresolved manager as key/value pairs": raw(
        provisioningStatusInfo={"status": "skipped"},
        provisioningSteps=[
            {
                "status": "success",
                "description": "assign manager",
                "details": [
                    {"key": "PropertyName", "value": "manager"},
                    {"key": "SkipReason", "value": "UnableToResolveReferenceAttributeValue"},
                ],
            }
        ],
    ),
    "failure keeps its own code despite a reference step": raw(
        provisioningStatusInfo={
            "status": "failure",
            "errorInformation": {"errorCode": "Conflict", "reason": "UPN in use"},
        },
        provisioningSteps=[{"details": {"SkipReason": "UnableToResolveReferenceAttributeValue"}}],
    ),
    "success with an unrelated step detail": raw(
        provisioningSteps=[{"status": "success", "details": {"ReportableIdentifier": "E00001"}}],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_log_entry_reads_what_from_graph_reads(case: str) -> None:
    summary = ProvisioningObjectSummary.model_validate(CASES[case])
    expected = LogEntry.from_graph(summary.model_dump(by_alias=True, mode="json"))
    assert log_entry(summary) == expected


def test_log_entry_fields() -> None:
    entry = log_entry(ProvisioningObjectSummary.model_validate(CASES["skipped, reason on a step"]))
    assert entry == LogEntry(
        id="act-1",
        activity_at=datetime(2026, 1, 1, 10, 0, 0, 123456, tzinfo=UTC),
        external_id="E00001",
        provisioning_action="create",
        status="skipped",
        error_code="NotEffectivelyEntitled",
        reason="not in scope",
        job_id="job-1",
        cycle_id="cycle-1",
        change_id="change-1",
    )
    assert log_entry(ProvisioningObjectSummary.model_validate(CASES["no source identity"])) is None


@pytest.mark.parametrize(
    "case",
    [
        "success, unresolved manager in an export step",
        "warning, unresolved manager in details as a JSON string",
    ],
)
def test_unresolved_manager_is_found_in_any_step_whatever_the_status(case: str) -> None:
    entry = log_entry(ProvisioningObjectSummary.model_validate(CASES[case]))
    assert entry is not None
    assert entry.error_code == "UnableToResolveReferenceAttributeValue"
    sent = SentRecord(external_id="E00001", sent_at=entry.activity_at, action="joiner")
    outcome = classify(entry, sent)
    assert outcome.outcome is Outcome.SKIPPED  # the engine's reference re-send keys on this
    assert outcome.error_code == "UnableToResolveReferenceAttributeValue"
    assert outcome_label(outcome.outcome, outcome.error_code, "create") == (
        "created (manager unresolved)"
    )


def test_other_outcomes_are_unchanged_by_step_scanning() -> None:
    failed = log_entry(
        ProvisioningObjectSummary.model_validate(
            CASES["failure keeps its own code despite a reference step"]
        )
    )
    plain = log_entry(
        ProvisioningObjectSummary.model_validate(CASES["success with an unrelated step detail"])
    )
    assert failed is not None
    assert plain is not None
    assert failed.error_code == "Conflict"
    assert plain.error_code is None
    sent = SentRecord(external_id="E00001", sent_at=plain.activity_at)
    assert classify(failed, sent).outcome is Outcome.FAILED
    assert classify(plain, sent).outcome is Outcome.CREATED


def test_the_documented_examples_typos_are_tolerated() -> None:
    """v1.0 list Example 1 writes ``initiatingType`` and ``"Import"``/``"Export"`` step types."""
    example = raw(
        provisioningAction="Update",
        initiatedBy={
            "id": "",
            "displayName": "Azure AD Provisioning Service",
            "initiatingType": "System",
        },
        provisioningSteps=[
            {"name": "EntryImport", "provisioningStepType": "Import", "status": "Success"},
            {
                "name": "EntryExportUpdate",
                "provisioningStepType": "Export",
                "status": "success",
                "details": {"ReportableIdentifier": "E00001"},
            },
        ],
    )
    summary = ProvisioningObjectSummary.model_validate(example)
    assert summary.initiator_type == "system"
    assert [s.step_type for s in summary.provisioning_steps] == ["import", "export"]
    entry = log_entry(summary)
    assert entry is not None
    assert (entry.provisioning_action, entry.status, entry.error_code) == (
        "update",
        "success",
        None,
    )
    documented = ProvisioningObjectSummary.model_validate(
        raw(initiatedBy={"initiatorType": "application"}, provisioningSteps=[{}])
    )
    assert documented.initiator_type == "application"
    assert documented.provisioning_steps[0].step_type == "unknownfuturevalue"
    assert ProvisioningObjectSummary.model_validate(raw()).initiator_type is None
