"""CLI commands: sync, reconcile, runs, report (and the demo's registration).

``connector sync`` plans an extract against the source's state, holds it when the
mass-change guard trips, and uploads what changed; ``connector reconcile`` reads the
provisioning logs for every open run; ``connector runs ...`` lists, shows, approves,
discards and retries runs; ``connector report`` rebuilds and opens a run's report;
``connector demo`` (:mod:`connector.cli.demo`) does all of it against the in-process
emulator.

State lives in a local directory (``--state``, default ``./.connector/state``), or in the
deployed app's storage account (``--state-account-url https://<account>.blob.core.windows.net``,
containers ``state`` and ``reports``, signed in with ``DefaultAzureCredential``, e.g. after
``az login``). Auth for Graph: ``--token`` or ``--auth default|managed-identity|certificate|
secret``; a loopback endpoint (the emulator) needs ``--endpoint URL --allow-loopback``.
Options live in :mod:`connector.cli.options`, the engine of a command is built by
:mod:`connector.cli.wiring`, and what is printed by :mod:`connector.cli.render`.
"""

from __future__ import annotations

import asyncio
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from connector.cli.common import console as new_console
from connector.cli.common import expand_options
from connector.cli.demo import demo_command
from connector.cli.exits import (
    EXIT_FAILED,
    EXIT_SKIPPED,
    exit_code_of,
    exit_for,
    failing,
)
from connector.cli.jsonout import JsonOpt, emit
from connector.cli.options import ConfigOpt, GraphOptions, StateOptions, VerboseOpt
from connector.cli.paths import input_file_argument
from connector.cli.pulled import is_pulled_source, print_pull, pull_source
from connector.cli.render import (
    count_text,
    engine_logs,
    first_line,
    open_in_browser,
    print_held,
    print_queue_notes,
    print_summary,
    progress_bar,
    runs_table,
)
from connector.cli.wiring import command_engine, dry_run_engine, store_exists

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from rich.console import Console

    from connector.sync.engine import Engine
    from connector.sync.summary import RunSummary

__all__ = ["register"]

_RESUMABLE = frozenset({"uploading", "blocked", "held", "planned", "received"})


# -- commands ---------------------------------------------------------------------------


@expand_options
def sync_command(
    config: ConfigOpt,
    source: Annotated[str, typer.Option("--source", "-s", help="Source name in the config.")],
    state: StateOptions = StateOptions(),
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Plan only; send nothing.")] = False,
    full_resend: Annotated[
        bool, typer.Option("--full-resend", help="Send every record, changed or not.")
    ] = False,
    graph: GraphOptions = GraphOptions(),
    verbose: VerboseOpt = False,
    extract: Annotated[
        Path | None,
        input_file_argument(
            help="The extract file (CSV or .xlsx). Leave it out to pull a sql or rest source.",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Plan an extract against the source's state, then hold it or upload what changed.

    Syncing the file of a run left waiting (quota, back-pressure, outage) continues it.
    Without an extract, a ``sql`` or ``rest`` source is pulled and its snapshot synced.
    Exits 0 when uploaded, 1 failed or blocked, 2 usage, 4 held, 5 waiting.
    """
    console = new_console(stderr=as_json)
    with failing("sync", graph.auth, as_json=as_json):
        if extract is None:
            _need_pulled(config, source, full_resend)
        engine = _sync_engine(config, state, graph, source=source, dry_run=dry_run)
        if extract is None:
            with engine_logs(verbose):
                result = asyncio.run(pull_source(engine, source, dry_run=dry_run))
            print_pull(result, console)
            if result.summary is None:
                if as_json:
                    emit("run", {"run": None})
                return
            summary = result.summary
        else:
            summary = _sync_file(
                engine, extract, source, dry_run, full_resend, verbose, console, as_json
            )
    if as_json:
        _emit_run(summary)
    print_summary(summary, console, engine.command_flags)
    if summary.dry_run and not summary.duplicate:
        n = summary.batches_total
        forecast = summary.forecast
        over = (
            f" in priority order over {forecast.days_text}"
            if forecast is not None and not forecast.fits
            else ""
        )
        console.print(
            f"  dry run: a real sync would send {count_text(n, 'bulk requests')}{over}"
            + (" (held first: nothing is sent until approved)" if summary.held_reason else "")
        )
    exit_for([summary])


def _emit_run(summary: RunSummary | None, **extra: object) -> None:
    """``{"kind": "run", "run": {…RunSummary…}}`` with the code the command exits with."""
    emit("run", {"run": summary, **extra}, exit_code=exit_code_of([summary] if summary else []))


def _need_pulled(config: Path, source: str, full_resend: bool) -> None:
    if full_resend:
        raise typer.BadParameter("--full-resend needs an extract file", param_hint="--full-resend")
    if not is_pulled_source(config, source):
        raise typer.BadParameter(
            f"source {source!r} receives files: give the extract file to sync"
            " (only a sql or rest source is pulled without one)",
            param_hint="EXTRACT",
        )


def _sync_file(
    engine: Engine,
    extract: Path,
    source: str,
    dry_run: bool,
    full_resend: bool,
    verbose: bool,
    console: Console,
    as_json: bool = False,
) -> RunSummary:
    """``connector sync FILE``: ingest one extract (a waiting run's file continues it)."""
    with engine_logs(verbose), progress_bar(not dry_run and not as_json) as progress:
        summary = asyncio.run(
            engine.ingest(
                source,
                extract.name,
                extract,
                file_time=_file_time(extract),
                dry_run=dry_run,
                full_resend=full_resend,
                progress=progress,
                resume_waiting=not dry_run,
            )
        )
        if summary.resumed:
            console.print(
                f"this file is run {summary.run_id}, left waiting: continuing it",
                soft_wrap=True,
            )
    return summary


def _file_time(extract: Path) -> datetime | None:
    """The extract file's modification time (UTC), which orders extracts whose name holds no
    date; creation time is not portable across file systems. None if it cannot be read."""
    try:
        return datetime.fromtimestamp(extract.stat().st_mtime, UTC)
    except (OSError, OverflowError, ValueError):
        return None


def _sync_engine(
    config: Path, state: StateOptions, graph: GraphOptions, *, source: str, dry_run: bool
) -> Engine:
    """The engine of ``connector sync``; a state store that does not exist yet is announced
    (a first run sends every record) and, for a dry run, not created."""
    location = state.location()
    new_store = not store_exists(location)
    if new_store:
        note = "nothing is stored by a dry run" if dry_run else "every record is sent"
        typer.secho(
            f"warning: new empty state at {location.describe()}: this is a first run for"
            f" source {source!r} ({note}); if you meant an existing state, check --state",
            fg="yellow",
            err=True,
        )
    if dry_run and new_store:
        return dry_run_engine(config, location)
    return command_engine(config, location, graph, create=not dry_run)


@expand_options
def reconcile_command(
    config: ConfigOpt,
    state: StateOptions = StateOptions(),
    graph: GraphOptions = GraphOptions(),
    verbose: VerboseOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """One pass: continue waiting uploads, release approved runs, read the logs of open runs.

    Exits 0 when every source was handled, 1 when a run failed or is blocked (or a source
    failed this pass), 3 when a source was skipped because another run holds its lock,
    4 when a run is held, else 5 when a run is waiting.
    """
    console = new_console(stderr=as_json)
    with failing("reconcile", graph.auth, as_json=as_json):
        engine = command_engine(config, state.location(), graph)
        with engine_logs(verbose):
            resumed = asyncio.run(engine.resume_waiting())
            reconciled = asyncio.run(engine.reconcile_open_runs())
    skipped = {**resumed.skipped, **reconciled.skipped}
    for name, why in skipped.items():
        console.print(f"[yellow]source {name} skipped this pass:[/yellow] {why}")
    for name, why in resumed.blocked.items():
        console.print(f"[red]source {name} is blocked:[/red] {why}")
    errors = {**resumed.errors, **reconciled.errors}
    for name, why in errors.items():
        console.print(f"[red]source {name} failed this pass:[/red] {first_line(why)}")
    if not resumed and not reconciled:
        console.print("no open runs" + (" in the sources checked" if skipped else ""))
    if resumed:
        console.print("step 1 of 2, uploads continued and held runs released:")
        console.print(runs_table(list(resumed)))
    if reconciled:
        console.print("step 2 of 2, provisioning logs read:")
        console.print(runs_table(list(reconciled)))
    print_queue_notes(console, [*resumed, *reconciled])
    _print_job_health(console, reconciled)
    failed = bool(errors) or any(s.job_health for s in reconciled)
    code = reconcile_code([*resumed, *reconciled], skipped, failed=failed)
    if as_json:
        emit(
            "reconcile",
            {
                "continued": list(resumed),
                "reconciled": list(reconciled),
                "skipped": skipped,
                "blocked": dict(resumed.blocked),
                "errors": {name: first_line(why) for name, why in errors.items()},
            },
            exit_code=code,
        )
    if code:
        raise typer.Exit(code=code)


def _print_job_health(console: Console, reconciled: Iterable[RunSummary]) -> None:
    """Each source whose job would not process what was sent, once: why and what to do
    (the runs' ``job_health``; it makes the command exit 1)."""
    from rich.markup import escape

    named = {s.source: s.job_health for s in reconciled if s.job_health}
    for source, health in sorted(named.items()):
        console.print(f"[red]source {source}:[/red] {escape(health)}")


def reconcile_code(runs: list[RunSummary], skipped: Mapping[str, str], *, failed: bool) -> int:
    """Failures first (exit 1), then skipped sources (3), then held (4), waiting runs (5)."""
    code = EXIT_FAILED if failed else exit_code_of(runs)
    if code != EXIT_FAILED and skipped:
        return EXIT_SKIPPED
    return code


def _reconcile_exit(runs: list[RunSummary], skipped: Mapping[str, str], *, failed: bool) -> None:
    """Raise the exit of :func:`reconcile_code` (nothing for 0)."""
    code = reconcile_code(runs, skipped, failed=failed)
    if code:
        raise typer.Exit(code=code)


@expand_options
def runs_list(
    config: ConfigOpt,
    state: StateOptions = StateOptions(),
    source: Annotated[str | None, typer.Option("--source", "-s")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Every run, oldest first."""
    with failing(as_json=as_json):
        location = state.location()
        summaries = command_engine(config, location).list_runs(source)
    if as_json:
        emit("runs", {"runs": summaries})
        return
    console = new_console()
    console.print(runs_table(summaries) if summaries else f"no runs yet in {location.describe()}")
    print_queue_notes(console, summaries)


@expand_options
def runs_show(
    run_id: Annotated[str, typer.Argument()],
    config: ConfigOpt,
    state: StateOptions = StateOptions(),
    as_json: JsonOpt = False,
) -> None:
    """A run's journal: counts, batches, timeline, reasons; a held run lists whom it
    would disable and the attributes it would change."""
    console = new_console(stderr=as_json)
    with failing(as_json=as_json):
        engine = command_engine(config, state.location())
        journal = engine.get_run(run_id)
        timeline = journal.timeline
        summary = next(s for s in engine.list_runs() if s.run_id == run_id)
        view = engine.reporter.change_view(journal) if summary.held_reason else None
        summary.forecast = engine.reporter.held_forecast(journal)
    if as_json:
        timeline_docs = [ev.to_doc() for ev in timeline]
        emit("run", {"run": summary, "timeline": timeline_docs, "held": view})
        return
    print_summary(summary, console, engine.command_flags)
    if view is not None:
        from connector.sync.run_keys import HELD_NAME

        held_csv = engine.runs.report_location(journal, HELD_NAME)
        print_held(view, console, batches=summary.batches_total, held_csv=held_csv)
    console.print("  timeline:")
    for ev in timeline:
        at = ev.to_doc()["at"][:19]
        console.print(f"    {at}  {ev.state.value:<12} {ev.detail}")


@expand_options
def runs_approve(
    run_id: Annotated[str, typer.Argument()],
    config: ConfigOpt,
    state: StateOptions = StateOptions(),
    by: Annotated[str, typer.Option("--by", help="Who approves (kept in the journal).")] = (
        "operator"
    ),
    graph: GraphOptions = GraphOptions(),
    verbose: VerboseOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Release a held run and upload it now."""
    with failing("runs approve", graph.auth, as_json=as_json):
        engine = command_engine(config, state.location(), graph)
        with engine_logs(verbose), progress_bar(not as_json) as progress:
            summary = asyncio.run(engine.approve(run_id, by=by, progress=progress))
    if as_json:
        _emit_run(summary)
    print_summary(summary, new_console(stderr=as_json), engine.command_flags)
    exit_for([summary])


@expand_options
def runs_resume(
    run_id: Annotated[str, typer.Argument()],
    config: ConfigOpt,
    state: StateOptions = StateOptions(),
    graph: GraphOptions = GraphOptions(),
    verbose: VerboseOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Continue one run: a waiting upload, or a blocked one once its cause is fixed."""
    console = new_console(stderr=as_json)
    with failing("runs resume", graph.auth, as_json=as_json):
        engine = command_engine(config, state.location(), graph)
        current = engine.get_run(run_id).state.value
        if current not in _RESUMABLE:
            flags = engine.command_flags
            after = {
                "uploaded": f"; its logs are read by `connector reconcile {flags}`",
                "reconciling": f"; its logs are read by `connector reconcile {flags}`",
                "failed": f"; see `connector runs show {run_id} {flags}`",
            }.get(current, "")
            console.print(f"nothing to resume: run {run_id} is {current}{after}", soft_wrap=True)
            code = EXIT_FAILED if current == "failed" else 0
            if as_json:
                emit("run", {"run": None, "run_id": run_id, "state": current}, exit_code=code)
            if code:
                raise typer.Exit(code=code)
            return
        with engine_logs(verbose), progress_bar(not as_json) as progress:
            summary = asyncio.run(engine.resume(run_id, progress=progress))
    if as_json:
        _emit_run(summary)
    print_summary(summary, console, engine.command_flags)
    exit_for([summary])


@expand_options
def runs_discard(
    run_id: Annotated[str, typer.Argument()],
    config: ConfigOpt,
    state: StateOptions = StateOptions(),
    by: Annotated[str, typer.Option("--by")] = "operator",
    as_json: JsonOpt = False,
) -> None:
    """Drop a held or waiting run; nothing more of it is sent."""
    with failing(as_json=as_json):
        engine = command_engine(config, state.location())
        with engine_logs(False):
            summary = engine.discard(run_id, by=by)
    if as_json:
        _emit_run(summary)
    print_summary(summary, new_console(stderr=as_json), engine.command_flags)


@expand_options
def runs_retry_failed(
    run_id: Annotated[str, typer.Argument()],
    config: ConfigOpt,
    state: StateOptions = StateOptions(),
    graph: GraphOptions = GraphOptions(),
    verbose: VerboseOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Re-send the records of a run whose last outcome is failed (as a new run).

    A Graph token is fetched first: without one no retry run is created.
    """
    with failing("runs retry-failed", graph.auth, as_json=as_json):
        engine = command_engine(config, state.location(), graph)
        with engine_logs(verbose):
            summary = asyncio.run(engine.retry_failed(run_id))
    if as_json:
        _emit_run(summary)
    print_summary(summary, new_console(stderr=as_json), engine.command_flags)
    exit_for([summary])


@expand_options
def report_command(
    run_id: Annotated[str, typer.Argument()],
    config: ConfigOpt,
    state: StateOptions = StateOptions(),
    open_: Annotated[bool, typer.Option("--open", help="Open report.html in a browser.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Rebuild a run's reports from its journal and print where they are."""
    with failing(as_json=as_json):
        engine = command_engine(config, state.location())
        paths = engine.report_paths(run_id, refresh=True)
        local = None
        if open_ and paths["report.html"].startswith(("https://", "http://")):
            local = _download_report(engine, run_id)
    if as_json:
        emit("report", {"run_id": run_id, "paths": paths, "downloaded": local and str(local)})
    console = new_console(stderr=as_json)
    for name, where in paths.items():
        console.print(f"{name}: {where}")
    if open_:
        if local is not None:
            console.print(f"downloaded to {local}", soft_wrap=True)
        open_in_browser(str(local or paths["report.html"]), console)


def _download_report(engine: Engine, run_id: str) -> Path:
    """A copy of a report kept in Blob Storage, in a private temporary folder: a blob URL
    needs a sign-in the browser does not have, and the report is self-contained."""
    source = engine.get_run(run_id).source
    body = engine.store.read_artifact(f"{source}/{run_id}/report.html")
    folder = Path(tempfile.mkdtemp(prefix="connector-report-"))
    path = folder / f"{run_id}.html"
    path.write_bytes(body)
    return path


def register(app: typer.Typer) -> None:
    """Add this module's commands (and the demo) to ``app``."""
    app.command("sync")(sync_command)
    app.command("reconcile")(reconcile_command)
    app.command("report")(report_command)
    app.command("demo")(demo_command)
    runs = typer.Typer(help="List, inspect, approve, discard and retry runs.", no_args_is_help=True)
    runs.command("list")(runs_list)
    runs.command("show")(runs_show)
    runs.command("approve")(runs_approve)
    runs.command("discard")(runs_discard)
    runs.command("retry-failed")(runs_retry_failed)
    runs.command("resume")(runs_resume)
    app.add_typer(runs, name="runs")
