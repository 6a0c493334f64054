"""A held run in its reports: the section of report.html saying whom the run would
disable and what it would change, and the commands that release or drop it.

Counts first, then every record the run would disable and every changed attribute of
its movers (old and new value), from :class:`~connector.sync.changes.ChangeView`.
The page shows up to ``max_rows`` of each; ``held.csv`` beside the report has them all.
Every value is escaped.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from connector.sync.approval_hint import ApprovalCommands
from connector.sync.changes import short_attribute

if TYPE_CHECKING:
    from connector.report import ReportInput
    from connector.sync.changes import ChangeView


__all__ = [
    "PAGE_ROWS",
    "PLACEHOLDER_FLAGS",
    "held_commands",
    "held_how",
    "held_section",
    "send_note",
]

PAGE_ROWS = 2000
"""Disabled records, and changed attributes of movers, a held section lists (each)."""

PLACEHOLDER_FLAGS = (
    "--config SOURCES.yaml --state-account-url https://ACCOUNT.blob.core.windows.net"
)
"""Shown in a report's suggested commands when the flags that wrote it are unknown (a
report written by the Functions app: its state is in the storage account)."""


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


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


def held_how(cmds: ApprovalCommands) -> str:
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


def send_note(view: ChangeView, batches: int) -> str:
    """What approving sends, in one sentence."""
    parts = [
        f"{view.counts.get('disable', 0)} disabled (active: false)",
        f"{view.counts.get('update', 0)} updated",
        f"{view.counts.get('create', 0)} created",
    ]
    if view.counts.get("re-send"):
        parts.append(f"{view.counts['re-send']} re-sent unchanged")
    return f"Approving sends {view.total} records in {batches} batches: " + ", ".join(parts) + "."


def _more(total: int, shown: int) -> str:
    return f'<p class="muted">{total - shown} more in held.csv.</p>' if total > shown else ""


def held_section(view: ChangeView, batches: int, *, max_rows: int = PAGE_ROWS) -> str:
    """Counts, the accounts to disable and the movers' changed attributes (``view`` holds
    at least ``max_rows`` of each, or all of them)."""
    n_disables = view.counts.get("disable", 0)
    disables = view.disables[:max_rows]
    dis_rows = "".join(
        f"<tr><td><code>{_e(r.external_id)}</code></td><td>{_e(r.display_name)}</td>"
        f"<td>{_e('deactivation' if r.action == 'mover' else r.action)}</td></tr>"
        for r in disables
    )
    change_rows: list[str] = []
    for rec in view.movers:
        for ch in rec.changes:
            if len(change_rows) >= max_rows:
                break
            change_rows.append(
                f"<tr><td><code>{_e(rec.external_id)}</code></td><td>{_e(rec.display_name)}</td>"
                f"<td><code>{_e(short_attribute(ch.attribute))}</code></td><td>{_e(ch.old)}</td>"
                f"<td>{_e(ch.new)}</td></tr>"
            )
    disable_html = (
        '<div class="scroll"><table><tr><th>externalId</th><th>name</th><th>why</th></tr>'
        f"{dis_rows}</table></div>{_more(n_disables, len(disables))}"
        if n_disables
        else '<p class="muted">Nobody.</p>'
    )
    mover_html = (
        '<div class="scroll"><table><tr><th>externalId</th><th>name</th><th>attribute</th>'
        f"<th>old value</th><th>new value</th></tr>{''.join(change_rows)}</table></div>"
        f"{_more(view.attributes, len(change_rows))}"
        if change_rows
        else '<p class="muted">None.</p>'
    )
    n_movers = view.counts.get("update", 0)
    return (
        '<section class="wide" id="held"><h2>Who this run changes</h2>'
        f'<p class="counts"><strong>{n_disables}</strong> to disable · '
        f"<strong>{n_movers}</strong> to update ({view.attributes} attributes) · "
        f"<strong>{view.joiners}</strong> to create"
        f' · <a href="held.csv" download>held.csv</a></p>'
        f'<p class="muted">{_e(send_note(view, batches))}</p>'
        f"<h3>To disable ({n_disables})</h3>{disable_html}"
        f"<h3>Changed attributes of movers ({n_movers} records)</h3>{mover_html}"
        "</section>"
    )
