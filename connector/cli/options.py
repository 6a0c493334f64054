"""The options of the run commands: config, state location, Graph auth and target.

A command's state is a local directory (``--state``), the deployed app's storage account
(``--state-account-url``, signed in with ``DefaultAzureCredential``) or, for tests and
development, a loopback Azurite (``--state-connection-string``). The checks here refuse
anything else before a store is opened, so a typo never reads as "no runs yet" and an
account key never leaves the machine. :func:`command_flags` spells the options back, for
the commands that summaries and reports print to be pasted.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlsplit

import typer

from connector.cli.common import CertOpt, CredentialOptions, OptionGroup, TenantOpt, TokenOpt
from connector.cli.paths import input_file_option
from connector.errors import ConfigError

if TYPE_CHECKING:
    from connector.config import Source
    from connector.graph.auth import TokenProvider

__all__ = [
    "DEFAULT_STATE",
    "REPORTS_CONTAINER",
    "STATE_CONTAINER",
    "ConfigOpt",
    "GraphOptions",
    "StateLocation",
    "StateOptions",
    "VerboseOpt",
    "check_account_url",
    "check_local_connection_string",
    "command_flags",
    "state_location",
]

DEFAULT_STATE = Path(".connector") / "state"
STATE_CONTAINER = "state"
REPORTS_CONTAINER = "reports"

_BLOB_HOST_SUFFIXES = (
    ".blob.core.windows.net",
    ".blob.core.usgovcloudapi.net",
    ".blob.core.chinacloudapi.cn",
)
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")

ConfigOpt = Annotated[
    Path,
    input_file_option("--config", "-c", envvar="CONNECTOR_CONFIG", help="Sources config (YAML)."),
]
StateOpt = Annotated[
    Path | None,
    typer.Option(
        "--state",
        envvar="CONNECTOR_STATE",
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
    str,
    typer.Option(
        "--auth",
        envvar="CONNECTOR_AUTH",
        help="Credential: default, managed-identity, certificate, secret.",
    ),
]
ClientOpt = Annotated[str | None, typer.Option("--client-id", help="App or identity client id.")]
EndpointOpt = Annotated[
    str | None,
    typer.Option(
        "--endpoint",
        envvar="CONNECTOR_ENDPOINT",
        help="Send every source to this bulkUpload URL instead (e.g. the local emulator's).",
    ),
]
LoopbackOpt = Annotated[
    bool,
    typer.Option(
        "--allow-loopback",
        envvar="CONNECTOR_ALLOW_LOOPBACK",
        help="Allow a loopback endpoint to receive the token.",
    ),
]
VerboseOpt = Annotated[
    bool,
    typer.Option(
        "--verbose", "-v", help="Also print the engine's log lines (to stderr) as they happen."
    ),
]


@dataclass(frozen=True, slots=True)
class StateLocation:
    """Where a command's state is: a local directory, or the app's storage account."""

    directory: Path | None = None
    account_url: str | None = None
    connection_string: str | None = None

    @property
    def is_blob(self) -> bool:
        """Whether the state is in Blob Storage (an account or a local Azurite)."""
        return bool(self.account_url or self.connection_string)

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


@dataclass(frozen=True, slots=True)
class StateOptions(OptionGroup):
    """The options naming a command's state store (checked by :meth:`location`)."""

    state: StateOpt = None
    state_account_url: StateAccountOpt = None
    state_connection_string: StateConnectionOpt = None

    def location(self) -> StateLocation:
        return state_location(self.state, self.state_account_url, self.state_connection_string)


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

    def provider(self, src: Source) -> TokenProvider:
        from connector.graph.auth import CredentialTokenProvider, StaticTokenProvider
        from connector.sync.targets import source_cloud

        if self.token:
            return StaticTokenProvider(self.token)
        cloud = source_cloud(src)
        return CredentialTokenProvider(self.credential(cloud), cloud.scope)


def command_flags(
    config: Path,
    location: StateLocation,
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


def state_location(
    state: Path | None, account_url: str | None, connection_string: str | None
) -> StateLocation:
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
        return StateLocation(account_url=check_account_url(account_url))
    if connection_string:
        check_local_connection_string(connection_string)
        return StateLocation(connection_string=connection_string)
    return StateLocation(directory=state or DEFAULT_STATE)


def check_account_url(url: str) -> str:
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


def check_local_connection_string(value: str) -> None:
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
