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

One source's settings are :class:`~connector.config_source.Source` (imported from here by
its callers), the value types both use are in :mod:`connector.config_values`.

Reference: ``docs/sources.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import yaml
from pydantic import Field, PrivateAttr, ValidationError, model_validator

from connector.config_source import Source
from connector.config_values import ConfigModel, Duration
from connector.errors import ConfigError
from connector.yaml_safe import compose_yaml, load_yaml, problem_line

__all__ = [
    "SCHEMA_PATH",
    "Reconciliation",
    "Source",
    "SourcesConfig",
    "load_sources",
    "parse_sources",
    "sources_json_schema",
    "write_json_schema",
]

SCHEMA_PATH = Path(__file__).parent / "schemas" / "sources.schema.json"


class Reconciliation(ConfigModel):
    """How long to wait for provisioning-log entries, and the clock-skew margin."""

    deadline: Duration = Field(
        timedelta(hours=2), description="After this, a sent record with no entry is unconfirmed."
    )
    skew: Duration = Field(
        timedelta(minutes=5), description="Logs are read from the first upload minus this."
    )


class SourcesConfig(ConfigModel):
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
