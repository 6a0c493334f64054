"""A report's data for the builders' tests: joiners, movers and leavers, a failure, a
skip and an unconfirmed record, a rejected row, and values that must be escaped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from connector.report import RecordRow, RejectedRow, ReportInput, TimelineEvent

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def sample_input(**over: object) -> ReportInput:
    records = [
        RecordRow(f"E{i:03}", "joiner", "created", line=i + 1, request_id="req-a")
        for i in range(40)
    ]
    records += [RecordRow(f"M{i:03}", "mover", "updated", line=50 + i) for i in range(12)]
    records += [RecordRow(f"L{i:03}", "leaver", "disabled") for i in range(5)]
    records += [
        RecordRow(
            "E900",
            "joiner",
            "failed",
            line=91,
            error_code="AzureActiveDirectoryConflictEncountered",
            reason="userPrincipalName <b>already</b> exists",
        ),
        RecordRow(
            '=HYPERLINK("x")',
            "mover",
            "skipped",
            line=92,
            error_code="UnableToResolveReferenceAttributeValue",
            reason="manager M-404 not found",
        ),
        RecordRow(
            "E901",
            "joiner",
            "unconfirmed",
            line=93,
            reason="no provisioning-log entry 120 min after send",
        ),
    ]
    base: dict[str, object] = {
        "run_id": "employees-3f2a9c1d",
        "source": "employees",
        "file_name": "hr_<script>alert(1)</script>.csv",
        "status": "done",
        "generated_at": T0 + timedelta(minutes=30),
        "planned": {"joiners": 42, "movers": 13, "leavers": 5, "unchanged": 900, "rejected": 1},
        "outcome_counts": {
            "created": 40,
            "updated": 12,
            "disabled": 5,
            "failed": 1,
            "skipped": 1,
            "unconfirmed": 1,
        },
        "records": records,
        "timeline": [
            TimelineEvent(T0, "received", "1000 rows"),
            TimelineEvent(T0 + timedelta(seconds=3), "planned", "42 joiners, 13 movers, 5 leavers"),
            TimelineEvent(T0 + timedelta(seconds=4), "uploading", "batch 1/2"),
            TimelineEvent(T0 + timedelta(seconds=9), "uploaded", "2 batches"),
            TimelineEvent(T0 + timedelta(minutes=12), "done", ""),
        ],
        "rejected": [RejectedRow(77, "missing userName", "@SUM(A1)")],
        "request_ids": ["req-a", "req-b"],
        "batches_total": 2,
        "batches_done": 2,
    }
    base.update(over)
    return ReportInput(**base)  # type: ignore[arg-type]
