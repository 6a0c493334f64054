"""The runs index (``index.html`` beside the sources' report folders) and report links.

Pure: rows in, one self-contained page out. Links are relative (``<source>/<run>/
report.html``), so the index works from the local state directory and from the
``reports`` container alike; a report reaches its neighbours with ``../<run>/report.html``
and the index with ``../../index.html``. Every value is escaped.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import groupby

__all__ = ["INDEX_FROM_REPORT", "IndexRow", "RunNav", "build_index_html", "nav_html"]

INDEX_FROM_REPORT = "../../index.html"

_PLAN = ("joiners", "movers", "leavers", "unchanged", "rejected")
_OUTCOMES = ("created", "updated", "disabled", "skipped", "failed", "unconfirmed")
_SHORT = {
    "joiners": "join",
    "movers": "move",
    "leavers": "leave",
    "unchanged": "same",
    "rejected": "rej.",
    "unconfirmed": "unconf.",
}


@dataclass(frozen=True, slots=True)
class IndexRow:
    """One run as the index lists it."""

    source: str
    run_id: str
    file_name: str
    state: str
    received_at: datetime | None = None
    extract_at: datetime | None = None
    planned: Mapping[str, int] = field(default_factory=dict)
    outcomes: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RunNav:
    """A report's neighbours among its source's runs (by arrival)."""

    previous: str | None = None
    next: str | None = None


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _at(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value is not None else "—"


def nav_html(nav: RunNav) -> str:
    """The links at the top of a report: previous run, all runs, next run."""
    prev = (
        f'<a rel="prev" href="../{_e(nav.previous)}/report.html">‹ previous run</a>'
        if nav.previous
        else '<span class="muted">first run</span>'
    )
    nxt = (
        f'<a rel="next" href="../{_e(nav.next)}/report.html">next run ›</a>'
        if nav.next
        else '<span class="muted">latest run</span>'
    )
    return f'<nav>{prev}<a href="{INDEX_FROM_REPORT}">all runs</a>{nxt}</nav>'


def _row(r: IndexRow) -> str:
    counts = "".join(
        f'<td class="n">{int(r.planned.get(k, 0) or 0)}</td>' for k in _PLAN
    ) + "".join(f'<td class="n">{int(r.outcomes.get(k, 0) or 0)}</td>' for k in _OUTCOMES)
    href = f"{_e(r.source)}/{_e(r.run_id)}/report.html"
    return (
        f'<tr><td><a href="{href}" title="received {_e(_at(r.received_at))} UTC">'
        f"<code>{_e(r.run_id)}</code></a></td>"
        f"<td>{_e(r.file_name)}</td><td>{_e(_at(r.extract_at))}</td>"
        f"<td>{_e(r.state)}</td>{counts}</tr>"
    )


_CSS = """body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
margin:0;background:#f5f6f8;color:#1f2328}
header{background:#1f3a5f;color:#fff;padding:18px 28px}h1{margin:0;font-size:20px}
main{padding:16px 20px}section{background:#fff;border:1px solid #dfe3e8;border-radius:8px;
padding:14px 18px;margin-bottom:18px;overflow-x:auto}h2{font-size:15px;margin:0 0 10px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{border-bottom:1px solid #eceff3;padding:4px 5px;text-align:left;white-space:nowrap}
th{background:#f0f3f7}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
code{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:11px}
.muted{color:#6a737d;font-size:13px}"""


def build_index_html(rows: Sequence[IndexRow]) -> str:
    """Every run, per source (newest first by arrival), with file, extract date, state
    and counts (the arrival time is the run link's tooltip).

    The same runs give the same bytes (no generation time): rebuilding is idempotent."""
    heads = "".join(
        f'<th class="n" title="{k}">{_SHORT.get(k, k)}</th>' for k in (*_PLAN, *_OUTCOMES)
    )
    ordered = sorted(rows, key=lambda r: r.source)
    sections = []
    for source, group in groupby(ordered, key=lambda r: r.source):
        runs = sorted(group, key=lambda r: (r.received_at is None, r.received_at, r.run_id))
        body = "".join(_row(r) for r in reversed(runs))
        sections.append(
            f"<section><h2>{_e(source)} ({len(runs)} runs)</h2><table><tr><th>run</th>"
            f"<th>file</th><th>extract date</th><th>state</th>{heads}</tr>"
            f"{body}</table></section>"
        )
    main = "".join(sections) or '<p class="muted">No runs yet.</p>'
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'\"><title>Provisioning runs</title>"
        f"<style>{_CSS}</style></head><body><header><h1>Provisioning runs</h1></header>"
        f"<main>{main}</main></body></html>"
    )
