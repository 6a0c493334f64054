"""A run's journal as a stored document: which field is which camelCase key.

:mod:`connector.sync.run_store` stores each :class:`~connector.sync.journal.Journal` as a
JSON document with the keys the engine has always written, so journals of runs started
by an earlier version keep loading (the fixtures in ``tests/sync/fixtures`` are such
documents) and keys a newer version adds are kept as they are. Acknowledged batches are
written by :class:`~connector.sync.acks.AckLog`. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connector.sync.acks import AckLog
from connector.sync.journal import (
    Journal,
    JournalEvent,
    RefusedRow,
    RunState,
    from_iso,
    to_iso,
)
from connector.sync.waiting import stored_waiting_reason

__all__ = ["journal_from_doc", "journal_to_doc"]

_OPTIONAL: dict[str, str] = {
    # field name → document key, for values written only when set
    "parent_run_id": "parentRunId",
    "parent_run_ids": "parentRunIds",
    "not_resent": "notResent",
    "planned": "planned",
    "rows_in_file": "rowsInFile",
    "rejected_count": "rejectedCount",
    "rejected_omitted": "rejectedOmitted",
    "rejected_by_reason": "rejectedByReason",
    "full_resend": "fullResend",
    "extract_basis": "extractBasis",
    "records_kept": "recordsKept",
    "hold": "hold",
    "held_reason": "heldReason",
    "queued": "queued",
    "queued_behind": "queuedBehind",
    "waiting": "waiting",
    "waits": "waits",
    "approved_by": "approvedBy",
    "failed_reason": "failedReason",
    "blocked_reason": "blockedReason",
    "superseded_reason": "supersededReason",
    "discarded_reason": "discardedReason",
    "batches_total": "batchesTotal",
    "to_send": "toSend",
    "reference_levels": "referenceLevels",
    "isolation_calls": "isolationCalls",
    "refused_in_a_row": "refusedInARow",
    "outcomes": "outcomes",
    "outcome_labels": "outcomeLabels",
    "job_health": "jobHealth",
    "reference_resends": "referenceResends",
    "send_order": "sendOrder",
}
_TIMES = {
    "first_sent_at": "firstSentAt",
    "last_reconciled_at": "lastReconciledAt",
    "waiting_until": "waitingUntil",
}
_KNOWN = {
    "runId",
    "source",
    "file",
    "kind",
    "receivedAt",
    "extractAt",
    "state",
    "timeline",
    "batches",
    "ackChunks",
    "indexed",
    "rejected",
    "decision",
    "planIndexVersion",
    "waitingReason",
    "updatedAt",
    *_OPTIONAL.values(),
    *_TIMES.values(),
}


def journal_from_doc(doc: Mapping[str, Any]) -> Journal:
    """Read a stored journal document (today's or an older version's)."""
    decision = doc.get("decision")
    rejected = doc.get("rejected")
    journal = Journal(
        run_id=str(doc["runId"]),
        source=str(doc["source"]),
        state=RunState(doc["state"]),
        file=doc.get("file"),
        kind=str(doc.get("kind") or "extract"),
        received_at=from_iso(doc.get("receivedAt")),
        extract_at=from_iso(doc.get("extractAt")),
        timeline=[JournalEvent.from_doc(e) for e in doc.get("timeline") or []],
        batches=AckLog.from_doc(doc),
        indexed=int(doc.get("indexed", 0)),
        rejected=None
        if rejected is None
        else [RefusedRow(int(r["line"]), r.get("externalId"), str(r["reason"])) for r in rejected],
        decided=isinstance(decision, Mapping),
        decision_hold=dict(decision["hold"])
        if isinstance(decision, Mapping) and decision.get("hold")
        else None,
        plan_index_version=doc.get("planIndexVersion"),
        waiting_reason=stored_waiting_reason(doc.get("waitingReason"), doc.get("waiting")),
        updated_at=from_iso(doc.get("updatedAt")),
        extra={k: v for k, v in doc.items() if k not in _KNOWN},
    )
    for name, key in _OPTIONAL.items():
        if doc.get(key) is not None:
            setattr(journal, name, doc[key])
    for name, key in _TIMES.items():
        setattr(journal, name, from_iso(doc.get(key)))
    return journal


def journal_to_doc(journal: Journal) -> dict[str, Any]:
    """The stored document (the same keys as ever; unset values are left out)."""
    doc: dict[str, Any] = {
        "runId": journal.run_id,
        "source": journal.source,
        "file": journal.file,
        "kind": journal.kind,
        "receivedAt": to_iso(journal.received_at) if journal.received_at else None,
        "extractAt": to_iso(journal.extract_at) if journal.extract_at else None,
        "state": journal.state.value,
        "timeline": [e.to_doc() for e in journal.timeline],
        **journal.batches.to_doc(),
        "indexed": journal.indexed,
    }
    for name, key in _OPTIONAL.items():
        value = getattr(journal, name)
        if value is not None and value is not False and not (key == "waits" and value == 0):
            doc[key] = value
    if journal.isolation_calls == 0:
        doc.pop("isolationCalls", None)
    for name, key in _TIMES.items():
        value = getattr(journal, name)
        if value is not None:
            doc[key] = to_iso(value)
    if journal.last_reconciled_at is not None:
        doc["jobHealth"] = journal.job_health  # written with every reconciliation
    if journal.rejected is not None:
        doc["rejected"] = [r.to_doc() for r in journal.rejected]
    if journal.decided:
        doc["decision"] = {"hold": journal.decision_hold}
    if journal.decided or journal.plan_index_version is not None:
        doc["planIndexVersion"] = journal.plan_index_version
    if journal.waiting is not None and journal.waiting_reason is not None:
        doc["waitingReason"] = journal.waiting_reason.value
    if journal.updated_at is not None:
        doc["updatedAt"] = to_iso(journal.updated_at)
    doc.update(journal.extra)
    return doc
