"""Exit codes of the commands, and errors turned into one line.

Schedulers and scripts read the exit code. The table (also in README and docs/cli.md;
``tests/cli/test_exit_code_table.py`` pins it):

==  ==========================================================================
0   done: nothing needs attention
1   a run failed or is blocked (an error retrying cannot fix), or a command failed
2   usage: a bad option, a missing/unreadable extract, a bad config or mapping
    (Click's own convention for usage errors, kept for configuration problems)
3   a pass skipped a source whose lock another run holds (reconcile)
4   a run is held by the mass-change guard: approve or discard it
5   a run is waiting (quota, back-pressure, outage): run ``connector reconcile`` later
==  ==========================================================================

When several apply, the first in this order wins: failed (1), skipped (3), held (4),
waiting (5).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import typer

from connector.cli.common import (
    EXIT_USAGE,
    config_error_lines,
    error_lines,
    exit_code_for,
    fail,
)
from connector.cli.jsonout import emit_error
from connector.errors import ConfigError, ConnectorError

if TYPE_CHECKING:
    from connector.sync.summary import RunSummary

__all__ = [
    "EXIT_CODES",
    "EXIT_FAILED",
    "EXIT_HELD",
    "EXIT_OK",
    "EXIT_SKIPPED",
    "EXIT_USAGE",
    "EXIT_WAITING",
    "exit_code_of",
    "exit_for",
    "failing",
]

EXIT_OK = 0
"""Done: nothing needs attention."""
EXIT_FAILED = 1
"""A run failed or is blocked (an error retrying cannot fix), or a command failed."""
EXIT_SKIPPED = 3
"""A pass skipped a source whose lock another run holds: its runs were not looked at;
run `connector reconcile` again once that run has finished."""
EXIT_HELD = 4
"""A run is held by the mass-change guard: `connector runs approve` or `discard` it."""
EXIT_WAITING = 5
"""A run is waiting (quota, back-pressure, outage): run `connector reconcile` later."""

EXIT_CODES: dict[int, str] = {
    EXIT_OK: "ok",
    EXIT_FAILED: "failed or blocked",
    EXIT_USAGE: "usage or configuration error",
    EXIT_SKIPPED: "source skipped (another run holds its lock)",
    EXIT_HELD: "held (approve or discard)",
    EXIT_WAITING: "waiting (run reconcile later)",
}
"""Every exit code and what it means (``connector --help`` prints this)."""


def exit_code_of(summaries: Iterable[RunSummary]) -> int:
    """The code for these runs: failed/blocked, then held, then waiting, else 0."""
    runs = list(summaries)
    if any(s.state in ("failed", "blocked") for s in runs):
        return EXIT_FAILED
    if any(s.state == "held" and not s.dry_run for s in runs):
        return EXIT_HELD
    if any(s.state == "uploading" and s.waiting for s in runs):
        return EXIT_WAITING
    return EXIT_OK


def exit_for(summaries: Iterable[RunSummary]) -> None:
    """Exit non-zero when any run needs attention, so schedulers and scripts notice."""
    code = exit_code_of(summaries)
    if code != EXIT_OK:
        raise typer.Exit(code=code)


@contextmanager
def failing(
    command: str | None = None, auth: str = "default", *, as_json: bool = False
) -> Iterator[None]:
    """A ConnectorError in the block becomes one error line and exit 1 (2 for a
    configuration error); a Graph command (``command`` given) prints a credential failure
    short, with the --token/--auth hint. With ``as_json`` the error is also a
    ``{"kind": "error"}`` document on stdout."""
    try:
        yield
    except ConnectorError as exc:
        code = exit_code_for(exc)
        if as_json:
            emit_error(error_lines(exc, command=command or "", auth=auth)[0][7:], exit_code=code)
        if command is None:
            lines = config_error_lines(exc) if isinstance(exc, ConfigError) else [f"error: {exc}"]
            for line in lines:
                typer.secho(line, fg="red", err=True)
            raise typer.Exit(code=code) from exc
        raise fail(exc, command=command, auth=auth, code=code) from exc
