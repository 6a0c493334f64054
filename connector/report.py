"""Run reports: what they show (:class:`ReportInput`), report.json and failures.csv, and
:func:`write_reports`, which hands the three files to the store.

Builders are pure (plain data in, text out) and yield each file a part at a time
(``iter_*``; ``build_*`` joins the parts): :func:`write_reports` hands the three files'
parts to whatever stores artifacts (the state store), so a run of a million records
never has a report body, nor a row object per record, in memory — ``records`` may be a
collection that makes its rows as it is iterated. They are counted once for all three
files (:mod:`connector.report_counts`); then report.json and report.html's record table
each read the rows once more, and failures.csv reads ``brief_records`` (the same rows
without display names and changes, cheaper to make) once. report.html is
:mod:`connector.report_html`. CSV cells that a spreadsheet would read as a formula are
neutralised.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from connector.csv_out import csv_parts
from connector.report_counts import RecordCounts, count_records, problems
from connector.report_held import held_commands
from connector.report_html import iter_report_html

if TYPE_CHECKING:
    from connector.report_index import RunNav
    from connector.sync.approval_hint import ApprovalCommands
    from connector.sync.changes import ChangeView

__all__ = [
    "RecordRow",
    "RecordRows",
    "RejectedRow",
    "ReportInput",
    "TimelineEvent",
    "build_failures_csv",
    "build_report_json",
    "iter_failures_csv",
    "iter_report_json",
    "write_reports",
]


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    """One step of a run's journal."""

    at: datetime
    state: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class RecordRow:
    """One planned record and, once known, its outcome."""

    external_id: str
    action: str
    outcome: str
    line: int | None = None
    request_id: str | None = None
    error_code: str | None = None
    reason: str | None = None
    display_name: str = ""
    changes: Sequence[tuple[str, str | None, str | None]] = ()
    """Changed attributes (SCIM path, old value, new value) of a mover or leaver."""


class RecordRows(Protocol):
    """The records of a report: a list, or rows made as they are iterated (each
    iteration is a pass: see the module's docstring for how many)."""

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[RecordRow]: ...


@dataclass(frozen=True, slots=True)
class RejectedRow:
    """A row of the extract that never became a record (bad data)."""

    line: int
    reason: str
    external_id: str | None = None


@dataclass(frozen=True, slots=True)
class ReportInput:
    """Everything a report shows; built by the pipeline from a run's journal."""

    run_id: str
    source: str
    file_name: str
    status: str
    generated_at: datetime
    planned: Mapping[str, int]
    outcome_counts: Mapping[str, int] | None
    """Records by outcome (None: counted from the records)."""
    records: RecordRows
    """A list, or rows made as they are read (iterated twice when the reports are
    written: report.json, report.html's record table)."""
    timeline: Sequence[TimelineEvent] = ()
    rejected: Sequence[RejectedRow] = ()
    request_ids: Sequence[str] = ()
    held_reason: str | None = None
    failed_reason: str | None = None
    job_health: str | None = None
    batches_total: int = 0
    batches_done: int = 0
    extract_at: datetime | None = None
    ordering_warning: str | None = None
    """Only the arrival time orders this run (see :mod:`connector.extract_time`)."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    command_flags: str = ""
    """Flags naming the config and state for the commands the report suggests
    (placeholders when empty: the report was written by the Functions app)."""
    approval: ApprovalCommands | None = None
    """The commands that release or drop the run where it lives (shown while it is held;
    the placeholder CLI commands when None)."""
    changes: ChangeView | None = None
    """Whom the run disables and what it changes (shown while the run is held)."""
    nav: RunNav | None = None
    """The previous and next run of the source (links; the index link is always there)."""
    send_order: str | None = None
    """Set when the run is sent in priority order (it needs more than a day's budget)."""
    progress: str | None = None
    """A multi-day run's progress and estimated finish ("3 of 10 days, 38 % sent, …")."""
    budget_note: str | None = None
    """A held run that would not fit today's call budget: how approving it now would send
    it (:attr:`connector.sync.forecast.BudgetForecast.held_text`)."""
    brief_records: RecordRows | None = None
    """The same rows in the same order, their ``display_name`` and ``changes`` left empty
    (cheaper to make): what the counting and failures.csv read. None: ``records``."""

    @property
    def outcome_rows(self) -> RecordRows:
        """The rows that are counted and listed in failures.csv."""
        return self.records if self.brief_records is None else self.brief_records


def _approval_json(data: ReportInput) -> dict[str, str] | None:
    """``approvalHint`` of report.json: how to release or drop a held run (None otherwise)."""
    if not data.held_reason:
        return None
    cmds = held_commands(data)
    return {"kind": cmds.kind, "approve": cmds.approve, "discard": cmds.discard}


def build_report_json(data: ReportInput) -> bytes:
    """Machine-readable report: counts, timings, request ids, per-record outcomes."""
    return b"".join(iter_report_json(data, count_records(data.outcome_rows)))


def iter_report_json(data: ReportInput, counts: RecordCounts) -> Iterator[bytes]:
    """:func:`build_report_json`'s bytes, a block of records at a time; ``counts`` are
    ``data``'s records counted."""
    outcomes = counts.by_outcome if data.outcome_counts is None else data.outcome_counts
    doc: dict[str, Any] = {
        "runId": data.run_id,
        "source": data.source,
        "file": data.file_name,
        "status": data.status,
        "generatedAt": data.generated_at.isoformat(),
        "extractAt": data.extract_at.isoformat() if data.extract_at else None,
        "orderingWarning": data.ordering_warning,
        "heldReason": data.held_reason,
        "approvalHint": _approval_json(data),
        "failedReason": data.failed_reason,
        "jobHealth": data.job_health,
        "planned": dict(data.planned),
        "outcomes": dict(outcomes),
        "actionByOutcome": counts.by_action,
        "changeCounts": dict(data.changes.counts) if data.changes is not None else None,
        "batches": {"total": data.batches_total, "acknowledged": data.batches_done},
        "sendOrder": data.send_order,
        "progress": data.progress,
        "requestIds": list(data.request_ids),
        "timeline": [
            {"at": e.at.isoformat(), "state": e.state, "detail": e.detail} for e in data.timeline
        ],
        "timings": _timings(data.timeline),
        "records": [],  # spliced in below, a block at a time
        "rejected": [
            {"line": r.line, "externalId": r.external_id, "reason": r.reason} for r in data.rejected
        ],
        **dict(data.extra),
    }
    yield from _with_records(orjson.dumps(doc, option=orjson.OPT_INDENT_2), data.records)


_RECORDS_KEY = b'"records": []'
_RECORDS_BLOCK = 2000


def _record_json(r: RecordRow) -> dict[str, Any]:
    return {
        "externalId": r.external_id,
        "line": r.line,
        "action": r.action,
        "outcome": r.outcome,
        "requestId": r.request_id,
        "errorCode": r.error_code,
        "reason": r.reason,
        "displayName": r.display_name,
        "changes": [{"attribute": a, "old": o, "new": n} for a, o, n in r.changes],
    }


def blocks(items: Iterable[RecordRow], size: int) -> Iterator[list[RecordRow]]:
    """``items`` in lists of ``size`` (the last one shorter)."""
    it = iter(items)
    while block := list(itertools.islice(it, size)):
        yield block


def _with_records(head: bytes, records: Iterable[RecordRow]) -> Iterator[bytes]:
    """``head`` (the indented report with ``"records": []``) with the records in place, the
    bytes one indented serialization gives, made a block of records at a time: a run of
    a million records never holds a dict per record, nor the document."""
    at = head.index(_RECORDS_KEY)
    sep = b'"records": [\n  '
    for block in blocks(records, _RECORDS_BLOCK):
        if at >= 0:
            yield head[:at]
            at = -1
        body = orjson.dumps([_record_json(r) for r in block], option=orjson.OPT_INDENT_2)
        # without "[\n" and "\n]", one level deeper: inside the report
        yield sep + body[2:-2].replace(b"\n", b"\n  ")
        sep = b",\n  "
    if at >= 0:  # no record
        yield head
        return
    yield b"\n  ]" + head[head.index(_RECORDS_KEY) + len(_RECORDS_KEY) :]


_FAILURE_COLUMNS = ("externalId", "line", "action", "errorCode", "reason")
_CSV_BLOCK = 5000


def build_failures_csv(data: ReportInput) -> bytes:
    """failures.csv: one row per failed/skipped/unconfirmed record or rejected line."""
    return b"".join(iter_failures_csv(data))


def iter_failures_csv(data: ReportInput) -> Iterator[bytes]:
    """:func:`build_failures_csv`'s bytes, a block of rows at a time."""
    return csv_parts(_FAILURE_COLUMNS, problems(data.outcome_rows, data.rejected), block=_CSV_BLOCK)


def _timings(timeline: Sequence[TimelineEvent]) -> dict[str, float]:
    """Seconds spent in each journal state (until the next event)."""
    spans: dict[str, float] = {}
    for a, b in itertools.pairwise(timeline):
        spans[a.state] = spans.get(a.state, 0.0) + (b.at - a.at).total_seconds()
    if len(timeline) >= 2:
        spans["total"] = (timeline[-1].at - timeline[0].at).total_seconds()
    return spans


ArtifactWriter = Callable[[str, Iterable[bytes], str], Any]


def write_reports(data: ReportInput, put: ArtifactWriter) -> dict[str, Any]:
    """Hand the three files to ``put(name, parts, content_type)``, each as its parts (a
    store writes them as they come: no report body is ever whole in memory).

    Returns what ``put`` returned per file name (e.g. a path or blob URL).
    """
    counts = count_records(data.outcome_rows)
    files: list[tuple[str, Iterable[bytes], str]] = [
        ("report.json", iter_report_json(data, counts), "application/json"),
        ("failures.csv", iter_failures_csv(data), "text/csv; charset=utf-8"),
        (
            "report.html",
            (part.encode("utf-8") for part in iter_report_html(data, counts)),
            "text/html; charset=utf-8",
        ),
    ]
    return {name: put(name, parts, ctype) for name, parts, ctype in files}
