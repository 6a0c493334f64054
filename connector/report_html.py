"""report.html: one self-contained page per run, written in parts.

The page has no external asset (styles and the outcome chart, an SVG, are inline; the
per-record table is :mod:`connector.report_table`, the held run's section
:mod:`connector.report_held`), so it can be mailed or opened from a blob as is. Every
value from an extract or a log is escaped. Its counts (the action × status table, the
failures) come from :class:`~connector.report_counts.RecordCounts`, counted once for all
three report files; only the record table's data is read from the records, a block at a
time (:func:`iter_report_html`).
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING

from connector.report_counts import RecordCounts, count_records
from connector.report_held import held_commands, held_how, held_section, send_note
from connector.report_index import RunNav, nav_html
from connector.report_table import iter_record_table, script_hash

if TYPE_CHECKING:
    from connector.report import ReportInput, TimelineEvent

__all__ = ["ACTIONS", "OUTCOME_COLUMNS", "build_report_html", "iter_report_html"]

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
_REASON_LABELS = (
    ("failed", "Failed."),
    ("superseded", "Superseded."),
    ("discarded", "Discarded."),
    ("uploading", "Waiting."),
)
_CORE_PLAN_KEYS = frozenset({"rows", "joiners", "movers", "leavers", "unchanged", "rejected"})
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
        budget = f"<br>{_e(data.budget_note)}" if data.budget_note else ""
        alerts.append(
            '<p class="alert"><strong>Held — nothing was sent.</strong> '
            f"{_e(data.held_reason)}{sends}{budget}<br>{held_how(held_commands(data))}</p>"
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


def _plan_section(data: ReportInput) -> str:
    """Planned records by kind, batches acknowledged and the sending notes."""
    planned_rows = "".join(
        f'<tr><td>{_e(k.replace("_", " "))}</td><td class="n">{v}</td></tr>'
        for k, v in data.planned.items()
        if v or k in _CORE_PLAN_KEYS
    )
    return (
        '<section><h2>Plan</h2><table><tr><th>kind</th><th class="n">records</th></tr>'
        f"{planned_rows}</table>"
        f'<p class="muted">Batches acknowledged: {data.batches_done} of {data.batches_total}'
        f"</p>{_sending_notes(data)}</section>"
    )


def _matrix_section(table: Mapping[str, Mapping[str, int]]) -> str:
    """Records by planned action (rows) and outcome (columns), with each action's total."""
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
    return (
        '<section class="wide"><h2>Action × status</h2>'
        + (
            f'<table><tr><th>action</th>{head}<th class="n">total</th></tr>{body}</table>'
            if actions
            else '<p class="muted">No records planned.</p>'
        )
        + "</section>"
    )


def _failures_section(data: ReportInput, counts: RecordCounts) -> str:
    """The first ``counts.keep`` problems and how many there are."""
    shown = counts.first_rows(data.rejected)
    total = counts.problems + len(data.rejected)
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


def _timeline_section(timeline: Iterable[TimelineEvent]) -> str:
    timeline_rows = "".join(
        f'<tr><td class="t">{_e(ev.at.strftime("%Y-%m-%d %H:%M:%S"))}</td>'
        f'<td class="t">{_e(ev.state)}</td>'
        f"<td>{_e(ev.detail)}</td></tr>"
        for ev in timeline
    )
    return (
        '<section class="wide"><h2>Timeline</h2><table><tr><th>time (UTC)</th><th>state</th>'
        f"<th>detail</th></tr>{timeline_rows}</table></section>"
    )


def build_report_html(data: ReportInput, *, max_failure_rows: int = 1000) -> str:
    """A single HTML page with no external assets; every dynamic value is escaped."""
    counts = count_records(data.outcome_rows, keep=max_failure_rows)
    return "".join(iter_report_html(data, counts))


def iter_report_html(data: ReportInput, counts: RecordCounts) -> Iterator[str]:
    """:func:`build_report_html`'s text in parts (the record table's data a block of
    records at a time); ``counts`` are ``data``'s records counted."""
    outcomes = counts.by_outcome if data.outcome_counts is None else data.outcome_counts
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
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>{_header(data)}<main>"
        f"{_attention(data)}{held_html}{_plan_section(data)}"
        f"<section><h2>Outcomes</h2>{_bar_chart(outcomes)}</section>"
        f"{_matrix_section(counts.by_action)}{_failures_section(data, counts)}"
    )
    yield from iter_record_table(data.records)
    yield f"{_timeline_section(data.timeline)}</main></body></html>"
