"""One source's settings in the sources config: its files or database/API, mapping,
target and rules.

:class:`Source` and the blocks it is made of (:class:`MatchRule`, :class:`ExtractTimestamp`,
:class:`Thresholds`), each with the checks that make a bad block a clear error; the
whole file and its loading are :mod:`connector.config`.
"""

from __future__ import annotations

import fnmatch
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from connector.config_values import CloudName, ConfigModel, Duration, endpoint_cloud, parse_duration
from connector.extract_time import ExtractTime, decide_extract_time
from connector.graph.endpoint import Cloud
from connector.sources.models import RestSettings, SqlSettings
from connector.sources.schedule import parse_schedule

__all__ = ["ExtractTimestamp", "MatchRule", "Source", "Thresholds"]

_GLOB_CHARS = frozenset("*?[")
_UNIGNORABLE = frozenset({"active", "externalId"})
_ENDPOINT = re.compile(
    r"^https://[^/\s]+/(?:v1\.0|beta)/servicePrincipals/[^/\s]+/synchronization/jobs/[^/\s]+"
    r"/bulkUpload/?$"
)


class Thresholds(ConfigModel):
    """The mass-change guard's limits; a run over any of them is held, nothing sent.

    Limits are "more than": ``max_leavers: 500`` holds at 501 leavers. ``null`` turns a
    limit off. Percentages are of the previous active population and do not apply to a
    source's first run (no population yet); absolute limits always do. The leaver limits
    count leavers *plus deactivations* (records last sent active that the file now marks
    inactive): both disable accounts (see :func:`connector.sync.delta.check_guard`).
    """

    max_leavers: int | None = Field(
        500, ge=0, description="Hold if more accounts would be disabled (leavers + deactivations)."
    )
    max_leavers_percent: float | None = Field(
        10.0,
        ge=0,
        le=100,
        description="Hold if leavers + deactivations exceed this % of the population.",
    )
    max_changes: int | None = Field(
        None, ge=0, description="Hold if joiners + movers + leavers exceed this."
    )
    max_changes_percent: float | None = Field(
        25.0,
        ge=0,
        description="Hold if joiners + movers + leavers exceed this % of the population.",
    )
    min_row_ratio: float | None = Field(
        0.5,
        ge=0,
        le=1,
        description="Hold a full file with fewer rows than this × the previous population.",
    )
    max_rejected_share: float | None = Field(
        0.05, ge=0, le=1, description="Refuse a file whose rejected-row share exceeds this."
    )


class MatchRule(ConfigModel):
    """Which files under the ``incoming`` container belong to a source.

    ``prefix`` (e.g. ``employees/``) and ``glob`` (fnmatch on the whole path, e.g.
    ``contractors/*.csv``); when both are given a file must satisfy both.
    """

    prefix: str | None = None
    glob: str | None = None

    @model_validator(mode="after")
    def _one_needed(self) -> MatchRule:
        if not self.prefix and not self.glob:
            raise ValueError("match needs a prefix or a glob")
        return self

    def matches(self, path: str) -> bool:
        path = path.lstrip("/")
        if self.prefix is not None and not path.startswith(self.prefix.lstrip("/")):
            return False
        return self.glob is None or fnmatch.fnmatchcase(path, self.glob.lstrip("/"))


def _match_shorthand(value: Any) -> Any:
    if isinstance(value, str):
        return {"glob": value} if _GLOB_CHARS & set(value) else {"prefix": value}
    return value


_MATCH_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "minLength": 1, "description": "a prefix, or a glob if it has * ? ["},
        {
            "type": "object",
            "properties": {"prefix": {"type": "string"}, "glob": {"type": "string"}},
            "additionalProperties": False,
            "minProperties": 1,
        },
    ]
}


class ExtractTimestamp(ConfigModel):
    """Reads the extract's timestamp from its file name with the source's own pattern
    (else the default rules of :mod:`connector.extract_time` apply).

    ``pattern`` is a regular expression searched in the file name (not the folder); its
    group ``group`` is parsed with ``format`` (``datetime.strptime``). A time without a
    zone is taken as UTC.
    """

    pattern: str
    format: str
    group: str = "ts"

    @model_validator(mode="after")
    def _check(self) -> ExtractTimestamp:
        try:
            rx = re.compile(self.pattern)
        except re.error as exc:
            raise ValueError(f"pattern is not a valid regular expression: {exc}") from None
        if self.group not in rx.groupindex:
            raise ValueError(f"pattern has no named group (?P<{self.group}>...)")
        return self

    def parse(self, file_name: str) -> datetime | None:
        """The timestamp in ``file_name``; None when the pattern does not match or the
        text does not fit ``format``."""
        m = re.search(self.pattern, file_name.rsplit("/", 1)[-1])
        if not m or m.group(self.group) is None:
            return None
        try:
            ts = datetime.strptime(m.group(self.group), self.format)
        except ValueError:
            return None
        return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


_KIND_RULES: dict[str, Any] = {
    "allOf": [
        {
            "if": {"properties": {"kind": {"enum": ["file"]}}},
            "then": {"required": ["match"]},
        },
        {
            "if": {"properties": {"kind": {"enum": ["sql"]}}, "required": ["kind"]},
            "then": {"required": ["sql"]},
        },
        {
            "if": {"properties": {"kind": {"enum": ["rest"]}}, "required": ["kind"]},
            "then": {"required": ["rest"]},
        },
    ]
}
"""What the model validators check, said in the JSON Schema for editors: a file source
(also when ``kind`` is absent) needs ``match``; a sql or rest source its block."""


class Source(ConfigModel):
    """One source of HR records: its files (or database / API), its mapping, its target and
    its rules. ``kind: file`` (the default) reads dropped files picked by ``match``;
    ``sql`` and ``rest`` are pulled on ``schedule`` (see ``connector/sources/``)."""

    model_config = ConfigDict(json_schema_extra=_KIND_RULES)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
    kind: Literal["file", "sql", "rest"] = Field(
        "file", description="file: dropped extracts; sql: a database; rest: a paged JSON API."
    )
    match: Annotated[
        MatchRule | None, BeforeValidator(_match_shorthand), WithJsonSchema(_MATCH_SCHEMA)
    ] = Field(
        None,
        description="kind file (required): a path prefix (e.g. 'employees/'), a glob, or"
        " {prefix, glob}.",
    )
    sql: SqlSettings | None = Field(None, description="kind sql: the database and query.")
    rest: RestSettings | None = Field(None, description="kind rest: the API and its paging.")
    schedule: str | None = Field(
        None,
        description="kind sql/rest: when the Functions timer pulls, NCRONTAB"
        " '{second} {minute} {hour} {day} {month} {day-of-week}' (UTC).",
    )
    mapping: str | dict[str, Any] = Field(
        description="Mapping file path (relative to this config file) or an inline mapping."
    )
    endpoint: str | None = Field(
        None, description="The portal's Provisioning API endpoint (…/bulkUpload)."
    )
    service_principal_id: str | None = None
    job_id: str | None = None
    cloud: CloudName = Field(
        Cloud.GLOBAL,
        description="Which Graph host (and token scope); with endpoint, taken from its host.",
    )
    mode: Literal["full", "delta"] = "full"
    leavers: Literal["disable", "ignore"] = "disable"
    thresholds: Thresholds = Field(default_factory=Thresholds)
    ignore_attributes: tuple[str, ...] = Field(
        (), description="Mapped attributes never compared (SCIM names; URN-qualified allowed)."
    )
    extract_timestamp: ExtractTimestamp | None = None
    retry_unconfirmed: bool = Field(
        False, description="Re-send records whose last outcome is unconfirmed."
    )
    expect_every: Duration | None = Field(
        None,
        description="How often a new file (or pulled run) is expected, e.g. '24h' or '7d';"
        " when none arrives in time /api/health is degraded and source_stale is logged.",
    )
    _base_dir: Path | None = PrivateAttr(None)

    @field_validator("expect_every", mode="before")
    @classmethod
    def _expect_every_shape(cls, value: Any) -> Any:
        parsed = parse_duration(value)
        if isinstance(parsed, str) and not parsed.strip().upper().startswith("P"):
            raise ValueError(
                f"expect_every must be a duration like '24h', '36h' or '7d', not {value!r}"
            )
        return parsed

    @field_validator("expect_every")
    @classmethod
    def _expect_every_positive(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value < timedelta(minutes=1):
            raise ValueError("expect_every must be at least 1m (e.g. '24h', '36h', '7d')")
        return value

    @field_validator("endpoint")
    @classmethod
    def _endpoint_shape(cls, value: str | None) -> str | None:
        if value is not None and not _ENDPOINT.match(value):
            raise ValueError(
                "endpoint must be the portal's Provisioning API endpoint: https://<graph host>/"
                "{v1.0|beta}/servicePrincipals/<id>/synchronization/jobs/<jobId>/bulkUpload"
            )
        return value

    @model_validator(mode="before")
    @classmethod
    def _cloud_from_endpoint(cls, data: Any) -> Any:
        # The endpoint's host names the cloud; the token scope must follow it, so a
        # national-cloud endpoint with no ``cloud`` key is not paired with a global token.
        if isinstance(data, dict) and isinstance(data.get("endpoint"), str) and "cloud" not in data:
            host_cloud = endpoint_cloud(data["endpoint"])
            if host_cloud is not None:
                return {**data, "cloud": host_cloud.value}
        return data

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        if value is not None:
            parse_schedule(value)
        return value

    @model_validator(mode="after")
    def _kind(self) -> Source:
        blocks = {"sql": self.sql, "rest": self.rest}
        for key, block in blocks.items():
            if block is not None and key != self.kind:
                raise ValueError(f"a {key}: block needs kind: {key} (kind is {self.kind})")
        if self.kind == "file":
            if self.match is None:
                raise ValueError("a file source needs match (which dropped files are its own)")
            if self.schedule is not None:
                raise ValueError("schedule is for sql and rest sources (files arrive by drop)")
            return self
        if blocks[self.kind] is None:
            raise ValueError(f"kind {self.kind} needs a {self.kind}: block")
        if self.match is not None:
            raise ValueError(f"match is for file sources; a {self.kind} source is pulled")
        if self.sql is not None and self.sql.watermark is not None and self.mode != "delta":
            raise ValueError(
                "sql.watermark reads only changed rows, so it needs mode: delta (a full"
                " source must read every row, or absent people would count as leavers)"
            )
        return self

    @field_validator("ignore_attributes")
    @classmethod
    def _comparable(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = sorted(set(value) & _UNIGNORABLE)
        if bad:
            raise ValueError(
                f"{', '.join(bad)} cannot be ignored: a change of 'active' is how a termination"
                " reaches the directory (and what the mass-change guard counts), and"
                " 'externalId' identifies the record"
            )
        return value

    @model_validator(mode="after")
    def _target(self) -> Source:
        has_ids = self.service_principal_id is not None or self.job_id is not None
        if self.endpoint is not None and has_ids:
            raise ValueError("give either endpoint or service_principal_id + job_id, not both")
        if self.endpoint is None and not (self.service_principal_id and self.job_id):
            raise ValueError("needs endpoint, or service_principal_id and job_id")
        if self.endpoint is not None:
            host_cloud = endpoint_cloud(self.endpoint)
            if host_cloud is not None and host_cloud != self.cloud:
                raise ValueError(
                    f"cloud {self.cloud.value!r} does not match the endpoint's host"
                    f" ({host_cloud.host} is cloud {host_cloud.value!r}); drop the cloud key"
                    " or fix it"
                )
        return self

    @property
    def mapping_path(self) -> Path | None:
        """The mapping file, resolved against the config file's folder (None if inline)."""
        if not isinstance(self.mapping, str):
            return None
        path = Path(self.mapping)
        if not path.is_absolute() and self._base_dir is not None:
            path = self._base_dir / path
        return path

    def extract_time(
        self, file_name: str, uploaded_at: datetime, file_time: datetime | None = None
    ) -> datetime:
        """When the extract was taken (see :meth:`extract_time_of`)."""
        return self.extract_time_of(file_name, uploaded_at, file_time).at

    def extract_time_of(
        self, file_name: str, uploaded_at: datetime, file_time: datetime | None = None
    ) -> ExtractTime:
        """When the extract was taken and from what: this source's ``extract_timestamp``
        pattern if configured and matching, else a date in the file name, else
        ``file_time`` (the blob's or file's own time), else ``uploaded_at`` (arrival)."""
        configured = None
        if self.extract_timestamp is not None:
            configured = self.extract_timestamp.parse(file_name)
        return decide_extract_time(configured, file_name, file_time, uploaded_at)
