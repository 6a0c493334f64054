"""Reconciliation: matching provisioning-log entries to sent records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from connector.reconcile import (
    LogEntry,
    Outcome,
    SentRecord,
    reconcile,
)

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
JOB = "API2AAD.abc.123"


def entry(
    ext: str,
    minutes: float,
    action: str = "create",
    status: str = "success",
    code: str | None = None,
    reason: str | None = None,
    job: str = JOB,
    **extra: Any,
) -> dict[str, Any]:
    when = T0 + timedelta(minutes=minutes)
    info: dict[str, Any] = {"status": status}
    if code or reason:
        info["errorInformation"] = {"errorCode": code, "reason": reason}
    return {
        "id": f"log-{ext}-{minutes}",
        "activityDateTime": when.strftime("%Y-%m-%dT%H:%M:%S.%f") + "1Z",
        "jobId": job,
        "provisioningAction": action,
        "provisioningStatusInfo": info,
        "sourceIdentity": {"id": ext},
        **extra,
    }


def sent(ext: str, action: str = "joiner", minutes: float = 0) -> SentRecord:
    return SentRecord(ext, T0 + timedelta(minutes=minutes), request_id="req-1", action=action)


def test_classifies_each_kind_of_entry() -> None:
    records = [
        sent("E1"),
        sent("E2", "mover"),
        sent("E3", "leaver"),
        sent("E4"),
        sent("E5", "mover"),
        sent("E6"),
    ]
    logs = [
        entry("E1", 6),
        entry("E2", 7, action="update"),
        entry("E3", 7, action="disable"),
        entry(
            "E4",
            8,
            status="failure",
            code="AzureActiveDirectoryConflictEncountered",
            reason="userPrincipalName already exists",
        ),
        entry(
            "E5",
            8,
            action="update",
            status="skipped",
            provisioningSteps=[
                {
                    "name": "EntryExportUpdate",
                    "status": "skipped",
                    "description": "manager could not be resolved",
                    "details": {"SkipReason": "UnableToResolveReferenceAttributeValue"},
                },
            ],
        ),
    ]
    result = reconcile(records, logs, now=T0 + timedelta(minutes=20), job_id=JOB)
    o = result.outcomes
    assert o["E1"].outcome is Outcome.CREATED
    assert o["E2"].outcome is Outcome.UPDATED
    assert o["E3"].outcome is Outcome.DISABLED
    assert o["E4"].outcome is Outcome.FAILED
    assert o["E4"].error_code == "AzureActiveDirectoryConflictEncountered"
    assert o["E4"].reason == "userPrincipalName already exists"
    assert o["E5"].outcome is Outcome.SKIPPED
    assert o["E5"].error_code == "UnableToResolveReferenceAttributeValue"
    assert o["E5"].reason == "manager could not be resolved"
    assert o["E6"].outcome is Outcome.PENDING
    assert not result.complete
    assert result.counts == {
        "created": 1,
        "updated": 1,
        "disabled": 1,
        "failed": 1,
        "skipped": 1,
        "pending": 1,
    }


def test_latest_entry_after_send_wins_and_older_entries_are_ignored() -> None:
    records = [sent("E1", "mover", minutes=60)]
    logs = [
        entry("E1", 10, status="failure", code="Old"),  # before this send: a previous run
        entry("E1", 70, status="failure", code="Transient"),
        entry("E1", 75, action="update"),
    ]
    result = reconcile(records, logs, now=T0 + timedelta(hours=2))
    assert result.outcomes["E1"].outcome is Outcome.UPDATED
    assert result.outcomes["E1"].error_code is None
    # Order of arrival must not matter.
    result2 = reconcile(records, list(reversed(logs)), now=T0 + timedelta(hours=2))
    assert result2.outcomes["E1"].outcome is Outcome.UPDATED


def test_skew_margin_accepts_entries_slightly_before_send() -> None:
    records = [sent("E1", minutes=10)]
    logs = [entry("E1", 8)]
    assert reconcile(records, logs, now=T0).outcomes["E1"].outcome is Outcome.CREATED
    strict = reconcile(records, logs, now=T0, skew=timedelta(0))
    assert strict.outcomes["E1"].outcome is Outcome.PENDING


def test_other_jobs_and_unknown_records_are_ignored() -> None:
    records = [sent("E1")]
    logs = [entry("E1", 5, job="API2AAD.other.job", status="failure"), entry("X9", 5)]
    result = reconcile(records, logs, now=T0 + timedelta(minutes=30), job_id=JOB)
    assert result.outcomes["E1"].outcome is Outcome.PENDING
    assert set(result.outcomes) == {"E1"}


def test_unconfirmed_only_after_deadline() -> None:
    records = [sent("E1"), sent("E2")]
    logs = [entry("E2", 3)]
    before = reconcile(records, logs, now=T0 + timedelta(minutes=119))
    assert before.outcomes["E1"].outcome is Outcome.PENDING
    after = reconcile(records, logs, now=T0 + timedelta(hours=2))
    assert after.outcomes["E1"].outcome is Outcome.UNCONFIRMED
    assert "120 min" in (after.outcomes["E1"].reason or "")
    assert after.complete
    custom = reconcile(
        records, logs, now=T0 + timedelta(minutes=11), deadline=timedelta(minutes=10)
    )
    assert custom.outcomes["E1"].outcome is Outcome.UNCONFIRMED


def test_warning_with_error_code_is_a_skip_and_plain_warning_is_success() -> None:
    logs = [
        entry(
            "E1",
            5,
            status="warning",
            code="UnableToResolveReferenceAttributeValue",
            reason="manager 999 not provisioned yet",
        ),
        entry("E2", 5, status="warning"),
    ]
    result = reconcile([sent("E1"), sent("E2")], logs, now=T0)
    assert result.outcomes["E1"].outcome is Outcome.SKIPPED
    assert result.outcomes["E1"].error_code == "UnableToResolveReferenceAttributeValue"
    assert result.outcomes["E2"].outcome is Outcome.CREATED


def test_leaver_logged_as_update_counts_as_disabled() -> None:
    result = reconcile([sent("E1", "leaver")], [entry("E1", 5, action="update")], now=T0)
    assert result.outcomes["E1"].outcome is Outcome.DISABLED


def test_log_entry_parsing_handles_missing_fields_and_7_digit_fractions() -> None:
    assert LogEntry.from_graph({"id": "x"}) is None
    parsed = LogEntry.from_graph(entry("E1", 1.5))
    assert parsed is not None
    assert parsed.activity_at == T0 + timedelta(minutes=1.5)
    legacy = LogEntry.from_graph(
        {
            "activityDateTime": "2026-03-02T08:00:00Z",
            "sourceIdentity": {"id": "E7"},
            "statusInfo": {"status": "Failure"},
            "provisioningAction": "Create",
        }
    )
    assert legacy is not None
    assert legacy.status == "failure"
    assert legacy.provisioning_action == "create"
