"""Whether a file a command reads can be read: plain Python, no CLI framework imported
(``preview`` checks its files with it before deciding whether the Typer app is needed)."""

from __future__ import annotations

import stat
from pathlib import Path

__all__ = ["file_problem"]


def file_problem(path: Path) -> str | None:
    """Why ``path`` cannot be read as a file, or None when it can.

    Regular files are opened (the permission check the command itself would meet, also for
    root); other kinds (a pipe such as ``/dev/fd/N``) are passed on as they are.
    """
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "not found"
    except OSError as exc:  # e.g. a parent that is a file (ENOTDIR), or a loop of links
        return f"cannot be read ({exc.strerror or type(exc).__name__})"
    if stat.S_ISDIR(mode):
        return "is a folder: give a file"
    if stat.S_ISREG(mode):
        try:
            with path.open("rb"):
                pass
        except OSError as exc:
            return f"cannot be read ({exc.strerror or type(exc).__name__})"
    return None
