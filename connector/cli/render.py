"""What the run commands show: a run's summary, the runs table, plan and outcome words.

Everything a command prints about a run comes from its :class:`RunSummary`; suggested
commands carry the flags that name the command's config and state, so they can be pasted
as printed. The engine's own log lines are meant for the Functions host and are shown
only on request (:func:`engine_logs`).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import webbrowser
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.table import Table

from connector.cli.common import quiet_credential_logs

if TYPE_CHECKING:
    from connector.sync.changes import ChangeView
    from connector.sync.forecast import BudgetForecast
    from connector.sync.summary import RunSummary

__all__ = [
    "count_text",
    "engine_logs",
    "first_line",
    "is_queued",
    "open_in_browser",
    "outcome_text",
    "plan_text",
    "print_held",
    "print_queue_notes",
    "print_summary",
    "progress_bar",
    "runs_table",
]

_PLAN_KEYS = ("joiners", "movers", "leavers", "retries", "resends", "unchanged", "rejected")
_OUTCOME_KEYS = ("created", "updated", "disabled", "skipped", "failed", "unconfirmed", "pending")
_SINGULAR = {
    "joiners": "joiner",
    "movers": "mover",
    "leavers": "leaver",
    "retries": "retry",
    "resends": "re-send",
    "references": "reference",
    "deactivations": "deactivation",
}
_NOT_PLANNED = frozenset({"failed", "discarded", "superseded", "received"})


@contextmanager
def engine_logs(verbose: bool) -> Iterator[None]:
    """The summary says what happened; the engine's log lines (meant for the Functions
    host) would repeat it on stderr. They are shown only with ``--verbose``."""
    logger = logging.getLogger("connector")
    previous = (logger.level, logger.propagate)
    handler: logging.Handler | None = None
    if verbose:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    else:
        logger.setLevel(logging.CRITICAL + 1)
    try:
        with quiet_credential_logs():
            yield
    finally:
        logger.setLevel(previous[0])
        logger.propagate = previous[1]
        if handler is not None:
            logger.removeHandler(handler)


@contextmanager
def progress_bar(enabled: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar on a terminal; nothing when output is piped or logged."""
    if not enabled or not sys.stdout.isatty():
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(
        TextColumn("uploading"), BarColumn(), MofNCompleteColumn(), TextColumn("batches")
    ) as bar:
        task = bar.add_task("upload", total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def count_text(n: int, plural: str) -> str:
    """``1 joiner``, ``2 joiners``; ``unchanged``/``rejected`` read the same either way."""
    return f"{n} {_SINGULAR.get(plural, plural) if n == 1 else plural}"


def plan_text(planned: Mapping[str, int]) -> str:
    """A plan in the words the reports use: deactivations (rows whose status turned
    inactive) are movers, shown as ``13 movers (6 deactivations)``; leavers are records
    missing from a full extract."""
    parts = []
    for key in (*_PLAN_KEYS, "references"):
        n = int(planned.get(key, 0) or 0)
        if not n:
            continue
        text = count_text(n, key)
        if key == "movers" and planned.get("deactivations"):
            text += f" ({count_text(int(planned['deactivations']), 'deactivations')})"
        parts.append(text)
    return ", ".join(parts)


def outcome_text(summary: RunSummary) -> str:
    """``5 created, 7 updated, …``, in the labels the report uses when it has them."""
    counts = summary.outcome_labels or summary.outcomes
    return ", ".join(f"{v} {k}" for k, v in counts.items())


def first_line(text: str, limit: int = 300) -> str:
    """A stored reason on one line (an error may carry a multi-line credential report)."""
    line = next((ln.strip() for ln in str(text).splitlines() if ln.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def print_summary(summary: RunSummary, console: Console, flags: str = "") -> None:
    """What happened to a run; suggested commands carry ``flags`` so they can be pasted."""
    from rich.markup import escape

    console.print(
        f"run [bold]{escape(summary.run_id)}[/bold] ({escape(summary.source)},"
        f" {escape(summary.file_name or '-')})"
    )
    plan = plan_text(summary.planned)
    if not plan:
        plan = "not planned" if summary.state in _NOT_PLANNED else "nothing to do"
    console.print(f"  plan:    {plan}")
    _print_state(summary, console)
    if summary.batches_total and not summary.dry_run:
        console.print(f"  batches: {summary.batches_done} of {summary.batches_total} acknowledged")
    if summary.forecast is not None:
        _print_forecast(summary.forecast, console)
    elif summary.send_order and not summary.dry_run:
        console.print(f"  order:   {summary.send_order}")
    if summary.progress:
        console.print(f"  days:    {summary.progress.get('text')}")
    if summary.isolation_calls and not summary.dry_run:
        console.print(
            f"  400s:    {summary.isolation_calls} extra calls spent finding the refused records"
        )
    if summary.outcomes:
        console.print("  outcome: " + escape(outcome_text(summary)))
    _print_next_steps(summary, console, f" {flags}" if flags else "")
    if summary.failed_reason:
        console.print(f"  [red]reason:[/red] {escape(first_line(summary.failed_reason))}")
    if summary.job_health:
        console.print(f"  [red]job:[/red] {escape(summary.job_health)}")
    if summary.ordering_warning:
        console.print(f"  [yellow]warning:[/yellow] {escape(summary.ordering_warning)}")
    if summary.reports and not summary.dry_run:
        console.print(f"  report:  {summary.reports.get('report.html')}", soft_wrap=True)


def _print_forecast(forecast: BudgetForecast, console: Console) -> None:
    """A run not sent yet against today's budget: whether it fits, else the order the
    sender would choose and the days it would take (:mod:`connector.sync.forecast`)."""
    console.print(f"  budget:  {forecast.budget_text}")
    if forecast.send_order:
        console.print(f"  order:   {forecast.send_order}")
    if forecast.groups:
        console.print("  groups:  " + ", ".join(g.text for g in forecast.groups))
    if not forecast.fits:
        console.print(f"  days:    {forecast.days_text}")


def _print_state(summary: RunSummary, console: Console) -> None:
    """The ``state:`` line; a duplicate or a dry run says what was (not) done."""
    from rich.markup import escape

    state = summary.state
    if summary.duplicate:
        state += " (this file was already received: nothing done)"
    if summary.dry_run and not summary.duplicate:
        state = "dry run (nothing sent, nothing stored)"
    console.print(f"  state:   {escape(state)}")
    if summary.dry_run and summary.duplicate:
        console.print(
            f"  a real sync would do nothing: this file is run {escape(summary.run_id)}"
            f" ({escape(summary.state)})"
        )


def _print_next_steps(summary: RunSummary, console: Console, tail: str) -> None:
    """Why a run stopped (held, waiting, blocked) and the command that continues it."""
    from rich.markup import escape

    if summary.held_reason:
        if summary.dry_run:
            console.print(
                f"  [yellow]a real sync would hold it:[/yellow] {escape(summary.held_reason)}"
            )
        else:
            console.print(f"  [yellow]held:[/yellow] {escape(summary.held_reason)}")
            console.print(
                f"  release with `connector runs approve {summary.run_id}{tail}`", soft_wrap=True
            )
            console.print(
                f"  or drop it with `connector runs discard {summary.run_id}{tail}`",
                soft_wrap=True,
            )
    if summary.waiting:
        reason = f" ({summary.waiting_reason})" if summary.waiting_reason else ""
        console.print(f"  [yellow]waiting{reason}:[/yellow] {escape(summary.waiting)}")
        if str(summary.waiting_reason or "") != "queued":
            console.print(
                f"  continue with `connector runs resume {summary.run_id}{tail}`"
                " (or any later `connector reconcile`)",
                soft_wrap=True,
            )
    if summary.state == "blocked":
        console.print(
            f"  continue once fixed: `connector runs resume {summary.run_id}{tail}`",
            soft_wrap=True,
        )


def print_held(view: ChangeView, console: Console, *, batches: int, held_csv: str) -> None:
    """Who a held run would disable and what it would change for its movers, counts first
    (printed for an admin at a terminal; never logged)."""
    from rich.markup import escape

    from connector.report_held import send_note
    from connector.sync.changes import short_attribute

    n_attrs = sum(len(r.changes) for r in view.movers)
    console.print(
        f"  changes: {len(view.disables)} to disable, {len(view.movers)} to update"
        f" ({n_attrs} attributes), {view.joiners} to create"
    )
    console.print(f"  {escape(send_note(view, batches))}", soft_wrap=True)
    if view.disables:
        console.print(f"  to disable ({len(view.disables)}):")
        for r in view.disables:
            why = "deactivation" if r.action == "mover" else r.action
            console.print(
                f"    {escape(r.external_id):<12} {escape(r.display_name)} ({why})", soft_wrap=True
            )
    if view.movers:
        console.print(f"  to update ({len(view.movers)}):")
        for r in view.movers:
            console.print(f"    {escape(r.external_id):<12} {escape(r.display_name)}")
            for ch in r.changes:
                old = "∅" if ch.old is None else ch.old
                new = "∅" if ch.new is None else ch.new
                console.print(
                    f"      {escape(short_attribute(ch.attribute))}: {escape(old)} → {escape(new)}",
                    soft_wrap=True,
                )
    console.print(f"  all of it as CSV: {held_csv}", soft_wrap=True)


_PLAN_COLUMNS = ("join", "move", "leave", "same")
_OUTCOME_COLUMNS = ("created", "updated", "disabled", "skipped")
_ISSUE_COLUMNS = ("failed", "unconf.", "warn.")


def runs_table(summaries: Iterable[RunSummary], *, with_reports: bool = False) -> RunsTable:
    """One row per run: plan and outcome counts; a written record whose manager is not set
    yet counts as created/updated and as a warning. Fitted to the console's width."""
    return RunsTable([_runs_row(s, with_reports=with_reports) for s in summaries], with_reports)


class RunsTable:
    """The runs table: one row per run when the console is wide enough, otherwise each run
    on a few lines (run, plan, written, issues) so that no count is ever dropped."""

    def __init__(self, rows: list[list[str]], with_reports: bool) -> None:
        self.rows = rows
        self.with_reports = with_reports

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        from rich.measure import Measurement

        table = self.wide()
        natural = Measurement.get(console, options.update(width=10_000), table).maximum
        if natural <= options.max_width:
            yield table
        else:
            yield self.stacked()

    def wide(self) -> Table:
        from rich import box

        # No vertical rules: the table stays within 160 columns when output is piped.
        table = Table(show_lines=False, box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
        table.add_column("run", no_wrap=True, min_width=30)
        table.add_column("file", no_wrap=True)
        table.add_column("state", no_wrap=True)
        for col in (*_PLAN_COLUMNS, *_OUTCOME_COLUMNS, *_ISSUE_COLUMNS):
            table.add_column(col, justify="right", min_width=len(col))
        if self.with_reports:
            table.add_column("report")
        for row in self.rows:
            table.add_row(*row)
        return table

    def stacked(self) -> Group:
        from rich.text import Text

        lines: list[Text] = []
        for row in self.rows:
            run, file, state, *counts = row
            lines.append(Text(f"{run}  {file}  {state}"))
            groups = (
                ("plan", _PLAN_COLUMNS),
                ("written", _OUTCOME_COLUMNS),
                ("issues", _ISSUE_COLUMNS),
            )
            at = 0
            for label, cols in groups:
                values = counts[at : at + len(cols)]
                at += len(cols)
                pairs = " · ".join(f"{c} {v}" for c, v in zip(cols, values, strict=True))
                lines.append(Text(f"  {label + ':':<9}{pairs}"))
            if self.with_reports and counts[at:]:
                lines.append(Text(f"  {'report:':<9}{counts[at]}"))
        return Group(*lines)


def _runs_row(s: RunSummary, *, with_reports: bool) -> list[str]:
    p = s.planned
    o = dict(s.outcome_labels or s.outcomes)
    warnings = 0
    for label in [k for k in o if k.endswith("(manager unresolved)")]:
        # Written, manager not set yet: counted as created/updated, flagged as a warning.
        n = o.pop(label)
        base = label.split(" ", 1)[0]
        o[base] = o.get(base, 0) + n
        warnings += n
    row = [
        s.run_id,
        s.file_name,
        s.state + (" (queued)" if is_queued(s) else " (waiting)" if s.waiting else ""),
        *(str(p.get(k, 0)) for k in ("joiners", "movers", "leavers", "unchanged")),
        *(str(o.get(k, 0)) for k in _OUTCOME_KEYS[:5]),
        str(o.get("unconfirmed", 0)),
        str(warnings) if warnings else "0",
    ]
    if with_reports:
        row.append(s.reports.get("report.html", ""))
    return row


def is_queued(s: RunSummary) -> bool:
    """Whether the run waits behind an earlier run of its source."""
    return str(s.waiting_reason or "") == "queued"


def print_queue_notes(console: Console, summaries: Iterable[RunSummary]) -> None:
    """Say which run each queued run waits for (runs of a delta source apply in order)."""
    for s in summaries:
        if is_queued(s) and s.waiting:
            console.print(f"[yellow]{s.run_id}:[/yellow] {s.waiting}")


def open_in_browser(location: str, console: Console) -> None:
    """Open a report (file path or blob URL); say where it is when no browser can."""
    if location.startswith(("https://", "http://")):
        url = location
    else:
        url = Path(location).resolve().as_uri()
    opened = False
    with contextlib.suppress(webbrowser.Error):
        opened = webbrowser.open(url)
    if not opened:
        console.print(f"no browser available; open {location}", soft_wrap=True)
