"""Value types of the sources config: durations, Graph clouds and the strict base model.

Shared by a source's settings (:mod:`connector.config_source`) and the whole config
(:mod:`connector.config`): how ``2h`` or ``usgovdod`` is read, what the JSON Schema says
about it, and that every block refuses unknown keys.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, WithJsonSchema

from connector.graph.endpoint import Cloud, cloud_for_host

__all__ = ["CloudName", "ConfigModel", "Duration", "endpoint_cloud", "parse_duration"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_CLOUD_ALIASES = {"usgovdod": Cloud.US_GOV_DOD.value}
"""Earlier spellings still accepted, mapped to the Graph client's names."""


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


def endpoint_cloud(endpoint: str) -> Cloud | None:
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


class ConfigModel(BaseModel):
    """A config block: unknown keys are errors, values never change once read."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
