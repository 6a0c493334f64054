"""Exit codes of the run commands, and errors turned into one line and exit 1.

Schedulers and scripts read the exit code: a run that needs attention exits non-zero,
and a waiting run (which a later ``connector reconcile`` continues) has its own code, as
has a source a pass skipped because another run holds its lock.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import typer

from connector.cli.common import fail
from connector.errors import ConnectorError

if TYPE_CHECKING:
    from connector.sync.summary import RunSummary

__all__ = ["EXIT_FAILED", "EXIT_SKIPPED", "EXIT_WAITING", "exit_for", "failing"]

EXIT_FAILED = 1
"""A run failed or is blocked (an error retrying cannot fix), or a command failed."""
EXIT_WAITING = 2
"""A run is waiting (quota, back-pressure, outage): run `connector reconcile` later."""
EXIT_SKIPPED = 3
"""A pass skipped a source whose lock another run holds: its runs were not looked at;
run `connector reconcile` again once that run has finished."""


def exit_for(summaries: Iterable[RunSummary]) -> None:
    """Exit non-zero when any run needs attention, so schedulers and scripts notice."""
    runs = list(summaries)
    if any(s.state in ("failed", "blocked") for s in runs):
        raise typer.Exit(code=EXIT_FAILED)
    if any(s.state == "uploading" and s.waiting for s in runs):
        raise typer.Exit(code=EXIT_WAITING)


@contextmanager
def failing(command: str | None = None, auth: str = "default") -> Iterator[None]:
    """A ConnectorError in the block becomes one error line and exit 1; a Graph command
    (``command`` given) prints a credential failure short, with the --token/--auth hint."""
    try:
        yield
    except ConnectorError as exc:
        if command is None:
            typer.secho(f"error: {exc}", fg="red", err=True)
            raise typer.Exit(code=1) from exc
        raise fail(exc, command=command, auth=auth) from exc
