"""The sources config: which dropped files belong to which source, and how each is synced.

A YAML file validated by pydantic (JSON Schema in ``connector/schemas/sources.schema.json``,
regenerated with ``python -m connector.config``). Unknown keys are errors that name the
key and its line. Example::

    daily_call_budget: 2000
    reconciliation: {deadline: 2h, skew: 10m}
    sources:
      - name: employees
        match: employees/
        mapping: mappings/employees.yaml
        endpoint: https://graph.microsoft.com/beta/servicePrincipals/<sp>/synchronization/jobs/<job>/bulkUpload
        mode: full
        leavers: disable
        ignore_attributes: [urn:ietf:params:scim:schemas:extension:contoso:1.0:User:extractedAt]
        extract_timestamp: {pattern: '_(?P<ts>\\d{8}T\\d{6})\\.csv$', format: '%Y%m%dT%H%M%S'}

Reference: ``docs/sources.md``.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import orjson
import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from connector.errors import ConfigError
from connector.extract_time import ExtractTime, decide_extract_time
from connector.graph.endpoint import Cloud, cloud_for_host
from connector.sources.models import RestSettings, SqlSettings
from connector.sources.schedule import parse_schedule
from connector.yaml_safe import compose_yaml, load_yaml, problem_line

__all__ = [
    "SCHEMA_PATH",
    "ExtractTimestamp",
    "MatchRule",
    "Reconciliation",
    "RestSettings",
    "Source",
    "SourcesConfig",
    "SqlSettings",
    "Thresholds",
    "load_sources",
    "parse_duration",
    "parse_sources",
    "sources_json_schema",
    "write_json_schema",
]

SCHEMA_PATH = Path(__file__).parent / "schemas" / "sources.schema.json"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_GLOB_CHARS = frozenset("*?[")
_CLOUD_ALIASES = {"usgovdod": Cloud.US_GOV_DOD.value}
"""Earlier spellings still accepted, mapped to the Graph client's names."""
_UNIGNORABLE = frozenset({"active", "externalId"})
_ENDPOINT = re.compile(
    r"^https://[^/\s]+/(?:v1\.0|beta)/servicePrincipals/[^/\s]+/synchronization/jobs/[^/\s]+"
    r"/bulkUpload/?$"
)


def _cloud_alias(value: Any) -> Any:
    if isinstance(value, str) and not isinstance(value, Cloud):
        return _CLOUD_ALIASES.get(value, value)
    return value


CloudName = Annotated[
    Cloud,
    BeforeValidator(_cloud_alias),
    WithJsonSchema(
        {
            "enum": [c.value for c in Cloud] + sorted(_CLOUD_ALIASES),
            "type": "string",
            "description": "Graph national cloud: "
            + ", ".join(f"{c.value} ({c.host})" for c in Cloud)
            + "; 'usgovdod' is an alias of 'dod'",
        }
    ),
]


def _endpoint_cloud(endpoint: str) -> Cloud | None:
    try:
        host = urlsplit(endpoint).hostname
    except ValueError:
        return None
    return cloud_for_host(host) if host else None


def parse_duration(value: Any) -> Any:
    """``2h``, ``30m``, ``90s``, ``1.5h``, ``500ms``, ``1d`` or a number of seconds →
    timedelta; anything else is left for pydantic (ISO 8601 ``PT2H`` works too)."""
    if isinstance(value, bool):
        raise ValueError("a duration must be like '2h', '30m', '90s' or a number of seconds")
    if isinstance(value, int | float):
        return timedelta(seconds=value)
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return timedelta(seconds=float(m.group(1)) * _UNIT_SECONDS[m.group(2)])
    return value


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*(ms|s|m|h|d)\s*$"},
                {"type": "string", "format": "duration"},
                {"type": "number", "minimum": 0},
            ],
            "description": "'2h', '30m', '90s', an ISO 8601 duration or seconds",
        }
    ),
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Thresholds(_Model):
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


class MatchRule(_Model):
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


class ExtractTimestamp(_Model):
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


class Source(_Model):
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
            host_cloud = _endpoint_cloud(data["endpoint"])
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
            host_cloud = _endpoint_cloud(self.endpoint)
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


class Reconciliation(_Model):
    """How long to wait for provisioning-log entries, and the clock-skew margin."""

    deadline: Duration = Field(
        timedelta(hours=2), description="After this, a sent record with no entry is unconfirmed."
    )
    skew: Duration = Field(
        timedelta(minutes=5), description="Logs are read from the first upload minus this."
    )


class SourcesConfig(_Model):
    """The whole sources config."""

    daily_call_budget: int = Field(
        2000, ge=1, description="bulkUpload calls per rolling 24 h (2000 P1/P2, 6000 Governance)."
    )
    isolation_calls: int = Field(
        20,
        ge=0,
        description="Extra bulkUpload calls one run may spend finding the records a 400 is"
        " about (each counts against the daily budget); past it, the rest of a refused batch"
        " is reported failed as a group. 0: no isolation.",
    )
    reconciliation: Reconciliation = Field(default_factory=Reconciliation)
    sources: tuple[Source, ...] = Field(min_length=1)
    _path: Path | None = PrivateAttr(None)

    @property
    def path(self) -> Path | None:
        """The file this config was loaded from (None when parsed from text)."""
        return self._path

    @model_validator(mode="after")
    def _distinct(self) -> SourcesConfig:
        seen: dict[str, int] = {}
        for i, src in enumerate(self.sources):
            key = src.name.lower()
            if key in seen:
                raise ValueError(
                    f"sources {seen[key]} and {i} are both named {src.name!r}; names must differ"
                    " (state is kept per source name)"
                )
            seen[key] = i
        rules: dict[tuple[str | None, str | None], str] = {}
        for src in self.sources:
            if src.match is None:
                continue
            key2 = (src.match.prefix, src.match.glob)
            if key2 in rules:
                raise ValueError(
                    f"sources {rules[key2]!r} and {src.name!r} match the same files;"
                    " sources never share records"
                )
            rules[key2] = src.name
        return self

    def source(self, name: str) -> Source:
        """The source called ``name``; :class:`ConfigError` listing the names otherwise."""
        for src in self.sources:
            if src.name == name:
                return src
        names = ", ".join(s.name for s in self.sources)
        raise ConfigError(f"no source named {name!r} in the sources config (have: {names})")

    def source_for(self, path: str) -> Source | None:
        """The source a dropped file belongs to, None if none. A file matched by two
        sources is a :class:`ConfigError` (it would be applied twice)."""
        hits = [s for s in self.sources if s.match is not None and s.match.matches(path)]
        if len(hits) > 1:
            names = ", ".join(s.name for s in hits)
            raise ConfigError(
                f"file {path!r} matches several sources ({names}); make their match rules disjoint"
            )
        return hits[0] if hits else None


# -- loading ------------------------------------------------------------------------------


def _node_for(root: yaml.Node | None, loc: Sequence[int | str]) -> yaml.Node | None:
    """The YAML node at a pydantic error location (the key node for the last step)."""
    node: yaml.Node | None = root
    for i, step in enumerate(loc):
        if isinstance(node, yaml.MappingNode):
            found = None
            for key_node, value_node in node.value:
                if getattr(key_node, "value", None) == step:
                    found = (key_node, value_node)
                    break
            if found is None:
                return node
            if i == len(loc) - 1:
                key: yaml.Node = found[0]
                return key
            node = found[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int):
            if step >= len(node.value):
                return node
            node = node.value[step]
        else:
            return node
    return node


def _format_errors(exc: ValidationError, root: yaml.Node | None, where: str) -> list[str]:
    problems: list[str] = []
    errors = exc.errors()
    for err in errors:
        loc = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
        if err["type"] == "too_short" and any(
            len(o["loc"]) > len(err["loc"]) and o["loc"][: len(err["loc"])] == err["loc"]
            for o in errors
        ):
            continue  # an item failed; its own error says why
        node = _node_for(root, loc)
        line = f"line {node.start_mark.line + 1}" if node is not None else "?"
        dotted = ".".join(str(p) for p in loc) or "(top level)"
        if err["type"] == "extra_forbidden":
            msg = f"unknown key {loc[-1]!r}" if loc else "unknown key"
        else:
            msg = str(err["msg"])
        problems.append(f"{where}:{line.removeprefix('line ')}: {dotted}: {msg}")
    return problems


def parse_sources(text: str, *, path: Path | None = None) -> SourcesConfig:
    """Parse and validate a sources config; :class:`ConfigError` lists every problem with
    its line. ``path`` locates relative mapping files and names the file in messages."""
    where = str(path) if path is not None else "<sources config>"
    try:
        root = compose_yaml(text)
        raw = load_yaml(text)
    except yaml.YAMLError as exc:
        line, problem = problem_line(exc)
        at = f"{where}:{line}" if line is not None else where
        raise ConfigError(f"{at}: not valid YAML: {problem}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: the sources config must be a mapping with a 'sources' list")
    try:
        config = SourcesConfig.model_validate(raw)
    except ValidationError as exc:
        problems = _format_errors(exc, root, where)
        raise ConfigError(
            f"{where}: invalid sources config:\n" + "\n".join(f"  - {p}" for p in problems)
        ) from None
    config._path = path
    for src in config.sources:
        src._base_dir = path.parent if path is not None else None
    return config


def load_sources(path: str | Path) -> SourcesConfig:
    """Read and validate the sources config at ``path``."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read sources config {p}: {exc.strerror or exc}") from None
    return parse_sources(text, path=p)


def sources_json_schema() -> dict[str, Any]:
    """The JSON Schema of the sources config (what editors and CI validate against)."""
    schema = SourcesConfig.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Connector sources config"
    return schema


def write_json_schema(path: Path = SCHEMA_PATH) -> None:
    """Regenerate ``connector/schemas/sources.schema.json``."""
    body = orjson.dumps(sources_json_schema(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    path.write_bytes(body + b"\n")


if __name__ == "__main__":  # pragma: no cover
    write_json_schema()
    print(SCHEMA_PATH)
