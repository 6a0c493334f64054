"""Azure Functions app settings: one typed model for every setting the code reads.

The Functions host passes app settings to the worker as environment variables. They
are read here, once, at the first invocation (not at import: a bad setting must not
stop the host from indexing the functions, and the error must reach the invocation
log with the setting's name). Any problem raises :class:`ConfigError` naming each
offending setting and saying what to put there.

The names below are shared with the Bicep app settings (``infra/``) and the README's
settings table; ``tests/functions/test_settings_docs.py`` keeps the three in agreement.
"""

from __future__ import annotations

import ipaddress
import itertools
import re
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings, SettingsConfigDict

from connector.errors import ConfigError, UnsafeEndpointError

__all__ = [
    "APP_SETTING_NAMES",
    "AZURE_SETTING_NAMES",
    "DEFAULT_DAILY_CALL_BUDGET",
    "DEFAULT_RECONCILE_SCHEDULE",
    "LOCAL_ONLY_SETTING_NAMES",
    "TRIGGER_CONNECTION",
    "AppSettings",
    "StorageTarget",
    "is_loopback_url",
    "load_settings",
    "schedule_interval",
]

#: Name of the blob-trigger connection (``connection=`` in function_app.py); its settings
#: are ``HrDropStorage`` or ``HrDropStorage__*`` as the Functions host resolves them.
TRIGGER_CONNECTION = "HrDropStorage"
DEFAULT_RECONCILE_SCHEDULE = "0 */15 * * * *"
DEFAULT_DAILY_CALL_BUDGET = 2000

_CONN = TRIGGER_CONNECTION
S_CONNECTION_STRING = _CONN
S_BLOB_URI = f"{_CONN}__blobServiceUri"
S_QUEUE_URI = f"{_CONN}__queueServiceUri"
S_CREDENTIAL = f"{_CONN}__credential"
S_CLIENT_ID = f"{_CONN}__clientId"
S_GRAPH_CLIENT_ID = "GRAPH_CLIENT_ID"
S_SOURCES = "CONNECTOR_SOURCES"
S_SCHEDULE = "RECONCILE_SCHEDULE"
S_BUDGET = "CONNECTOR_DAILY_CALL_BUDGET"
S_AI_CONNECTION = "APPLICATIONINSIGHTS_CONNECTION_STRING"
S_AI_AUTH = "APPLICATIONINSIGHTS_AUTHENTICATION_STRING"
S_EMULATOR_TOKEN = "CONNECTOR_EMULATOR_TOKEN"  # noqa: S105 - a setting name, not a secret
S_EMULATOR_URL = "CONNECTOR_EMULATOR_URL"

#: Every app setting the Python code reads, in documentation order.
APP_SETTING_NAMES: tuple[str, ...] = (
    S_CONNECTION_STRING,
    S_BLOB_URI,
    S_QUEUE_URI,
    S_CREDENTIAL,
    S_CLIENT_ID,
    S_GRAPH_CLIENT_ID,
    S_SOURCES,
    S_SCHEDULE,
    S_BUDGET,
    S_AI_CONNECTION,
    S_AI_AUTH,
    S_EMULATOR_URL,
    S_EMULATOR_TOKEN,
)

#: Settings for local development only; the Azure deployment must not set them
#: (shared keys are disabled there, and a static token is refused for Graph hosts).
LOCAL_ONLY_SETTING_NAMES: frozenset[str] = frozenset(
    {S_CONNECTION_STRING, S_EMULATOR_URL, S_EMULATOR_TOKEN}
)

#: What the deployed app (identity-based, Flex Consumption) is expected to set.
AZURE_SETTING_NAMES: tuple[str, ...] = tuple(
    n for n in APP_SETTING_NAMES if n not in LOCAL_ONLY_SETTING_NAMES
)

# Six-field NCRONTAB (seconds first), as the Functions timer expects; five fields are
# accepted by the host too. Each field: *, numbers, ranges, lists, steps, names.
_NCRONTAB_FIELD = re.compile(
    r"^(\*|[0-9A-Za-z]+(-[0-9A-Za-z]+)?)(/\d+)?(,(\*|[0-9A-Za-z]+(-[0-9A-Za-z]+)?)(/\d+)?)*$"
)
_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_WEEKDAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_NAMES: dict[int, dict[str, int]] = {
    # month names (field 4) and day-of-week names (field 5, Sunday = 0)
    4: {m: i for i, m in enumerate(_MONTHS, 1)},
    5: {d: i for i, d in enumerate(_WEEKDAYS)},
}
_BOUNDS = {0: (0, 59), 1: (0, 59), 2: (0, 23), 3: (1, 31), 4: (1, 12), 5: (0, 6)}


def _field_values(text: str, index: int) -> frozenset[int]:
    """The values one NCRONTAB field (seconds = index 0) allows."""
    low, high = _BOUNDS[index]
    names = _NAMES.get(index, {})

    def number(token: str) -> int:
        value = names.get(token.upper())
        n = int(token) if value is None else value
        return 0 if index == 5 and n == 7 else n  # 7 is Sunday too

    values: set[int] = set()
    for part in text.split(","):
        span, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if span == "*":
            start, stop = low, high
        elif "-" in span:
            a, b = span.split("-", 1)
            start, stop = number(a), number(b)
        else:
            start = number(span)
            stop = high if step_text else start
        if step < 1 or not (low <= start <= high and low <= stop <= high):
            raise ValueError(f"field {text!r} is out of range {low}-{high}")
        values.update(range(start, stop + 1, step))
    return frozenset(values)


def schedule_interval(schedule: str) -> timedelta | None:
    """The longest gap between two firings of an NCRONTAB schedule, or None.

    A plain evaluation over 35 days from a fixed Monday (so monthly schedules show their
    longest gap too), at one-minute resolution: a schedule firing several times within a
    minute counts as every minute. None when the expression cannot be read or fires less
    than twice in that span. Used to tell a dead timer from a quiet one.
    """
    fields = schedule.split()
    if len(fields) == 5:
        fields = ["0", *fields]
    if len(fields) != 6:
        return None
    try:
        _, minutes, hours, days, months, weekdays = (
            _field_values(f, i) for i, f in enumerate(fields)
        )
    except ValueError:
        return None
    start = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
    fired: list[int] = []
    for day_index in range(35):
        day = start + timedelta(days=day_index)
        weekday = (day.weekday() + 1) % 7  # NCRONTAB: Sunday = 0
        if day.month not in months or day.day not in days or weekday not in weekdays:
            continue
        base = day_index * 1440
        fired.extend(base + h * 60 + m for h in sorted(hours) for m in sorted(minutes))
    if len(fired) < 2:
        return None
    gaps = [b - a for a, b in itertools.pairwise(fired)]
    return timedelta(minutes=max(gaps))


def is_loopback_url(url: str) -> bool:
    """True when ``url``'s host is ``localhost`` or a loopback IP address."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class StorageTarget:
    """How to reach the drop-zone storage account: a connection string or a URI + identity."""

    __slots__ = ("blob_service_uri", "connection_string", "managed_identity_client_id", "mode")

    def __init__(
        self,
        *,
        connection_string: str | None = None,
        blob_service_uri: str | None = None,
        managed_identity_client_id: str | None = None,
        mode: Literal["connection_string", "managed_identity", "developer_identity"],
    ) -> None:
        self.connection_string = connection_string
        self.blob_service_uri = blob_service_uri
        self.managed_identity_client_id = managed_identity_client_id
        self.mode = mode

    def __repr__(self) -> str:  # never print the connection string (it may hold a key)
        return f"StorageTarget(mode={self.mode!r}, blob_service_uri={self.blob_service_uri!r})"


class AppSettings(BaseSettings):
    """Every app setting the connector's functions read (see ``APP_SETTING_NAMES``)."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    hr_drop_storage: SecretStr | None = Field(default=None, validation_alias=S_CONNECTION_STRING)
    hr_drop_storage_blob_service_uri: str | None = Field(default=None, validation_alias=S_BLOB_URI)
    hr_drop_storage_queue_service_uri: str | None = Field(
        default=None, validation_alias=S_QUEUE_URI
    )
    hr_drop_storage_credential: str | None = Field(default=None, validation_alias=S_CREDENTIAL)
    hr_drop_storage_client_id: str | None = Field(default=None, validation_alias=S_CLIENT_ID)
    graph_client_id: str | None = Field(default=None, validation_alias=S_GRAPH_CLIENT_ID)
    connector_sources: str | None = Field(default=None, validation_alias=S_SOURCES)
    reconcile_schedule: str = Field(default=DEFAULT_RECONCILE_SCHEDULE, validation_alias=S_SCHEDULE)
    connector_daily_call_budget: int = Field(
        default=DEFAULT_DAILY_CALL_BUDGET, ge=1, le=1_000_000, validation_alias=S_BUDGET
    )
    applicationinsights_connection_string: SecretStr | None = Field(
        default=None, validation_alias=S_AI_CONNECTION
    )
    applicationinsights_authentication_string: str | None = Field(
        default=None, validation_alias=S_AI_AUTH
    )
    connector_emulator_url: str | None = Field(default=None, validation_alias=S_EMULATOR_URL)
    connector_emulator_token: SecretStr | None = Field(
        default=None, validation_alias=S_EMULATOR_TOKEN
    )

    @field_validator("*", mode="before")
    @classmethod
    def _blank_is_missing(cls, value: Any, info: ValidationInfo) -> Any:
        """An app setting present but empty means "not set" (Bicep often writes '')."""
        if isinstance(value, str) and not value.strip():
            default = cls.model_fields[info.field_name or ""].default
            return None if default is PydanticUndefined else default
        if isinstance(value, str) and info.field_name != "connector_sources":
            return value.strip()
        return value

    @field_validator("hr_drop_storage_blob_service_uri", "hr_drop_storage_queue_service_uri")
    @classmethod
    def _https_uri(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError(
                f"must be a service URI like https://<account>.blob.core.windows.net, got {value!r}"
            )
        if parts.scheme == "http" and not is_loopback_url(value):
            raise ValueError(
                "must use https (http is accepted only for a loopback emulator such as Azurite)"
            )
        return value.rstrip("/")

    @field_validator("connector_emulator_url")
    @classmethod
    def _emulator_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"must be the emulator's base URL like http://127.0.0.1:8400, got {value!r}"
            )
        if not is_loopback_url(value):
            raise ValueError(
                f"must be a loopback address (the local emulator); {parts.hostname!r} is not"
            )
        if parts.query or parts.fragment or parts.username:
            raise ValueError("must be a plain base URL (no query, fragment or credentials)")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _emulator_pair(self) -> AppSettings:
        if (self.connector_emulator_url is None) != (self.connector_emulator_token is None):
            missing = S_EMULATOR_TOKEN if self.connector_emulator_token is None else S_EMULATOR_URL
            raise ValueError(
                f"{missing}: missing. {S_EMULATOR_URL} and {S_EMULATOR_TOKEN} go together: "
                "the local emulator's base URL and a token it accepts"
            )
        return self

    @field_validator("hr_drop_storage_credential")
    @classmethod
    def _credential(cls, value: str | None) -> str | None:
        if value is not None and value.lower() != "managedidentity":
            raise ValueError(f"the only supported value is 'managedidentity', got {value!r}")
        return None if value is None else "managedidentity"

    @field_validator("hr_drop_storage_client_id", "graph_client_id")
    @classmethod
    def _guid(cls, value: str | None) -> str | None:
        if value is not None and not _GUID.match(value):
            raise ValueError("must be the client id (a GUID) of the user-assigned managed identity")
        return value

    @field_validator("reconcile_schedule")
    @classmethod
    def _ncrontab(cls, value: str) -> str:
        fields = value.split()
        if len(fields) not in (5, 6) or not all(_NCRONTAB_FIELD.match(f) for f in fields):
            raise ValueError(
                "must be an NCRONTAB expression '{second} {minute} {hour} {day} {month} "
                f"{{day-of-week}}' (UTC on Flex Consumption), e.g. '0 */15 * * * *'; got {value!r}"
            )
        return value

    @field_validator("applicationinsights_authentication_string")
    @classmethod
    def _ai_auth(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = dict(_split_kv(value))
        if parts.get("authorization", "").upper() != "AAD":
            raise ValueError(
                "must be 'Authorization=AAD' or 'Authorization=AAD;ClientId=<client id>' "
                "(the identity needs Monitoring Metrics Publisher)"
            )
        client_id = parts.get("clientid")
        if client_id is not None and not _GUID.match(client_id):
            raise ValueError("ClientId must be the client id (a GUID) of the managed identity")
        return value

    @field_validator("connector_sources")
    @classmethod
    def _sources_parse(cls, value: str | None) -> str | None:
        """Syntax only; the sources config's own schema is checked by ``connector.config``."""
        if value is None:
            return None
        import yaml  # first invocation only: keeps the cold start light

        try:
            doc = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or type(exc).__name__
            raise ValueError(f"is not valid YAML or JSON{where}: {problem}") from None
        if not isinstance(doc, dict):
            raise ValueError("must be a YAML or JSON mapping with a 'sources' list")
        return value

    @model_validator(mode="after")
    def _sources_present(self) -> AppSettings:
        if self.connector_sources is None:
            raise ValueError(
                f"{S_SOURCES}: missing (required app setting). Put the sources config "
                "(YAML or JSON, the same document as sources.yaml) in this setting"
            )
        return self

    @model_validator(mode="after")
    def _storage_complete(self) -> AppSettings:
        if self.hr_drop_storage is not None:
            return self  # the host prefers the connection string too
        if self.hr_drop_storage_blob_service_uri is None:
            raise ValueError(
                f"{S_CONNECTION_STRING}: missing. Set {S_CONNECTION_STRING} to a connection "
                f"string (locally: UseDevelopmentStorage=true), or set {S_BLOB_URI} and "
                f"{S_QUEUE_URI} (+ {S_CREDENTIAL}=managedidentity and {S_CLIENT_ID}) in Azure"
            )
        if self.hr_drop_storage_queue_service_uri is None:
            raise ValueError(
                f"{S_QUEUE_URI}: missing. The Event Grid blob trigger runs on a storage queue, "
                f"so {S_BLOB_URI} must be accompanied by {S_QUEUE_URI}"
            )
        if self.hr_drop_storage_client_id is not None and self.hr_drop_storage_credential is None:
            raise ValueError(
                f"{S_CREDENTIAL}: missing. {S_CLIENT_ID} is used only together with "
                f"{S_CREDENTIAL}=managedidentity"
            )
        if self.hr_drop_storage_credential is not None and self.hr_drop_storage_client_id is None:
            raise ValueError(
                f"{S_CLIENT_ID}: missing. With {S_CREDENTIAL}=managedidentity set the client id "
                "of the user-assigned identity (a system-assigned identity is not used)"
            )
        return self

    # -- derived views ---------------------------------------------------------------

    @property
    def storage(self) -> StorageTarget:
        """The drop-zone account, resolved the way the Functions host resolves the trigger."""
        if self.hr_drop_storage is not None:
            return StorageTarget(
                connection_string=self.hr_drop_storage.get_secret_value(),
                mode="connection_string",
            )
        if self.hr_drop_storage_credential == "managedidentity":
            return StorageTarget(
                blob_service_uri=self.hr_drop_storage_blob_service_uri,
                managed_identity_client_id=self.hr_drop_storage_client_id,
                mode="managed_identity",
            )
        # Documented: __credential "shouldn't be set in local development"; the developer's
        # own sign-in (Azure CLI etc.) is used then.
        return StorageTarget(
            blob_service_uri=self.hr_drop_storage_blob_service_uri, mode="developer_identity"
        )

    @property
    def telemetry_enabled(self) -> bool:
        return self.applicationinsights_connection_string is not None

    @property
    def telemetry_client_id(self) -> str | None:
        """ClientId from APPLICATIONINSIGHTS_AUTHENTICATION_STRING (None: system identity)."""
        if self.applicationinsights_authentication_string is None:
            return None
        return dict(_split_kv(self.applicationinsights_authentication_string)).get("clientid")

    @property
    def emulator_enabled(self) -> bool:
        """True when Graph calls go to the local emulator instead of Graph (local only)."""
        return self.connector_emulator_url is not None

    def emulator_token_for(self, endpoint: str) -> str | None:
        """The static emulator token for ``endpoint``, or None when no token is configured.

        Refuses (``UnsafeEndpointError``) to hand the token to anything but a loopback
        host: it exists only so a local run can talk to the local emulator.
        """
        if self.connector_emulator_token is None:
            return None
        if not is_loopback_url(endpoint):
            raise UnsafeEndpointError(
                f"{S_EMULATOR_TOKEN} is set but a source's endpoint {_host_of(endpoint)!r} is "
                "not a loopback address; the static token is only for the local emulator. "
                f"Remove {S_EMULATOR_TOKEN} in Azure (Graph tokens come from {S_GRAPH_CLIENT_ID})"
            )
        return self.connector_emulator_token.get_secret_value()

    @property
    def sources_document(self) -> str:
        """The raw sources config (validated present by the model)."""
        assert self.connector_sources is not None
        return self.connector_sources

    def require_graph_client_id(self) -> str:
        """The Graph identity's client id; ConfigError naming the setting when absent."""
        if self.graph_client_id is None:
            raise ConfigError(
                f"{S_GRAPH_CLIENT_ID}: missing. Set it to the client id of the user-assigned "
                "managed identity that holds the Graph app roles (or, locally against the "
                f"emulator, set {S_EMULATOR_TOKEN})"
            )
        return self.graph_client_id


def _split_kv(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for part in text.split(";"):
        if "=" in part:
            key, _, val = part.partition("=")
            out.append((key.strip().lower(), val.strip()))
    return out


def _host_of(url: str) -> str:
    return urlsplit(url).hostname or url


def load_settings() -> AppSettings:
    """Read and validate the app settings from the environment.

    Raises ``ConfigError`` listing every bad or missing setting by its app-setting name.
    """
    try:
        return AppSettings()
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    lines: list[str] = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = err.get("loc") or ()
        name = str(loc[0]) if loc else ""
        msg = str(err.get("msg", "invalid"))
        if msg.startswith("Value error, "):
            msg = msg.removeprefix("Value error, ")
        if not name:
            # model-level checks already start with the setting name
            lines.append(msg)
        elif err.get("type") == "missing":
            lines.append(f"{name}: missing (required app setting)")
        else:
            lines.append(f"{name}: {msg}")
    return "Invalid app settings:\n" + "\n".join(f"  - {line}" for line in lines)
