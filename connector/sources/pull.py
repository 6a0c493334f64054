"""One entry point for the engine: pull any ``sql`` or ``rest`` source into a snapshot."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path

import httpx

from connector.config import Source
from connector.errors import ConfigError
from connector.sources.rest import pull_rest, rest_columns
from connector.sources.schedule import parse_schedule
from connector.sources.snapshot import Snapshot, Watermark
from connector.sources.sql import TokenSource, pull_sql, sql_columns

__all__ = ["due_sources", "is_pulled", "pull_snapshot", "source_columns"]


def is_pulled(source: Source) -> bool:
    """True for sources the connector pulls (``sql``, ``rest``) rather than receives."""
    return source.kind in ("sql", "rest")


def due_sources(
    sources: Iterable[Source], last_pulls: Mapping[str, datetime | None], now: datetime
) -> list[Source]:
    """The pulled sources whose ``schedule`` has a moment after their last pull (by name
    in ``last_pulls``; absent or None means never) and at or before ``now`` (UTC).
    Sources without a schedule are pulled only on demand (CLI)."""
    return [
        s
        for s in sources
        if is_pulled(s)
        and s.schedule is not None
        and parse_schedule(s.schedule).is_due(last_pulls.get(s.name), now)
    ]


def pull_snapshot(
    source: Source,
    *,
    settings: Mapping[str, str] | None = None,
    credential: TokenSource | None = None,
    last_watermark: Watermark | None = None,
    transport: httpx.BaseTransport | None = None,
    directory: str | Path | None = None,
) -> Snapshot:
    """Pull ``source`` into a canonical CSV snapshot the engine ingests like a dropped file.

    ``settings`` defaults to the environment (app settings in Azure). ``credential`` is
    the managed identity for ``auth: entra``; ``last_watermark`` the value stored after
    the last applied pull of a watermark source; ``transport`` an httpx transport (tests).
    Raises :class:`~connector.errors.SourceError` subclasses; nothing is written on error.
    """
    env = os.environ if settings is None else settings
    if source.kind == "sql" and source.sql is not None:
        return pull_sql(
            source.name,
            source.sql,
            settings=env,
            credential=credential,
            last_watermark=last_watermark,
            directory=directory,
        )
    if source.kind == "rest" and source.rest is not None:
        return pull_rest(
            source.name, source.rest, settings=env, transport=transport, directory=directory
        )
    raise ConfigError(f"source {source.name!r} is a {source.kind} source; it is not pulled")


def source_columns(
    source: Source,
    *,
    settings: Mapping[str, str] | None = None,
    credential: TokenSource | None = None,
    transport: httpx.BaseTransport | None = None,
) -> list[str]:
    """The column names a pull of ``source`` would have (``connector validate --source``)."""
    env = os.environ if settings is None else settings
    if source.kind == "sql" and source.sql is not None:
        return sql_columns(source.name, source.sql, settings=env, credential=credential)
    if source.kind == "rest" and source.rest is not None:
        return rest_columns(source.name, source.rest, settings=env, transport=transport)
    raise ConfigError(f"source {source.name!r} is a {source.kind} source; it is not pulled")
