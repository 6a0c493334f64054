"""CLI commands: graph (``connector status``, ``logs``, ``schema add``, ``job start|restart``).

Every command takes the provisioning endpoint exactly as the Entra portal shows it and
an auth choice: ``--auth default|managed-identity|certificate|secret`` (azure.identity
credentials; certificate/secret inputs from options or the usual ``AZURE_*`` variables)
or ``--token TOKEN`` (the emulator's, or one pasted from Graph Explorer). Tokens only go
to Graph hosts; a loopback emulator needs ``--allow-loopback``.
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich import box
from rich.table import Table

from connector.cli.common import (
    CertOpt,
    CredentialOptions,
    TenantOpt,
    TokenOpt,
    console,
    error_lines,
    exit_code_for,
    expand_options,
    fail,
    iso_utc,
    quiet_credential_logs,
)
from connector.cli.jsonout import JsonOpt, emit, emit_error
from connector.cli.paths import input_file_option
from connector.errors import ConfigError, ConnectorError

if TYPE_CHECKING:
    from connector.graph.client import GraphClient
    from connector.graph.logs import LogQuery
    from connector.graph.models import ProvisioningObjectSummary, SynchronizationJob
    from connector.graph.schema import SchemaUpdate

__all__ = ["ActionFilter", "GraphAuth", "StatusFilter", "parse_since", "register"]

T = TypeVar("T")

_SINCE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$", re.IGNORECASE)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

EndpointOpt = Annotated[
    str,
    typer.Option(
        "--endpoint",
        envvar="CONNECTOR_ENDPOINT",
        help="Provisioning API endpoint URL as the Entra portal shows it (…/bulkUpload).",
    ),
]
AuthOpt = Annotated[
    str,
    typer.Option(
        "--auth",
        envvar="CONNECTOR_AUTH",
        help="Credential: default, managed-identity, certificate or secret.",
    ),
]
ClientOpt = Annotated[
    str | None,
    typer.Option(
        "--client-id",
        help="App (client) id; for managed-identity the user-assigned identity's client id.",
    ),
]
LoopbackOpt = Annotated[
    bool,
    typer.Option(
        "--allow-loopback",
        envvar="CONNECTOR_ALLOW_LOOPBACK",
        help="Allow a loopback endpoint (the local emulator) to receive the token.",
    ),
]


class StatusFilter(StrEnum):
    """``--status`` values: the documented ``provisioningStatusInfo/status`` values."""

    SUCCESS = "success"
    FAILURE = "failure"
    SKIPPED = "skipped"
    WARNING = "warning"


class ActionFilter(StrEnum):
    """``--action`` values: the documented ``provisioningAction`` values.

    Graph's filters are case sensitive (documented); the values sent are the enum's
    spelling (``stagedDelete``), whatever case the admin typed.
    """

    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    STAGED_DELETE = "stagedDelete"
    DISABLE = "disable"
    OTHER = "other"


def parse_since(text: str, now: datetime) -> datetime:
    """``2h``/``30m``/``1d``/``90s`` ago, or an ISO 8601 timestamp (UTC when no offset)."""
    match = _SINCE.match(text)
    if match:
        return now - timedelta(seconds=float(match[1]) * _UNITS[match[2].lower()])
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"--since {text!r} is neither a duration (90s, 30m, 2h, 1d) nor an ISO timestamp"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _run(
    make: Callable[[], Coroutine[Any, Any, T]], *, command: str, auth: str, as_json: bool = False
) -> T:
    """Run the command's coroutine; a ConnectorError becomes one short error and exit 1
    (2 for a configuration error), also a ``{"kind": "error"}`` document with ``as_json``."""
    try:
        with quiet_credential_logs():
            return asyncio.run(make())
    except ConnectorError as exc:
        code = exit_code_for(exc)
        if as_json:
            emit_error(error_lines(exc, command=command, auth=auth)[0][7:], exit_code=code)
        raise fail(exc, command=command, auth=auth, code=code) from exc


@dataclass(frozen=True, slots=True)
class GraphAuth(CredentialOptions):
    """The auth options of every graph command, turned into a Graph client."""

    auth: AuthOpt = "default"
    token: TokenOpt = None
    tenant_id: TenantOpt = None
    client_id: ClientOpt = None
    certificate: CertOpt = None
    allow_loopback: LoopbackOpt = False

    def client(self, endpoint: str) -> GraphClient:
        """A GraphClient for ``endpoint``: the static token, or a credential's tokens."""
        from connector.graph.auth import (
            CredentialTokenProvider,
            StaticTokenProvider,
            TokenProvider,
        )
        from connector.graph.client import GraphClient
        from connector.graph.endpoint import Cloud, ProvisioningEndpoint

        target = ProvisioningEndpoint.parse(endpoint, allow_loopback=self.allow_loopback)
        tokens: TokenProvider
        if self.token:
            tokens = StaticTokenProvider(self.token)
        else:
            try:
                credential = self.credential(target.cloud or Cloud.GLOBAL)
            except (ValueError, OSError) as exc:  # azure.identity: unreadable cert, bad ids
                reason = next(iter(str(exc).strip().splitlines()), type(exc).__name__)
                raise ConfigError(f"--auth {self.auth}: {reason}") from exc
            tokens = CredentialTokenProvider(credential, target.scope)
        return GraphClient(target, tokens, allow_loopback=self.allow_loopback)


def _status_lines(job: SynchronizationJob) -> list[str]:
    """``label: value`` lines, values aligned in one column, times as ISO 8601 UTC."""
    from connector.graph.jobs import Ready, readiness

    pairs: list[tuple[str, str]] = [("job", str(job.id)), ("status", str(job.code))]
    ready = readiness(job)
    if isinstance(ready, Ready):
        pairs.append(("uploads", "processed" + (f" ({ready.note})" if ready.note else "")))
    else:
        pairs.append(("uploads", f"not processed: {ready.reason}"))
        pairs.append(("", f"to fix: {ready.remedy}"))
        if ready.until is not None:
            pairs.append(("", f"the service's next attempt: {iso_utc(ready.until)}"))
    status = job.status
    if status is not None:
        if status.quarantine is not None:
            q = status.quarantine
            since = iso_utc(q.current_began)
            pairs.append(("quarantine", f"{q.reason or 'unknown reason'} since {since}"))
            if q.error is not None and (q.error.code or q.error.message):
                pairs.append(("error", f"{q.error.code or ''} {q.error.message or ''}".strip()))
        last = status.last_execution
        if last is not None:
            pairs.append(
                (
                    "last run",
                    f"{last.state or '?'} {iso_utc(last.time_began)} → {iso_utc(last.time_ended)}",
                )
            )
            pairs.append(
                (
                    "",
                    f"imported {last.count_imported or 0}, exported {last.count_exported or 0},"
                    f" escrowed {last.count_escrowed or 0}",
                )
            )
            if last.error is not None and (last.error.code or last.error.message):
                error = f"{last.error.code or ''} {last.error.message or ''}".strip()
                pairs.append(("last error", error))
        if status.troubleshooting_url:
            pairs.append(("help", status.troubleshooting_url))
    width = max(len(label) for label, _ in pairs) + 2
    return [(f"{label}:" if label else "").ljust(width) + value for label, value in pairs]


def _counts_table(entries: list[ProvisioningObjectSummary]) -> Table:
    """Action × status counts, like CSV2SCIM's cycle statistics."""
    counts = Counter((e.action, e.status) for e in entries)
    actions = sorted({a for a, _ in counts})
    statuses = [s.value for s in StatusFilter]
    statuses += sorted({s for _, s in counts} - set(statuses))
    table = Table(box=box.SIMPLE_HEAD, show_footer=True, show_edge=False, pad_edge=False)
    totals = [sum(counts.get((a, s), 0) for a in actions) for s in statuses]
    table.add_column("action", footer="total")
    for status, total in zip(statuses, totals, strict=True):
        table.add_column(status, justify="right", footer=str(total))
    table.add_column("total", justify="right", footer=str(sum(totals)))
    for action in actions:
        cells = [counts.get((action, s), 0) for s in statuses]
        table.add_row(action, *(str(c) for c in cells), str(sum(cells)))
    return table


def _entries_table(entries: list[ProvisioningObjectSummary]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("time (UTC)", no_wrap=True)
    table.add_column("externalId", no_wrap=True)
    table.add_column("action", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("error")
    for entry in entries:
        err = entry.error
        detail = ""
        if err is not None and (err.error_code or err.reason):
            detail = f"{err.error_code or ''}: {err.reason or ''}".strip(": ")
        table.add_row(
            iso_utc(entry.activity_date_time),
            entry.external_id or "?",
            entry.action,
            entry.status,
            detail,
        )
    return table


@expand_options
def status_command(
    endpoint: EndpointOpt,
    graph: GraphAuth = GraphAuth(),
    as_json: JsonOpt = False,
) -> None:
    """Show the provisioning job's status: state, quarantine, last execution."""

    async def main() -> SynchronizationJob:
        client = graph.client(endpoint)
        async with client:
            return await client.get_job()

    job = _run(main, command="status", auth=graph.auth, as_json=as_json)
    if as_json:
        emit("status", {"job": job.model_dump(mode="json", by_alias=True, exclude_none=True)})
        return
    for line in _status_lines(job):
        typer.echo(line)


SinceOpt = Annotated[
    str | None, typer.Option("--since", help="Only entries since: 2h, 30m, 1d or ISO time.")
]
StatusOpt = Annotated[
    StatusFilter | None,
    typer.Option(
        "--status",
        case_sensitive=False,
        help="Only entries with this status (filtered by the client on v1.0).",
    ),
]
ExternalIdOpt = Annotated[
    str | None, typer.Option("--external-id", help="Only this record (sourceIdentity id).")
]
ActionOpt = Annotated[
    ActionFilter | None,
    typer.Option("--action", case_sensitive=False, help="Only entries with this action."),
]
LimitOpt = Annotated[
    int | None, typer.Option("--limit", min=1, help="Stop after this many entries.")
]


async def _read_logs(
    graph: GraphAuth, endpoint: str, query: LogQuery, limit: int | None
) -> list[ProvisioningObjectSummary]:
    """The job's provisioning log entries matching ``query``, at most ``limit``."""
    client = graph.client(endpoint)
    out: list[ProvisioningObjectSummary] = []
    async with client:
        async for entry in client.iter_provisioning_logs(query):
            out.append(entry)
            if limit is not None and len(out) >= limit:
                break
    return out


def _print_logs(entries: list[ProvisioningObjectSummary]) -> None:
    """Action × status counts, then the entries; a hint when there are none."""
    if not entries:
        typer.echo(
            "no provisioning log entries match; entries appear 5-10 minutes after an upload"
            " is processed (check the job is not paused or in quarantine: connector status)"
        )
        return
    out = console()
    out.print(_counts_table(entries))
    out.print()
    out.print(_entries_table(entries))


@expand_options
def logs_command(
    endpoint: EndpointOpt,
    since: SinceOpt = None,
    status: StatusOpt = None,
    external_id: ExternalIdOpt = None,
    action: ActionOpt = None,
    limit: LimitOpt = None,
    graph: GraphAuth = GraphAuth(),
    as_json: JsonOpt = False,
) -> None:
    """Provisioning log entries of the job: action × status counts, then the entries."""
    from connector.graph.logs import LogQuery

    def query() -> LogQuery:
        return LogQuery(
            since=parse_since(since, datetime.now(UTC)) if since else None,
            status=status.value if status else None,
            external_id=external_id,
            action=action.value if action else None,
        )

    async def main() -> list[ProvisioningObjectSummary]:
        return await _read_logs(graph, endpoint, query(), limit)

    entries = _run(main, command="logs", auth=graph.auth, as_json=as_json)
    if as_json:
        data = [e.model_dump(mode="json", by_alias=True, exclude_none=True) for e in entries]
        emit("logs", {"entries": data})
        return
    _print_logs(entries)


MappingOpt = Annotated[
    Path, input_file_option("--mapping", help="Mapping YAML naming the attributes.")
]
DryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="Show what would be added; change nothing.")
]
DirectoryOpt = Annotated[
    str | None,
    typer.Option(
        "--directory",
        help="Schema directory to register in (default: the synchronization rule's"
        " source directory, else the first that is not Microsoft Entra ID).",
    ),
]


def _custom_attribute_names(mapping: Path, *, as_json: bool) -> list[str]:
    """The mapping's custom extension attributes; a bad mapping ends the command."""
    from connector.mapping import load_mapping

    try:
        return load_mapping(mapping).custom_attribute_names()
    except ConnectorError as exc:
        if as_json:
            emit_error(str(exc), exit_code=exit_code_for(exc))
        raise fail(exc, command="schema add", code=exit_code_for(exc)) from exc


def _print_schema_update(update: SchemaUpdate, *, dry_run: bool) -> None:
    """The directory, the attributes present and added, and what to do next."""
    typer.echo(f"directory {update.directory!r} ({update.chosen_by})")
    for name in update.present:
        typer.echo(f"present   {name}")
    verb = "would add" if dry_run else "added    "
    for name in update.added:
        typer.echo(f"{verb} {name}")
    if not update.added:
        typer.echo("the schema already has every attribute; nothing written")
    elif dry_run:
        typer.echo("dry run: schema not changed")
    else:
        typer.echo(
            "map each added attribute to a target attribute (Entra portal → Provisioning →"
            " Mappings): the service applies custom attributes only when they are mapped"
        )


@expand_options
def schema_add_command(
    endpoint: EndpointOpt,
    mapping: MappingOpt,
    dry_run: DryRunOpt = False,
    directory: DirectoryOpt = None,
    graph: GraphAuth = GraphAuth(),
    as_json: JsonOpt = False,
) -> None:
    """Register the mapping's custom extension attributes in the job schema (missing ones only).

    Only attributes the job's attribute mappings map are applied by the service (Graph
    bulkUpload Example 2); map each new attribute in the portal afterwards.
    """
    names = _custom_attribute_names(mapping, as_json=as_json)
    if not names:
        if as_json:
            emit("schema", {"directory": None, "present": [], "added": [], "dry_run": dry_run})
            return
        typer.echo(f"{mapping} maps no custom extension attributes; nothing to register")
        return

    async def main() -> SchemaUpdate:
        client = graph.client(endpoint)
        async with client:
            return await client.add_custom_attributes(names, dry_run=dry_run, directory=directory)

    update = _run(main, command="schema add", auth=graph.auth, as_json=as_json)
    if as_json:
        emit(
            "schema",
            {
                "directory": update.directory,
                "chosen_by": update.chosen_by,
                "present": list(update.present),
                "added": list(update.added),
                "dry_run": dry_run,
            },
        )
        return
    _print_schema_update(update, dry_run=dry_run)


YesOpt = Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation (for scripts).")]
ResetScopeOpt = Annotated[
    str,
    typer.Option(
        "--reset-scope",
        help="restart criteria.resetScope (comma-separated; documented values only).",
    ),
]
RESTART_WARNING = (
    "Restarting the provisioning job clears failed payloads, escrows and quarantine; if the"
    " job is not running it also purges every upload it has not processed yet."
)


def _interactive() -> bool:
    """Whether a person can answer a prompt (stdin is a terminal)."""
    return sys.stdin.isatty()


def _confirmed(yes: bool, question: str) -> bool:
    """``--yes``, or the person's answer; without a terminal and without ``--yes``, exit 2."""
    if yes:
        return True
    if not _interactive():
        typer.secho(
            "error: this purges queued data; pass --yes to confirm (no terminal to ask)",
            fg="red",
            err=True,
        )
        raise typer.Exit(2)
    return typer.confirm(question, default=False)


@expand_options
def job_restart_command(
    endpoint: EndpointOpt,
    yes: YesOpt = False,
    reset_scope: ResetScopeOpt = "Watermark, Escrows, QuarantineState",
    graph: GraphAuth = GraphAuth(),
) -> None:
    """Restart the provisioning job (Graph "restart"): the documented remedy for a bucket
    full of failed payloads and for quarantine."""
    typer.echo(RESTART_WARNING, err=True)
    if not _confirmed(yes, "Restart the provisioning job?"):
        typer.echo("not restarted")
        raise typer.Exit(1)

    async def main() -> None:
        client = graph.client(endpoint)
        async with client:
            await client.restart_job(confirm=True, reset_scope=reset_scope)

    _run(main, command="job restart", auth=graph.auth)
    typer.echo(
        "restarted; wait about 40 minutes before sending again (Microsoft's guidance after a"
        " restart), then check: connector status"
    )


@expand_options
def job_start_command(endpoint: EndpointOpt, graph: GraphAuth = GraphAuth()) -> None:
    """Start (resume) the provisioning job; a paused job goes on where it stopped."""

    async def main() -> None:
        client = graph.client(endpoint)
        async with client:
            await client.start_job()

    _run(main, command="job start", auth=graph.auth)
    typer.echo("started")


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("status")(status_command)
    app.command("logs")(logs_command)
    schema = typer.Typer(
        name="schema", help="The provisioning job's attribute schema.", no_args_is_help=True
    )
    schema.command("add")(schema_add_command)
    app.add_typer(schema)
    job = typer.Typer(
        name="job", help="The provisioning job: start, restart.", no_args_is_help=True
    )
    job.command("restart")(job_restart_command)
    job.command("start")(job_start_command)
    app.add_typer(job)
