"""Helpers shared by the CLI command modules: error lines, timestamps, consoles, options.

Credential failures get one line plus a hint instead of the azure.identity chain report:
``DefaultAzureCredential`` lists every credential it tried (about twenty lines, with
troubleshooting links) in its exception *and* logs the same text as a warning, which
without a logging handler Python prints to stderr. :func:`quiet_credential_logs` mutes
that warning while a command runs; :func:`fail` prints the short form.

Options several commands share are declared once: as ``Annotated`` aliases, and grouped in
:class:`OptionGroup` dataclasses that :func:`expand_options` spreads into a command's
signature (Typer needs one parameter per option; the command body gets the dataclass).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import logging
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, get_type_hints

import typer
from rich.console import Console

from connector.cli.paths import input_file_option
from connector.errors import AuthenticationError, ConfigError

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

    from connector.graph.endpoint import Cloud

__all__ = [
    "AUTH_HINT",
    "AUTH_KINDS",
    "EXIT_USAGE",
    "CertOpt",
    "CredentialOptions",
    "OptionGroup",
    "TenantOpt",
    "TokenOpt",
    "check_auth_kind",
    "config_error_lines",
    "console",
    "credential_failure_line",
    "error_lines",
    "exit_code_for",
    "expand_options",
    "fail",
    "iso_utc",
    "quiet_credential_logs",
]

R = TypeVar("R")

AUTH_KINDS = ("default", "managed-identity", "certificate", "secret")
"""The ``--auth`` values (azure.identity credentials ``build_credential`` knows)."""

TokenOpt = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="CONNECTOR_TOKEN",
        show_envvar=True,
        help="Static bearer token (emulator or Graph Explorer); never printed.",
    ),
]
TenantOpt = Annotated[str | None, typer.Option("--tenant-id", help="Tenant for cert/secret.")]
CertOpt = Annotated[
    Path | None,
    input_file_option("--certificate", help="PEM/PFX certificate for --auth certificate."),
]

AUTH_HINT = (
    "pass --token TOKEN, or --auth managed-identity|certificate|secret"
    " (see connector {command} --help)"
)

_AZURE_IDENTITY_LOGGER = "azure.identity"
_MAX_REASON = 200
# Trailing advice azure.identity appends to its first line; the hint replaces it.
_ADVICE = re.compile(r"\s*(Visit https?://|To mitigate|See the troubleshooting|Please visit).*$")


def iso_utc(moment: datetime | None, missing: str = "?") -> str:
    """``2026-11-26T23:57:07Z``: ISO 8601 in UTC to the second (naive values are taken as UTC)."""
    if moment is None:
        return missing
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def console(*, stderr: bool = False) -> Console:
    """A rich console for command output: plain text (no colours) and 160 columns off a terminal.

    ``stderr``: for ``--json``, whose stdout is the JSON document alone."""
    stream = sys.stderr if stderr else sys.stdout
    return Console(highlight=False, width=None if stream.isatty() else 160, stderr=stderr)


def _azure_cause(exc: BaseException) -> BaseException | None:
    """The azure.core authentication error behind ``exc``, if any (walks ``__cause__``)."""
    from azure.core.exceptions import ClientAuthenticationError

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ClientAuthenticationError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _reason(cause: BaseException) -> str:
    text = str(getattr(cause, "message", None) or cause).strip()
    if text.startswith("DefaultAzureCredential failed"):
        return (
            "DefaultAzureCredential found no signed-in identity"
            " (no `az login`, no AZURE_* variables, no managed identity)"
        )
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    first = _ADVICE.sub("", first).rstrip(" .")
    if len(first) > _MAX_REASON:
        first = first[: _MAX_REASON - 1].rstrip() + "…"
    return first or type(cause).__name__


def credential_failure_line(exc: BaseException, *, auth: str | None = None) -> str | None:
    """One line for a failed token fetch (azure.identity), or None for any other error.

    A Graph 401 is an :class:`AuthenticationError` too but has no azure.identity cause: it
    keeps its own message.
    """
    if not isinstance(exc, AuthenticationError):
        return None
    cause = _azure_cause(exc)
    if cause is None:
        return None
    how = f" with --auth {auth}" if auth else ""
    return f"could not get a Graph token{how}: {_reason(cause)}"


def error_lines(exc: BaseException, *, command: str, auth: str | None = None) -> list[str]:
    """The lines :func:`fail` prints: ``error: …`` and, for credential failures, the hint."""
    short = credential_failure_line(exc, auth=auth)
    if short is None:
        return [f"error: {exc}"]
    return [f"error: {short}", AUTH_HINT.format(command=command)]


EXIT_USAGE = 2
"""A configuration problem (a bad --mapping or --config file, a bad setting): as Typer's own
usage errors, so scripts tell "fix the command or its files" from "the input has problems"."""


def exit_code_for(exc: BaseException) -> int:
    """2 (:data:`EXIT_USAGE`) for a configuration error, 1 for any other failure."""
    return EXIT_USAGE if isinstance(exc, ConfigError) else 1


def config_error_lines(exc: ConfigError) -> list[str]:
    """``error: file:line: problem`` lines: one per problem of a MappingError, else one line.

    Never a traceback; each line names the file (and line) to fix.
    """
    problems = getattr(exc, "problems", None) or []
    if problems:
        return [f"error: {p}" for p in problems]
    return ["error: " + " ".join(str(exc).split())]


def fail(exc: BaseException, *, command: str, auth: str | None = None, code: int = 1) -> typer.Exit:
    """Print ``exc`` to stderr (short form for credential failures); return the Exit to raise."""
    first, *rest = error_lines(exc, command=command, auth=auth)
    typer.secho(first, fg="red", err=True)
    for line in rest:
        typer.echo(line, err=True)
    return typer.Exit(code=code)


@contextmanager
def quiet_credential_logs() -> Iterator[None]:
    """Mute azure.identity's warnings (the credential chain report) for the block's duration.

    The failure still reaches the command as an exception; only the duplicate log copy goes.
    """
    logger = logging.getLogger(_AZURE_IDENTITY_LOGGER)
    previous = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(previous)


def check_auth_kind(auth: str) -> None:
    """Refuse an ``--auth`` value no credential answers to (before anything is fetched)."""
    if auth not in AUTH_KINDS:
        raise ConfigError(f"--auth {auth!r}: use one of {', '.join(AUTH_KINDS)}")


class OptionGroup:
    """Base of the frozen dataclasses whose fields are a set of options several commands
    share; each field is annotated with its Typer option and has the option's default."""


class CredentialOptions(OptionGroup):
    """An option group naming a credential: ``--token``, or ``--auth`` and its inputs.

    Subclasses declare these as dataclass fields with their own option help.
    """

    auth: str
    token: str | None
    tenant_id: str | None
    client_id: str | None
    certificate: Path | None

    def credential(self, cloud: Cloud) -> TokenCredential:
        """The azure.identity credential ``--auth`` names, for ``cloud``'s authority."""
        from connector.graph.auth import build_credential

        check_auth_kind(self.auth)
        return build_credential(
            self.auth,  # type: ignore[arg-type]
            cloud=cloud,
            client_id=self.client_id,
            tenant_id=self.tenant_id,
            certificate_path=str(self.certificate) if self.certificate else None,
        )


def expand_options(func: Callable[..., R]) -> Callable[..., R]:
    """Spread each :class:`OptionGroup` parameter of ``func`` into its fields, for Typer.

    Typer builds a command from one parameter per option. The command Typer sees takes the
    group's fields in place of the group parameter (same names, annotations, defaults and
    order, so ``--help`` lists the options where they were), builds the dataclass from
    them and calls ``func`` with it.
    """
    hints = get_type_hints(func, include_extras=True)
    params: list[inspect.Parameter] = []
    groups: dict[str, tuple[type[OptionGroup], list[str]]] = {}
    for name, param in inspect.signature(func).parameters.items():
        hint = hints.get(name, param.annotation)
        if not (isinstance(hint, type) and issubclass(hint, OptionGroup)):
            params.append(param.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=hint))
            continue
        field_hints = get_type_hints(hint, include_extras=True)
        fields = dataclasses.fields(hint)  # type: ignore[arg-type]
        groups[name] = (hint, [f.name for f in fields])
        params += [
            inspect.Parameter(
                f.name,
                inspect.Parameter.KEYWORD_ONLY,
                default=inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default,
                annotation=field_hints[f.name],
            )
            for f in fields
        ]

    @functools.wraps(func)
    def command(**kwargs: Any) -> R:
        for name, (group, fields) in groups.items():
            kwargs[name] = group(**{field: kwargs.pop(field) for field in fields})
        return func(**kwargs)

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    return command
