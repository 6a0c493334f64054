"""Run reports: report.json, failures.csv and a self-contained report.html.

Builders are pure (plain data in, text out) and yield each file a part at a time
(``iter_*``; ``build_*`` joins the parts): :func:`write_reports` hands the three files'
parts to whatever stores artifacts (the state store), so a run of a million records
never has a report body, nor a row object per record, in memory — ``records`` may be a
collection that makes its rows as it is iterated (several passes are made). The HTML has no external
asset — styles and the chart (SVG) are inline — so it can be mailed or opened from
a blob as is. Every value from an extract or a log is escaped; CSV cells that a
spreadsheet would read as a formula are neutralised.
"""

from __future__ import annotations

import html
import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from connector.csv_out import csv_bytes
from connector.report_held import held_section, send_note
from connector.report_index import RunNav, nav_html
from connector.report_table import iter_record_table, script_hash
from connector.sync.approval_hint import ApprovalCommands

if TYPE_CHECKING:
    from connector.sync.changes import ChangeView

__all__ = [
    "ACTIONS",
    "OUTCOME_COLUMNS",
    "PLACEHOLDER_FLAGS",
    "PROBLEM_OUTCOMES",
    "RecordRow",
    "RecordRows",
    "RejectedRow",
    "ReportInput",
    "TimelineEvent",
    "build_failures_csv",
    "build_report_html",
    "build_report_json",
    "iter_failures_csv",
    "iter_report_html",
    "iter_report_json",
    "write_reports",
]

ACTIONS = ("joiner", "mover", "leaver", "retry")
OUTCOME_COLUMNS = (
    "created",
    "created (manager unresolved)",
    "updated",
    "updated (manager unresolved)",
    "disabled",
    "skipped",
    "failed",
    "unconfirmed",
    "pending",
    "not sent",
)
PLACEHOLDER_FLAGS = (
    "--config SOURCES.yaml --state-account-url https://ACCOUNT.blob.core.windows.net"
)
"""Shown in a report's suggested commands when the flags that wrote it are unknown (a
report written by the Functions app: its state is in the storage account)."""
_REASON_LABELS = (
    ("failed", "Failed."),
    ("superseded", "Superseded."),
    ("discarded", "Discarded."),
    ("uploading", "Waiting."),
)
_CORE_PLAN_KEYS = frozenset({"rows", "joiners", "movers", "leavers", "unchanged", "rejected"})
PROBLEM_OUTCOMES = frozenset(
    {
        "failed",
        "skipped",
        "unconfirmed",
        "created (manager unresolved)",
        "updated (manager unresolved)",
    }
)
_COLOURS = {
    "created": "#2e7d32",
    "created (manager unresolved)": "#9e9d24",
    "updated (manager unresolved)": "#00838f",
    "updated": "#1565c0",
    "disabled": "#6a1b9a",
    "skipped": "#ef6c00",
    "failed": "#c62828",
    "unconfirmed": "#757575",
    "pending": "#9e9e9e",
    "not sent": "#bdbdbd",
}


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
    """The records of a report: a list, or rows made as they are iterated (several
    passes are made, one per part of the reports)."""

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
    outcome_counts: Mapping[str, int]
    records: RecordRows
    """Iterated once per part of the reports (a list, or rows made as they are read)."""
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


def action_status_table(records: Iterable[RecordRow]) -> dict[str, dict[str, int]]:
    """Counts of records by planned action (rows) and outcome (columns)."""
    table: dict[str, dict[str, int]] = {}
    for r in records:
        row = table.setdefault(r.action, {})
        row[r.outcome] = row.get(r.outcome, 0) + 1
    return table


def held_commands(data: ReportInput) -> ApprovalCommands:
    """The approve and discard commands a held report prints."""
    if data.approval is not None:
        return data.approval
    flags = data.command_flags or PLACEHOLDER_FLAGS
    return ApprovalCommands(
        "cli",
        f"connector runs approve {data.run_id} {flags}",
        f"connector runs discard {data.run_id} {flags}",
    )


def _approval_json(data: ReportInput) -> dict[str, str] | None:
    """``approvalHint`` of report.json: how to release or drop a held run (None otherwise)."""
    if not data.held_reason:
        return None
    cmds = held_commands(data)
    return {"kind": cmds.kind, "approve": cmds.approve, "discard": cmds.discard}


def build_report_json(data: ReportInput) -> bytes:
    """Machine-readable report: counts, timings, request ids, per-record outcomes."""
    return b"".join(iter_report_json(data))


def iter_report_json(data: ReportInput) -> Iterator[bytes]:
    """:func:`build_report_json`'s bytes, a block of records at a time."""
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
        "outcomes": dict(data.outcome_counts),
        "actionByOutcome": action_status_table(data.records),
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


def _problems(data: ReportInput) -> Iterator[tuple[str, str, str, str, str]]:
    """(externalId, line, action, error code, reason) of every record that needs a look."""
    for r in data.records:
        if r.outcome in PROBLEM_OUTCOMES:
            yield (
                r.external_id,
                "" if r.line is None else str(r.line),
                r.action,
                r.error_code or r.outcome,
                r.reason or "",
            )
    for rej in data.rejected:
        yield (rej.external_id or "", str(rej.line), "rejected", "RejectedRow", rej.reason)


_FAILURE_COLUMNS = ("externalId", "line", "action", "errorCode", "reason")
_CSV_BLOCK = 5000


def build_failures_csv(data: ReportInput) -> bytes:
    """failures.csv: one row per failed/skipped/unconfirmed record or rejected line."""
    return b"".join(iter_failures_csv(data))


def iter_failures_csv(data: ReportInput) -> Iterator[bytes]:
    """:func:`build_failures_csv`'s bytes, a block of rows at a time."""
    yield csv_bytes(_FAILURE_COLUMNS, [])
    rows = _problems(data)
    while block := list(itertools.islice(rows, _CSV_BLOCK)):
        yield csv_bytes(_FAILURE_COLUMNS, block).split(b"\r\n", 1)[1]  # without the header


def _timings(timeline: Sequence[TimelineEvent]) -> dict[str, float]:
    """Seconds spent in each journal state (until the next event)."""
    spans: dict[str, float] = {}
    for a, b in itertools.pairwise(timeline):
        spans[a.state] = spans.get(a.state, 0.0) + (b.at - a.at).total_seconds()
    if len(timeline) >= 2:
        spans["total"] = (timeline[-1].at - timeline[0].at).total_seconds()
    return spans


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _bar_chart(counts: Mapping[str, int]) -> str:
    """Horizontal bars, one per outcome with a non-zero count, as inline SVG."""
    items = [(k, counts.get(k, 0)) for k in OUTCOME_COLUMNS if counts.get(k, 0)]
    if not items:
        return '<p class="muted">No records were sent.</p>'
    peak = max(v for _, v in items)
    # Wide enough for the longest label at 12px ("created (manager unresolved)").
    label_w = 16 + 7 * max(len(name) for name, _ in items)
    bar_h, gap, width = 22, 8, label_w + 380
    height = len(items) * (bar_h + gap) + gap
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'style="width:100%;max-width:{width}px" role="img" aria-label="records by outcome">'
    ]
    for i, (name, value) in enumerate(items):
        y = gap + i * (bar_h + gap)
        w = max(2, round((width - label_w - 70) * value / peak))
        parts.append(
            f'<text x="{label_w - 8}" y="{y + bar_h * 0.7:.1f}" text-anchor="end" '
            f'class="lbl">{_e(name)}</text>'
            f'<rect x="{label_w}" y="{y}" width="{w}" height="{bar_h}" rx="3" '
            f'fill="{_COLOURS.get(name, "#607d8b")}"/>'
            f'<text x="{label_w + w + 6}" y="{y + bar_h * 0.7:.1f}" class="val">{value}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
margin:0;background:#f5f6f8;color:#1f2328}
header{background:#1f3a5f;color:#fff;padding:18px 28px}
header h1{margin:0 0 6px;font-size:20px;font-weight:600}
header dl{display:flex;flex-wrap:wrap;gap:6px 28px;margin:0;font-size:13px}
header dt{opacity:.75}header dd{margin:0 0 0 6px;font-weight:600}
header div{display:flex}
main{padding:20px 28px;display:grid;gap:18px;grid-template-columns:1fr 1fr}
section{background:#fff;border:1px solid #dfe3e8;border-radius:8px;padding:14px 18px}
section.wide{grid-column:1/-1}
h2{font-size:15px;margin:0 0 10px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{border-bottom:1px solid #eceff3;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#f0f3f7;font-weight:600}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
td.z{color:#b0b6be}
td.t{white-space:nowrap}
.badge{display:inline-block;padding:2px 9px;border-radius:10px;font-size:12px;font-weight:700;
background:#e0e0e0;color:#222}
.s-done{background:#c8e6c9;color:#1b5e20}.s-held{background:#ffe0b2;color:#e65100}
.s-failed{background:#ffcdd2;color:#b71c1c}
.s-uploading,.s-reconciling,.s-uploaded{background:#bbdefb;color:#0d47a1}
.alert{border-left:4px solid #ef6c00;background:#fff8e1;padding:10px 14px;border-radius:4px;
margin:0}
.alert.err{border-color:#c62828;background:#ffebee}
.muted{color:#6a737d;font-size:13px}
svg .lbl{font-size:12px;fill:#333}svg .val{font-size:12px;fill:#333;font-weight:600}
code{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:12px}
header nav{display:flex;gap:18px;font-size:13px;margin-bottom:8px}
header nav a{color:#cfe3ff}header nav .muted{color:#9fb3c8}
h3{font-size:13px;margin:14px 0 6px}p.counts{font-size:14px;margin:0 0 6px}
.rt-ctl{display:flex;flex-wrap:wrap;gap:8px;align-items:center;margin-bottom:8px}
.rt-ctl input{flex:1 1 260px;padding:5px 8px;font-size:13px}
.rt-ctl select,.rt-ctl button{padding:4px 8px;font-size:13px}
#rt th{cursor:pointer;user-select:none}#rt th[aria-sort=ascending]::after{content:" ▲"}
#rt th[aria-sort=descending]::after{content:" ▼"}#rt td.c{font-family:ui-monospace,monospace}
#rt td{overflow-wrap:anywhere}#rt td.ch{white-space:pre-line;min-width:18em}
.scroll{max-height:440px;overflow:auto;border:1px solid #eceff3}
"""


def _header(data: ReportInput) -> str:
    """Title, the run's facts and the links to its neighbours and the runs index."""
    status_cls = "s-" + "".join(c for c in data.status if c.isalnum())
    extract = data.extract_at.strftime("%Y-%m-%d %H:%M") if data.extract_at else "—"
    return (
        f"<header>{nav_html(data.nav or RunNav())}"
        f"<h1>Provisioning run report — {_e(data.source)}</h1><dl>"
        f"<div><dt>Source</dt><dd>{_e(data.source)}</dd></div>"
        f"<div><dt>File</dt><dd>{_e(data.file_name)}</dd></div>"
        f"<div><dt>Extract date</dt><dd>{_e(extract)}</dd></div>"
        f"<div><dt>Run</dt><dd><code>{_e(data.run_id)}</code></dd></div>"
        f'<div><dt>Status</dt><dd><span class="badge {status_cls}">{_e(data.status)}</span>'
        f"</dd></div>"
        f"<div><dt>Generated</dt><dd>{_e(data.generated_at.strftime('%Y-%m-%d %H:%M:%S %Z'))}"
        f"</dd></div></dl></header>"
    )


def _held_how(cmds: ApprovalCommands) -> str:
    """Release and drop instructions for a held run, as HTML."""
    if cmds.kind == "approvals_blob":
        return (
            "Release by uploading an approval marker to the <code>approvals</code> container "
            f"(docs/deploy.md step 7): <code>{_e(cmds.approve)}</code> or drop it with a "
            f"discard marker: <code>{_e(cmds.discard)}</code>."
        )
    return (
        f"Release with <code>{_e(cmds.approve)}</code> or drop with "
        f"<code>{_e(cmds.discard)}</code>."
    )


def _attention(data: ReportInput) -> str:
    """Held (with what approving sends), stopped, job-health and ordering notes; empty if
    none."""
    alerts: list[str] = []
    if data.held_reason:
        sends = (
            f"<br>{_e(send_note(data.changes, data.batches_total))} "
            '<a href="#held">Who</a> · <a href="held.csv" download>held.csv</a>'
            if data.changes is not None
            else ""
        )
        alerts.append(
            '<p class="alert"><strong>Held — nothing was sent.</strong> '
            f"{_e(data.held_reason)}{sends}<br>{_held_how(held_commands(data))}</p>"
        )
    if data.failed_reason:
        label = next(
            (text for prefix, text in _REASON_LABELS if data.status.startswith(prefix)), "Note."
        )
        alerts.append(f'<p class="alert err"><strong>{label}</strong> {_e(data.failed_reason)}</p>')
    if data.job_health:
        alerts.append(
            f'<p class="alert err"><strong>Provisioning job.</strong> {_e(data.job_health)}</p>'
        )
    if data.ordering_warning:
        alerts.append(
            f'<p class="alert"><strong>Ordered by arrival.</strong> {_e(data.ordering_warning)}</p>'
        )
    return f'<section class="wide"><h2>Attention</h2>{"".join(alerts)}</section>' if alerts else ""


def _sending_notes(data: ReportInput) -> str:
    """The priority order and a multi-day run's progress, under the plan; empty if none."""
    notes = [n for n in (data.send_order, data.progress) if n]
    return "".join(f'<p class="muted">{_e(n[0].upper() + n[1:])}.</p>' for n in notes)


def build_report_html(data: ReportInput, *, max_failure_rows: int = 1000) -> str:
    """A single HTML page with no external assets; every dynamic value is escaped."""
    return "".join(iter_report_html(data, max_failure_rows=max_failure_rows))


def _failures_section(data: ReportInput, max_failure_rows: int) -> str:
    """The first ``max_failure_rows`` problems and how many there are."""
    problems = _problems(data)
    shown = list(itertools.islice(problems, max_failure_rows))
    total = len(shown) + sum(1 for _ in problems)
    fail_rows = "".join(
        f"<tr><td><code>{_e(ext)}</code></td><td class='n'>{_e(line)}</td><td>{_e(action)}</td>"
        f"<td><code>{_e(code)}</code></td><td>{_e(reason)}</td></tr>"
        for ext, line, action, code, reason in shown
    )
    more = (
        f'<p class="muted">{total - len(shown)} more in failures.csv.</p>'
        if total > len(shown)
        else ""
    )
    return (
        f'<section class="wide"><h2>Failures and skips ({total})</h2>'
        + (
            "<table><tr><th>externalId</th><th class='n'>line</th><th>action</th>"
            f"<th>error code</th><th>reason</th></tr>{fail_rows}</table>{more}"
            if total
            else '<p class="muted">None.</p>'
        )
        + "</section>"
    )


def iter_report_html(data: ReportInput, *, max_failure_rows: int = 1000) -> Iterator[str]:
    """:func:`build_report_html`'s text in parts (the record table's data a block of
    records at a time)."""
    header = _header(data)
    alert_html = _attention(data)
    planned_rows = "".join(
        f'<tr><td>{_e(k.replace("_", " "))}</td><td class="n">{v}</td></tr>'
        for k, v in data.planned.items()
        if v or k in _CORE_PLAN_KEYS
    )
    plan_html = (
        '<section><h2>Plan</h2><table><tr><th>kind</th><th class="n">records</th></tr>'
        f"{planned_rows}</table>"
        f'<p class="muted">Batches acknowledged: {data.batches_done} of {data.batches_total}'
        f"</p>{_sending_notes(data)}</section>"
    )
    chart_html = f"<section><h2>Outcomes</h2>{_bar_chart(data.outcome_counts)}</section>"

    table = action_status_table(data.records)
    cols = [c for c in OUTCOME_COLUMNS if any(c in row for row in table.values())]
    actions = [a for a in ACTIONS if a in table] + sorted(a for a in table if a not in ACTIONS)
    head = "".join(f'<th class="n">{_e(c)}</th>' for c in cols)
    body = ""
    for a in actions:
        cells = "".join(
            f'<td class="n{"" if table[a].get(c) else " z"}">{table[a].get(c, 0)}</td>'
            for c in cols
        )
        body += f'<tr><td>{_e(a)}</td>{cells}<td class="n">{sum(table[a].values())}</td></tr>'
    matrix_html = (
        '<section class="wide"><h2>Action × status</h2>'
        + (
            f'<table><tr><th>action</th>{head}<th class="n">total</th></tr>{body}</table>'
            if actions
            else '<p class="muted">No records planned.</p>'
        )
        + "</section>"
    )

    timeline_rows = "".join(
        f'<tr><td class="t">{_e(ev.at.strftime("%Y-%m-%d %H:%M:%S"))}</td>'
        f'<td class="t">{_e(ev.state)}</td>'
        f"<td>{_e(ev.detail)}</td></tr>"
        for ev in data.timeline
    )
    timeline_html = (
        '<section class="wide"><h2>Timeline</h2><table><tr><th>time (UTC)</th><th>state</th>'
        f"<th>detail</th></tr>{timeline_rows}</table></section>"
    )

    failures_html = _failures_section(data, max_failure_rows)
    held_html = (
        held_section(data.changes, data.batches_total)
        if data.held_reason and data.changes is not None
        else ""
    )
    title = f"Run {data.run_id} — {data.status}"
    yield (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        f"style-src 'unsafe-inline'; img-src data:; script-src {script_hash()}\">"
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>{header}<main>"
        f"{alert_html}{held_html}{plan_html}{chart_html}{matrix_html}{failures_html}"
    )
    yield from iter_record_table(data.records)
    yield f"{timeline_html}</main></body></html>"


ArtifactWriter = Callable[[str, Iterable[bytes], str], Any]


def write_reports(data: ReportInput, put: ArtifactWriter) -> dict[str, Any]:
    """Hand the three files to ``put(name, parts, content_type)``, each as its parts (a
    store writes them as they come: no report body is ever whole in memory).

    Returns what ``put`` returned per file name (e.g. a path or blob URL).
    """
    files: list[tuple[str, Iterable[bytes], str]] = [
        ("report.json", iter_report_json(data), "application/json"),
        ("failures.csv", iter_failures_csv(data), "text/csv; charset=utf-8"),
        (
            "report.html",
            (part.encode("utf-8") for part in iter_report_html(data)),
            "text/html; charset=utf-8",
        ),
    ]
    return {name: put(name, parts, ctype) for name, parts, ctype in files}
