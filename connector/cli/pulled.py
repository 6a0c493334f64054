"""The CLI's side of pulled sources (``kind: sql`` / ``kind: rest``).

``connector sync --config sources.yaml --source hr-sql`` with no extract pulls the source
through :meth:`Engine.pull <connector.sync.engine.Engine.pull>`; ``connector validate
--source hr-sql --config sources.yaml`` checks the source's mapping against the columns a
pull would have (:func:`connector.sources.pull.source_columns`, no rows are read).
Secrets come from the environment variables the config names; ``auth: entra`` signs in
with ``DefaultAzureCredential`` (e.g. after ``az login``).
"""

from __future__ import annotations

import contextlib
import csv
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from rich.console import Console

from connector.config import Source, load_sources
from connector.errors import ConfigError

if TYPE_CHECKING:
    from connector.sources.sql import TokenSource
    from connector.sync.engine import Engine
    from connector.sync.pulling import PullResult

__all__ = ["is_pulled_source", "mapping_and_header", "print_pull", "pull_credential", "pull_source"]


def is_pulled_source(config: Path, source: str) -> bool:
    """Whether ``source`` in the config at ``config`` is pulled (sql or rest)."""
    return load_sources(config).source(source).kind in ("sql", "rest")


def pull_credential(src: Source) -> TokenSource | None:
    """``DefaultAzureCredential`` for a source with ``auth: entra``; None otherwise."""
    if src.sql is None or src.sql.auth != "entra":
        return None
    from azure.identity import DefaultAzureCredential

    credential: TokenSource = DefaultAzureCredential()
    return credential


async def pull_source(engine: Engine, source: str, *, dry_run: bool) -> PullResult:
    """Pull ``source`` through the engine (the CLI's credential for ``auth: entra``)."""
    src = engine.config.source(source)
    return await engine.pull(source, dry_run=dry_run, credential=pull_credential(src))


def print_pull(result: PullResult, console: Console) -> None:
    """The pull's line before the run's summary (or instead of it, when nothing was new)."""
    rows = f"{result.rows:,} row{'s' if result.rows != 1 else ''}"
    if result.summary is None:
        console.print(
            f"source {result.source}: pulled {rows}: nothing changed since the last"
            " applied pull (no run)",
            soft_wrap=True,
        )
        return
    console.print(f"source {result.source}: pulled {rows}", soft_wrap=True)


@contextlib.contextmanager
def mapping_and_header(config: Path, source: str) -> Iterator[tuple[Path, Path]]:
    """The source's mapping file and a header-only CSV of the columns a pull would have,
    for :func:`connector.validate.validate` (files in a private temporary folder)."""
    from connector.sources.pull import source_columns

    src = load_sources(config).source(source)
    if src.kind not in ("sql", "rest"):
        raise ConfigError(
            f"source {source!r} is a {src.kind} source: validate its mapping against an"
            " extract file instead (connector validate --mapping FILE EXTRACT)"
        )
    columns = source_columns(src, credential=pull_credential(src))
    with tempfile.TemporaryDirectory(prefix="validate-") as private:
        folder = Path(private)
        mapping = src.mapping_path
        if mapping is None:
            mapping = folder / f"{source}-mapping.yaml"
            inline: Any = src.mapping
            mapping.write_text(yaml.safe_dump(inline, sort_keys=False), encoding="utf-8")
        header = folder / f"{source}-columns.csv"
        with header.open("w", encoding="utf-8", newline="") as f:
            csv.writer(f, lineterminator="\n").writerow(columns)
        yield mapping, header
