"""``--json``: one JSON document on stdout per command, for scripts.

Every document is an object with a ``"kind"`` naming its shape (``run``, ``runs``,
``reconcile``, ``report``, ``schema``, ``error``) and ``"exit_code"``, the code the command
exits with (see :mod:`connector.cli.exits`). Run summaries are the fields of
:class:`connector.sync.summary.RunSummary`; new fields may be added, none is renamed or
removed without a note in docs/cli.md. No Rich markup, colours or progress bars reach
stdout: warnings and log lines stay on stderr. The shapes are documented in docs/cli.md.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Annotated, Any

import orjson
import typer

__all__ = ["JSON_VERSION", "JsonOpt", "dumps", "emit", "emit_error"]

JSON_VERSION = 1
"""Bumped only when a documented field is renamed or removed."""

JsonOpt = Annotated[
    bool,
    typer.Option(
        "--json",
        is_eager=True,  # known before the file checks run (connector/cli/paths.py)
        help="Print one JSON document on stdout (shape: docs/cli.md) instead of text.",
    ),
]


def _default(value: object) -> Any:
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    to_doc = getattr(value, "to_doc", None)
    if callable(to_doc):
        return to_doc()
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, frozenset | set | tuple):
        return sorted(value, key=str) if isinstance(value, frozenset | set) else list(value)
    return str(value)


def dumps(kind: str, data: dict[str, Any], *, exit_code: int = 0) -> str:
    """The document: ``{"kind": …, "version": 1, **data, "exit_code": …}``, indented."""
    doc = {"kind": kind, "version": JSON_VERSION, **data, "exit_code": exit_code}
    return orjson.dumps(doc, default=_default, option=orjson.OPT_INDENT_2).decode()


def emit(kind: str, data: dict[str, Any], *, exit_code: int = 0) -> None:
    """Write the document to stdout."""
    sys.stdout.write(dumps(kind, data, exit_code=exit_code) + "\n")
    sys.stdout.flush()


def emit_error(message: str, *, exit_code: int) -> None:
    """``{"kind": "error", "error": "one line", "exit_code": N}`` on stdout."""
    emit("error", {"error": " ".join(message.split())}, exit_code=exit_code)
