"""CLI commands: sync, reconcile, runs, report and demo.

``connector sync`` plans an extract against the source's state, holds it when the
mass-change guard trips, and uploads what changed; ``connector reconcile`` reads the
provisioning logs for every open run; ``connector runs ...`` lists, shows, approves,
discards and retries runs; ``connector report`` rebuilds and opens a run's report;
``connector demo`` does all of it against the in-process emulator.

State lives in a local directory (``--state``, default ``./.connector/state``), or in the
deployed app's storage account (``--state-account-url https://<account>.blob.core.windows.net``,
containers ``state`` and ``reports``, signed in with ``DefaultAzureCredential``, e.g. after
``az login``). Auth for Graph: ``--token`` or ``--auth default|managed-identity|certificate|
secret``; a loopback endpoint (the emulator) needs ``--endpoint URL --allow-loopback``.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import logging
import shlex
import shutil
import sys
import tempfile
import time
import webbrowser
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer
from rich.console import Console
from rich.table import Table

from connector.cli.common import (
    CertOpt,
    CredentialOptions,
    OptionGroup,
    TenantOpt,
    TokenOpt,
    expand_options,
    quiet_credential_logs,
)
from connector.cli.common import console as _console
from connector.cli.common import fail as _fail_short
from connector.errors import ConfigError, ConnectorError, StateError

__all__ = ["register", "run_demo"]

DEFAULT_STATE = Path(".connector") / "state"
DEFAULT_DEMO_DIR = Path(".connector") / "demo"
_DEMO_MARKER = ".connector-demo"

ConfigOpt = Annotated[
    Path, typer.Option("--config", "-c", help="Sources config (YAML).", exists=True)
]
StateOpt = Annotated[
    Path | None,
    typer.Option(
        "--state",
        help=f"State directory (records, run journals, reports). Default: {DEFAULT_STATE}.",
    ),
]
StateAccountOpt = Annotated[
    str | None,
    typer.Option(
        "--state-account-url",
        envvar="CONNECTOR_STATE_ACCOUNT_URL",
        help="Use the deployed app's state instead of --state:"
        " https://<account>.blob.core.windows.net (containers state and reports), signed in"
        " with DefaultAzureCredential (e.g. `az login`).",
    ),
]
StateConnectionOpt = Annotated[
    str | None,
    typer.Option(
        "--state-connection-string",
        envvar="CONNECTOR_STATE_CONNECTION_STRING",
        hidden=True,
        help="Local Azurite only (tests, development): a connection string whose blob"
        " endpoint is on loopback.",
    ),
]
AuthOpt = Annotated[
    str, typer.Option("--auth", help="Credential: default, managed-identity, certificate, secret.")
]
ClientOpt = Annotated[str | None, typer.Option("--client-id", help="App or identity client id.")]
EndpointOpt = Annotated[
    str | None,
    typer.Option(
        "--endpoint",
        help="Send every source to this bulkUpload URL instead (e.g. the local emulator's).",
    ),
]
LoopbackOpt = Annotated[
    bool,
    typer.Option("--allow-loopback", help="Allow a loopback endpoint to receive the token."),
]
VerboseOpt = Annotated[
    bool,
    typer.Option(
        "--verbose", "-v", help="Also print the engine's log lines (to stderr) as they happen."
    ),
]


@contextmanager
def _engine_logs(verbose: bool) -> Iterator[None]:
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


def _fail(exc: BaseException) -> typer.Exit:
    typer.secho(f"error: {exc}", fg="red", err=True)
    return typer.Exit(code=1)


@dataclass(frozen=True, slots=True)
class StateOptions(OptionGroup):
    """The options naming a command's state store (checked by :meth:`location`)."""

    state: StateOpt = None
    state_account_url: StateAccountOpt = None
    state_connection_string: StateConnectionOpt = None

    def location(self) -> _StateLocation:
        return _state_location(self.state, self.state_account_url, self.state_connection_string)


@dataclass(frozen=True, slots=True)
class GraphOptions(CredentialOptions):
    """The auth and target options of a command that talks to Graph; a token provider per
    source."""

    auth: AuthOpt = "default"
    token: TokenOpt = None
    tenant_id: TenantOpt = None
    client_id: ClientOpt = None
    certificate: CertOpt = None
    endpoint: EndpointOpt = None
    allow_loopback: LoopbackOpt = False

    def provider(self, src: Any) -> Any:
        from connector.graph.auth import CredentialTokenProvider, StaticTokenProvider
        from connector.sync.targets import source_cloud

        if self.token:
            return StaticTokenProvider(self.token)
        cloud = source_cloud(src)
        return CredentialTokenProvider(self.credential(cloud), cloud.scope)


@contextmanager
def _failing(command: str | None = None, auth: str = "default") -> Iterator[None]:
    """A ConnectorError in the block becomes one error line and exit 1; a Graph command
    (``command`` given) prints a credential failure short, with the --token/--auth hint."""
    try:
        yield
    except ConnectorError as exc:
        raise (_fail(exc) if command is None else _auth_fail(exc, command, auth)) from exc


_BLOB_HOST_SUFFIXES = (
    ".blob.core.windows.net",
    ".blob.core.usgovcloudapi.net",
    ".blob.core.chinacloudapi.cn",
)
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
STATE_CONTAINER = "state"
REPORTS_CONTAINER = "reports"


@dataclass(frozen=True, slots=True)
class _StateLocation:
    """Where a command's state is: a local directory, or the app's storage account."""

    directory: Path | None = None
    account_url: str | None = None
    connection_string: str | None = None

    def describe(self) -> str:
        if self.account_url:
            return self.account_url
        if self.connection_string:
            return "local Azurite"
        return str(self.directory or DEFAULT_STATE)

    def flags(self) -> list[str]:
        """The option naming this store, for commands printed to be pasted (a connection
        string carries a key: its environment variable is printed instead)."""
        if self.account_url:
            return ["--state-account-url", self.account_url]
        if self.connection_string:
            return ["--state-connection-string", '"$CONNECTOR_STATE_CONNECTION_STRING"']
        return ["--state", shlex.quote(str(self.directory or DEFAULT_STATE))]


def _command_flags(
    config: Path,
    location: _StateLocation,
    *,
    auth: str = "default",
    endpoint: str | None = None,
    allow_loopback: bool = False,
) -> str:
    """``--config … --state …`` (and the non-secret target options the command used), so a
    printed ``connector runs approve ID …`` works as pasted. A ``--token`` is never echoed."""
    parts = ["--config", shlex.quote(str(config)), *location.flags()]
    if auth != "default":
        parts += ["--auth", shlex.quote(auth)]
    if endpoint:
        parts += ["--endpoint", shlex.quote(endpoint)]
    if allow_loopback:
        parts.append("--allow-loopback")
    return " ".join(parts)


def _state_location(
    state: Path | None, account_url: str | None, connection_string: str | None
) -> _StateLocation:
    """Check the state options: one of a directory, an account URL or a local Azurite."""
    given = [
        name
        for name, value in (
            ("--state", state),
            ("--state-account-url", account_url),
            ("--state-connection-string", connection_string),
        )
        if value
    ]
    if len(given) > 1:
        raise ConfigError(f"{' and '.join(given)} name different state stores; give one")
    if account_url:
        return _StateLocation(account_url=_check_account_url(account_url))
    if connection_string:
        _check_local_connection_string(connection_string)
        return _StateLocation(connection_string=connection_string)
    return _StateLocation(directory=state or DEFAULT_STATE)


def _check_account_url(url: str) -> str:
    """``https://<account>.blob.core.windows.net`` (or a sovereign cloud's), normalised."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    account = host.split(".", 1)[0]
    if (
        parts.scheme != "https"
        or not host.endswith(_BLOB_HOST_SUFFIXES)
        or not account.isalnum()
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or parts.username
        or parts.port not in (None, 443)
    ):
        raise ConfigError(
            f"--state-account-url {url!r}: give the storage account's blob endpoint,"
            " https://<account>.blob.core.windows.net (no container, path or SAS token;"
            " sign-in uses DefaultAzureCredential, e.g. `az login`)"
        )
    return f"https://{host}"


def _check_local_connection_string(value: str) -> None:
    """Connection strings carry an account key: accepted only for a loopback Azurite."""
    fields: dict[str, str] = {}
    for part in value.split(";"):
        key, sep, val = part.partition("=")
        if sep:
            fields[key.strip().lower()] = val.strip()
    if fields.get("usedevelopmentstorage", "").lower() == "true":
        return
    host = (urlsplit(fields.get("blobendpoint", "")).hostname or "").lower()
    if host not in _LOOPBACK_HOSTS:
        raise ConfigError(
            "--state-connection-string is for a local Azurite only (its BlobEndpoint must"
            " be on 127.0.0.1 or localhost); for the deployed app's state use"
            " --state-account-url https://<account>.blob.core.windows.net"
        )


def _state_store(location: _StateLocation, clock: Any, *, create: bool = False) -> Any:
    """The StateStore of ``location``.

    Only ``sync`` may start a new, empty store (``create``): for every other command a
    store that does not exist is a mistyped or missing ``--state``, and an error rather
    than an empty store that reads "no runs yet".
    """
    if location.account_url or location.connection_string:
        from azure.core.exceptions import AzureError
        from azure.storage.blob import BlobServiceClient

        from connector.state.blob import BlobStateStore

        if location.connection_string:
            service = BlobServiceClient.from_connection_string(location.connection_string)
        else:
            from azure.identity import DefaultAzureCredential

            service = BlobServiceClient(
                str(location.account_url), credential=DefaultAzureCredential()
            )
        if not create:
            try:
                found = service.get_container_client(STATE_CONTAINER).exists()
            except AzureError as exc:
                raise StateError(
                    f"cannot reach the state store {location.describe()}: {exc}"
                ) from exc
            if not found:
                raise StateError(
                    f"no state store at {location.describe()} (container {STATE_CONTAINER!r}"
                    " not found): check the account URL; only `connector sync` starts a new one"
                )
        return BlobStateStore(
            service,
            state_container=STATE_CONTAINER,
            reports_container=REPORTS_CONTAINER,
            clock=clock,
        )
    from connector.state.local import LocalStateStore

    directory = location.directory or DEFAULT_STATE
    if not create and not directory.is_dir():
        raise StateError(
            f"no state store at {directory} (--state): check the path; only `connector sync`"
            " starts a new one"
        )
    return LocalStateStore(directory, clock=clock)


def _store_exists(location: _StateLocation) -> bool:
    """Whether ``location`` already holds a store (local: the directory; Blob: assumed,
    the container is checked by the commands that need it)."""
    if location.directory is not None or not (location.account_url or location.connection_string):
        return (location.directory or DEFAULT_STATE).is_dir()
    return True


def _engine(
    config_path: Path,
    state: _StateLocation,
    graph: GraphOptions | None = None,
    *,
    create: bool = False,
) -> Any:
    from connector.clock import SystemClock
    from connector.config import load_sources
    from connector.sync.targets import graph_targets
    from connector.sync.wiring import build_engine

    config = load_sources(config_path)
    clock = SystemClock()
    store = _state_store(state, clock, create=create)
    chosen = graph or GraphOptions()
    endpoint = chosen.endpoint
    targets = graph_targets(
        config,
        store,
        chosen.provider,
        clock,
        allow_loopback=chosen.allow_loopback,
        endpoint_for=(lambda src: endpoint) if endpoint else None,
    )
    flags = _command_flags(
        config_path,
        state,
        auth=chosen.auth if not chosen.token else "default",
        endpoint=endpoint,
        allow_loopback=chosen.allow_loopback,
    )
    return build_engine(
        config, store, targets, clock, command_flags=flags, state_name=state.describe()
    )


@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[int, int], None] | None]:
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


def _count(n: int, plural: str) -> str:
    """``1 joiner``, ``2 joiners``; ``unchanged``/``rejected`` read the same either way."""
    return f"{n} {_SINGULAR.get(plural, plural) if n == 1 else plural}"


def plan_text(planned: Any) -> str:
    """A plan in the words the reports use: deactivations (rows whose status turned
    inactive) are movers, shown as ``13 movers (6 deactivations)``; leavers are records
    missing from a full extract."""
    parts = []
    for key in (*_PLAN_KEYS, "references"):
        n = int(planned.get(key, 0) or 0)
        if not n:
            continue
        text = _count(n, key)
        if key == "movers" and planned.get("deactivations"):
            text += f" ({_count(int(planned['deactivations']), 'deactivations')})"
        parts.append(text)
    return ", ".join(parts)


def _outcome_text(summary: Any) -> str:
    counts = getattr(summary, "outcome_labels", None) or summary.outcomes
    return ", ".join(f"{v} {k}" for k, v in counts.items())


def _first_line(text: str, limit: int = 300) -> str:
    """A stored reason on one line (an error may carry a multi-line credential report)."""
    line = next((ln.strip() for ln in str(text).splitlines() if ln.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _print_summary(summary: Any, console: Console, flags: str = "") -> None:
    """What happened to a run; suggested commands carry ``flags`` so they can be pasted."""
    from rich.markup import escape

    planned = summary.planned
    tail = f" {flags}" if flags else ""
    console.print(
        f"run [bold]{escape(summary.run_id)}[/bold] ({escape(summary.source)},"
        f" {escape(summary.file_name or '-')})"
    )
    plan = plan_text(planned)
    if not plan:
        plan = "not planned" if summary.state in _NOT_PLANNED else "nothing to do"
    console.print(f"  plan:    {plan}")
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
    if summary.batches_total and not summary.dry_run:
        console.print(f"  batches: {summary.batches_done} of {summary.batches_total} acknowledged")
    if summary.outcomes:
        console.print("  outcome: " + escape(_outcome_text(summary)))
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
    if summary.failed_reason:
        console.print(f"  [red]reason:[/red] {escape(_first_line(summary.failed_reason))}")
    if summary.job_health:
        console.print(f"  [red]job:[/red] {escape(summary.job_health)}")
    if summary.reports and not summary.dry_run:
        console.print(f"  report:  {summary.reports.get('report.html')}", soft_wrap=True)


def _runs_table(summaries: list[Any], *, with_reports: bool = False) -> Table:
    from rich import box

    # No vertical rules: the table stays within 160 columns when output is piped.
    table = Table(show_lines=False, box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    table.add_column("run", no_wrap=True, min_width=30)
    table.add_column("file", no_wrap=True)
    table.add_column("state", no_wrap=True)
    for col in ("join", "move", "leave", "same", "created", "updated", "disabled", "skipped"):
        table.add_column(col, justify="right", min_width=len(col))
    for col in ("failed", "unconf.", "warn."):
        table.add_column(col, justify="right", min_width=len(col))
    if with_reports:
        table.add_column("report")
    for s in summaries:
        p = s.planned
        o = dict(getattr(s, "outcome_labels", None) or s.outcomes)
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
            s.state + (" (queued)" if _queued(s) else " (waiting)" if s.waiting else ""),
            *(str(p.get(k, 0)) for k in ("joiners", "movers", "leavers", "unchanged")),
            *(str(o.get(k, 0)) for k in _OUTCOME_KEYS[:5]),
            str(o.get("unconfirmed", 0)),
            str(warnings) if warnings else "0",
        ]
        if with_reports:
            row.append(s.reports.get("report.html", ""))
        table.add_row(*row)
    return table


def _auth_fail(exc: BaseException, command: str, auth: str) -> typer.Exit:
    """An error in one line; a credential failure with the hint to pass --token/--auth."""
    return _fail_short(exc, command=command, auth=auth)


@expand_options
def sync_command(
    extract: Annotated[Path, typer.Argument(help="The extract file (CSV).", exists=True)],
    config: ConfigOpt,
    source: Annotated[str, typer.Option("--source", "-s", help="Source name in the config.")],
    state: StateOptions = StateOptions(),
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Plan only; send nothing.")] = False,
    full_resend: Annotated[
        bool, typer.Option("--full-resend", help="Send every record, changed or not.")
    ] = False,
    graph: GraphOptions = GraphOptions(),
    verbose: VerboseOpt = False,
) -> None:
    """Plan an extract against the source's state, then hold it or upload what changed.

    Syncing the file of a run left waiting (quota, back-pressure, outage) continues it.
    """
    console = _console()
    with _failing("sync", graph.auth):
        location = state.location()
        new_store = not _store_exists(location)
        if new_store:
            note = "nothing is stored by a dry run" if dry_run else "every record is sent"
            typer.secho(
                f"warning: new empty state at {location.describe()}: this is a first run for"
                f" source {source!r} ({note}); if you meant an existing state, check --state",
                fg="yellow",
                err=True,
            )
        engine = (
            _engine(
                config,
                location,
                graph,
                create=not dry_run,
            )
            if not (dry_run and new_store)
            else _dry_engine(config, location)
        )
        with _engine_logs(verbose), _progress(not dry_run) as progress:
            summary = asyncio.run(
                engine.ingest(
                    source,
                    extract.name,
                    extract,
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
    _print_summary(summary, console, engine.command_flags)
    if summary.dry_run and not summary.duplicate:
        n = summary.batches_total
        console.print(
            f"  dry run: a real sync would send {_count(n, 'bulk requests')}"
            + (" (held first: nothing is sent until approved)" if summary.held_reason else "")
        )
    _exit_for([summary])


def _dry_engine(config: Path, location: _StateLocation) -> Any:
    """A dry run against a store that does not exist yet: plan against an empty state in a
    throw-away directory (a dry run creates nothing where --state points)."""
    empty = Path(tempfile.mkdtemp(prefix="connector-dry-run-"))
    engine = _engine(config, _StateLocation(directory=empty), create=True)
    engine.command_flags = _command_flags(config, location)
    return engine


@expand_options
def reconcile_command(
    config: ConfigOpt,
    state: StateOptions = StateOptions(),
    graph: GraphOptions = GraphOptions(),
    verbose: VerboseOpt = False,
) -> None:
    """One pass: continue waiting uploads, release approved runs, read the logs of open runs."""
    console = _console()
    with _failing("reconcile", graph.auth):
        engine = _engine(config, state.location(), graph)
        with _engine_logs(verbose):
            resumed = asyncio.run(engine.resume_waiting())
            reconciled = asyncio.run(engine.reconcile_open_runs())
    for name, why in {**resumed.skipped, **reconciled.skipped}.items():
        console.print(f"[yellow]source {name} skipped this pass:[/yellow] {why}")
    for name, why in resumed.blocked.items():
        console.print(f"[red]source {name} is blocked:[/red] {why}")
    errors = {**resumed.errors, **reconciled.errors}
    for name, why in errors.items():
        console.print(f"[red]source {name} failed this pass:[/red] {_first_line(why)}")
    if not resumed and not reconciled:
        console.print("no open runs")
        if errors:
            raise typer.Exit(code=EXIT_FAILED)
        return
    if resumed:
        console.print("step 1 of 2, uploads continued and held runs released:")
        console.print(_runs_table(list(resumed)))
    if reconciled:
        console.print("step 2 of 2, provisioning logs read:")
        console.print(_runs_table(list(reconciled)))
    _print_queue_notes(console, [*resumed, *reconciled])
    if errors or any(s.job_health for s in reconciled):
        raise typer.Exit(code=EXIT_FAILED)
    _exit_for([*resumed, *reconciled])


EXIT_FAILED = 1
"""A run failed or is blocked (an error retrying cannot fix), or a command failed."""
EXIT_WAITING = 2
"""A run is waiting (quota, back-pressure, outage): run `connector reconcile` later."""


def _queued(s: Any) -> bool:
    return str(getattr(s, "waiting_reason", None) or "") == "queued"


def _print_queue_notes(console: Console, summaries: list[Any]) -> None:
    """Say which run each queued run waits for (runs of a delta source apply in order)."""
    for s in summaries:
        if _queued(s) and s.waiting:
            console.print(f"[yellow]{s.run_id}:[/yellow] {s.waiting}")


def _exit_for(summaries: list[Any]) -> None:
    """Exit non-zero when any run needs attention, so schedulers and scripts notice."""
    if any(s.state in ("failed", "blocked") for s in summaries):
        raise typer.Exit(code=EXIT_FAILED)
    if any(s.state == "uploading" and s.waiting for s in summaries):
        raise typer.Exit(code=EXIT_WAITING)


def _open_in_browser(location: str, console: Console) -> None:
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


def _offline_engine(config: Path, state: _StateLocation) -> Any:
    return _engine(config, state)


@expand_options
def runs_list(
    config: ConfigOpt,
    state: StateOptions = StateOptions(),
    source: Annotated[str | None, typer.Option("--source", "-s")] = None,
) -> None:
    """Every run, oldest first."""
    with _failing():
        location = state.location()
        summaries = _offline_engine(config, location).list_runs(source)
    console = _console()
    console.print(_runs_table(summaries) if summaries else f"no runs yet in {location.describe()}")
    _print_queue_notes(console, summaries)


@expand_options
def runs_show(
    run_id: Annotated[str, typer.Argument()],
    config: ConfigOpt,
    state: StateOptions = StateOptions(),
) -> None:
    """A run's journal: counts, batches, timeline, reasons."""
    console = _console()
    with _failing():
        engine = _offline_engine(config, state.location())
        journal = engine.get_run(run_id)
        summary = next(s for s in engine.list_runs() if s.run_id == run_id)
    _print_summary(summary, console, engine.command_flags)
    console.print("  timeline:")
    for ev in journal.timeline:
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
) -> None:
    """Release a held run and upload it now."""
    with _failing("runs approve", graph.auth):
        engine = _engine(config, state.location(), graph)
        with _engine_logs(verbose), _progress(True) as progress:
            summary = asyncio.run(engine.approve(run_id, by=by, progress=progress))
    _print_summary(summary, _console(), engine.command_flags)
    _exit_for([summary])


_RESUMABLE = frozenset({"uploading", "blocked", "held", "planned", "received"})


@expand_options
def runs_resume(
    run_id: Annotated[str, typer.Argument()],
    config: ConfigOpt,
    state: StateOptions = StateOptions(),
    graph: GraphOptions = GraphOptions(),
    verbose: VerboseOpt = False,
) -> None:
    """Continue one run: a waiting upload, or a blocked one once its cause is fixed."""
    console = _console()
    with _failing("runs resume", graph.auth):
        engine = _engine(config, state.location(), graph)
        current = engine.get_run(run_id).state.value
        if current not in _RESUMABLE:
            flags = engine.command_flags
            after = {
                "uploaded": f"; its logs are read by `connector reconcile {flags}`",
                "reconciling": f"; its logs are read by `connector reconcile {flags}`",
                "failed": f"; see `connector runs show {run_id} {flags}`",
            }.get(current, "")
            console.print(f"nothing to resume: run {run_id} is {current}{after}", soft_wrap=True)
            if current == "failed":
                raise typer.Exit(code=EXIT_FAILED)
            return
        with _engine_logs(verbose), _progress(True) as progress:
            summary = asyncio.run(engine.resume(run_id, progress=progress))
    _print_summary(summary, console, engine.command_flags)
    _exit_for([summary])


@expand_options
def runs_discard(
    run_id: Annotated[str, typer.Argument()],
    config: ConfigOpt,
    state: StateOptions = StateOptions(),
    by: Annotated[str, typer.Option("--by")] = "operator",
) -> None:
    """Drop a held or waiting run; nothing more of it is sent."""
    with _failing():
        engine = _offline_engine(config, state.location())
        with _engine_logs(False):
            summary = engine.discard(run_id, by=by)
    _print_summary(summary, _console(), engine.command_flags)


@expand_options
def runs_retry_failed(
    run_id: Annotated[str, typer.Argument()],
    config: ConfigOpt,
    state: StateOptions = StateOptions(),
    graph: GraphOptions = GraphOptions(),
    verbose: VerboseOpt = False,
) -> None:
    """Re-send the records of a run whose last outcome is failed (as a new run).

    A Graph token is fetched first: without one no retry run is created.
    """
    with _failing("runs retry-failed", graph.auth):
        engine = _engine(config, state.location(), graph)
        with _engine_logs(verbose):
            summary = asyncio.run(engine.retry_failed(run_id))
    _print_summary(summary, _console(), engine.command_flags)
    _exit_for([summary])


@expand_options
def report_command(
    run_id: Annotated[str, typer.Argument()],
    config: ConfigOpt,
    state: StateOptions = StateOptions(),
    open_: Annotated[bool, typer.Option("--open", help="Open report.html in a browser.")] = False,
) -> None:
    """Rebuild a run's reports from its journal and print where they are."""
    with _failing():
        engine = _offline_engine(config, state.location())
        paths = engine.report_paths(run_id, refresh=True)
        local = None
        if open_ and paths["report.html"].startswith(("https://", "http://")):
            local = _download_report(engine, run_id)
    console = _console()
    for name, where in paths.items():
        console.print(f"{name}: {where}")
    if open_:
        if local is not None:
            console.print(f"downloaded to {local}", soft_wrap=True)
        _open_in_browser(str(local or paths["report.html"]), console)


def _download_report(engine: Any, run_id: str) -> Path:
    """A copy of a report kept in Blob Storage, in a private temporary folder: a blob URL
    needs a sign-in the browser does not have, and the report is self-contained."""
    source = engine.get_run(run_id).source
    body = engine.store.read_artifact(f"{source}/{run_id}/report.html")
    folder = Path(tempfile.mkdtemp(prefix="connector-report-"))
    path = folder / f"{run_id}.html"
    path.write_bytes(body)
    return path


# -- demo -----------------------------------------------------------------------------------

_DEMO_SP = "6a1c3f0e-1d2b-4c5d-8e9f-0a1b2c3d4e5f"
_DEMO_JOB = "API2AAD.5f2b9f0c1e2d4a3b8c7d6e5f4a3b2c1d.7b0e4d2a-9c8b-4a1f-8e3d-2c1b0a9f8e7d"


def _demo_mapping() -> Path:
    import connector

    path = Path(connector.__file__).resolve().parents[1] / "samples" / "mappings" / "default.yaml"
    if not path.is_file():
        raise ConfigError(
            f"the demo needs the sample mapping {path}; run it from a source checkout"
        )
    return path


def _plant_day2_faults(path: Path, hires: int) -> tuple[str, str]:
    """Give one new hire an existing user's UPN and another a manager that does not exist."""
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    email = header.index("WorkEmail")
    manager = header.index("ManagerId")
    if hires < 2:
        raise ConfigError("the demo's churn produced fewer than two hires")
    clash, orphan = body[-1], body[-2]
    clash[email] = body[2][email]
    orphan[manager] = "9999999"
    with path.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows([header, *body])
    return clash[0], orphan[0]


def run_demo(
    directory: Path,
    *,
    rows: int = 300,
    log_delay: float = 1.0,
    console: Console | None = None,
    open_report: bool = False,
) -> list[Any]:
    """Three extracts against the in-process emulator; returns the run summaries.

    The demo prints everything it needs, so engine warnings (the held run) are kept off
    stderr while it runs; the logger's level is restored afterwards (the demo may run
    inside a longer-lived process).
    """
    engine_log = logging.getLogger("connector")
    previous = engine_log.level
    engine_log.setLevel(logging.ERROR)
    try:
        return _run_demo(
            directory, rows=rows, log_delay=log_delay, console=console, open_report=open_report
        )
    finally:
        engine_log.setLevel(previous)


def _run_demo(
    directory: Path,
    *,
    rows: int,
    log_delay: float,
    console: Console | None,
    open_report: bool,
) -> list[Any]:
    from connector.clock import SystemClock
    from connector.config import parse_sources
    from connector.emulator.config import EmulatorConfig, JobConfig
    from connector.emulator.server import run_emulator
    from connector.graph.auth import StaticTokenProvider
    from connector.sample import churn_extract, generate_extract
    from connector.state.local import LocalStateStore
    from connector.sync.targets import graph_targets
    from connector.sync.wiring import build_engine

    out = console or _console()
    started = time.monotonic()
    directory = directory.resolve()
    if directory.exists():
        if not (directory / _DEMO_MARKER).exists():
            raise ConfigError(
                f"{directory} exists and is not a demo directory; choose another --dir"
            )
        shutil.rmtree(directory)
    extracts = directory / "extracts"
    extracts.mkdir(parents=True)
    (directory / _DEMO_MARKER).write_text("state of `connector demo`; safe to delete\n")
    config_path = directory / "sources.yaml"
    config_path.write_text(
        "# Written by `connector demo`.\n"
        "sources:\n"
        "  - name: employees\n"
        "    match: employees_\n"
        f"    mapping: {_demo_mapping()}\n"
        f"    service_principal_id: {_DEMO_SP}\n"
        f"    job_id: {_DEMO_JOB}\n"
        "    mode: full\n"
        "    leavers: disable\n"
        "    extract_timestamp: {pattern: '_(?P<ts>\\d{8})\\.csv$', format: '%Y%m%d'}\n",
        encoding="utf-8",
    )
    config = parse_sources(config_path.read_text(encoding="utf-8"), path=config_path)
    day1 = extracts / "employees_20260105.csv"
    day2 = extracts / "employees_20260106.csv"
    day3 = extracts / "employees_20260107.csv"
    generate_extract(day1, rows, seed=42)
    churn = churn_extract(day1, day2, churn=0.06, seed=7)
    clash, orphan = _plant_day2_faults(day2, churn["hires"])
    with day2.open(encoding="utf-8") as fh:
        lines = fh.readlines()
    keep = 1 + (len(lines) - 1) * 2 // 5
    day3.write_text("".join(lines[:keep]), encoding="utf-8")  # a truncated extract

    clock = SystemClock()
    emu_config = EmulatorConfig(
        jobs=[JobConfig(service_principal_id=_DEMO_SP, job_id=_DEMO_JOB)],
        log_delay_seconds=log_delay,
    )
    store = LocalStateStore(directory / "state", clock=clock)
    summaries: list[Any] = []
    with run_emulator(emu_config) as emu:
        targets = graph_targets(
            config,
            store,
            StaticTokenProvider(emu.token),
            clock,
            allow_loopback=True,
            endpoint_for=lambda src: emu.endpoint_url,
        )
        flags = _command_flags(config_path, _StateLocation(directory=directory / "state"))
        engine = build_engine(
            config,
            store,
            targets,
            clock,
            command_flags=flags,
            state_name=str(directory / "state"),
        )
        out.print(f"emulator listening on {emu.base_url} (loopback only)")

        def settle() -> None:
            """Wait for the emulator to process and its logs to show, then reconcile."""
            emu.wait_idle()
            deadline = time.monotonic() + 20 * max(log_delay, 0.5)
            time.sleep(log_delay + 0.2)
            while True:
                done = asyncio.run(engine.reconcile_open_runs())
                if all(s.state == "done" for s in done) or time.monotonic() > deadline:
                    return
                time.sleep(0.3)

        steps = (
            (day1, f"day 1: first load, {rows} joiners"),
            (
                day2,
                "day 2: churn ("
                + plan_text(
                    {
                        "joiners": churn["hires"],
                        "movers": churn["movers"] + churn["leavers_inactive"],
                        "deactivations": churn["leavers_inactive"],
                        "leavers": churn["leavers_removed"],
                    }
                )
                + f"), plus a duplicate UPN on {clash} and an unknown manager on {orphan}",
            ),
            (day3, "day 3: a truncated extract (40 % of the rows)"),
        )
        for path, title in steps:
            out.rule(title)
            summary = asyncio.run(engine.ingest("employees", path.name, path))
            _print_summary(summary, out, flags)
            if summary.state in ("uploaded", "reconciling"):
                settle()
        final = engine.list_runs()
        summaries.extend(final)
    out.rule("summary")
    out.print(_runs_table(final))
    out.print("reports:")
    for s in final:
        out.print(f"  {s.run_id} ({s.state}): {s.reports.get('report.html')}", soft_wrap=True)
    out.print(f"state directory: {(directory / 'state').resolve()}")
    out.print(f"sources config:  {config_path.resolve()}")
    held = [s for s in final if s.state == "held"]
    if held:
        out.print(
            f"inspect the held run: connector runs show {held[0].run_id} {flags}",
            soft_wrap=True,
        )
    out.print(f"done in {time.monotonic() - started:.1f} s, no network used beyond loopback")
    if open_report and final:
        _open_in_browser(final[-2].reports["report.html"], out)
    return summaries


def demo_command(
    directory: Annotated[
        Path, typer.Option("--dir", help="Where the demo keeps its files (recreated each time).")
    ] = DEFAULT_DEMO_DIR,
    rows: Annotated[int, typer.Option("--rows", min=50, max=20000)] = 300,
    open_report: Annotated[bool, typer.Option("--open", help="Open day 2's report.")] = False,
) -> None:
    """Three extracts end to end against the in-process emulator (no network, no Azure)."""
    with _failing():
        run_demo(directory, rows=rows, open_report=open_report)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
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
