"""File arguments and options a command reads: a bad path is one line and exit 2.

Every argument or option naming a file the command reads (an extract, a mapping, the sources
config, a certificate, …) is declared with :func:`input_file_argument` or
:func:`input_file_option`. Its callback, :func:`check_input_file`, checks the path before
the command runs: a missing file, a folder or a file that cannot be opened prints one line,
``error: <command>: <what> '<path>' <problem>``, and exits with
:data:`~connector.cli.common.EXIT_USAGE` (2), where Typer's own checks would print its
usage block. With ``--json`` (an eager option, so it is known by then) the same line is also
the ``{"kind": "error"}`` document on stdout. The path is the one the user gave; no file
content is ever printed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from typer.core import TyperArgument

from connector.cli.files import file_problem
from connector.cli.jsonout import emit_error

__all__ = ["check_input_file", "input_file_argument", "input_file_option"]


def _label(param: typer.CallbackParam) -> str:
    """``--mapping`` for an option (its long name), ``extract`` for an argument."""
    if isinstance(param, TyperArgument):
        return param.name or "path"
    return max(param.opts, key=len)


def _command(ctx: typer.Context) -> str:
    """``preview``, ``runs approve``: the command path without the program name."""
    return ctx.command_path.partition(" ")[2] or ctx.command_path


def _from_env(ctx: typer.Context, param: typer.CallbackParam) -> str:
    """`` (from CONNECTOR_CONFIG)`` when the value came from the option's variable."""
    source = ctx.get_parameter_source(param.name) if param.name else None
    if isinstance(param.envvar, str) and source is not None and source.name == "ENVIRONMENT":
        return f" (from {param.envvar})"
    return ""


def check_input_file(ctx: typer.Context, param: typer.CallbackParam, value: Any) -> Any:
    """Callback of a file parameter: the value unchanged, or one error line and exit 2."""
    if value is None or ctx.resilient_parsing:
        return value
    problem = file_problem(Path(value))
    if problem is None:
        return value
    from connector.cli.common import EXIT_USAGE  # common declares its options with this module

    message = f"{_command(ctx)}: {_label(param)} {str(value)!r}{_from_env(ctx, param)} {problem}"
    if ctx.params.get("as_json"):
        emit_error(message, exit_code=EXIT_USAGE)
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(code=EXIT_USAGE)


def input_file_argument(**kw: Any) -> Any:
    """``typer.Argument(**kw)`` for a file the command reads, checked by
    :func:`check_input_file` (Typer's own existence and readability checks are off)."""
    return typer.Argument(callback=check_input_file, readable=False, **kw)


def input_file_option(*names: str, **kw: Any) -> Any:
    """``typer.Option(*names, **kw)`` for a file the command reads, checked by
    :func:`check_input_file` (Typer's own existence and readability checks are off)."""
    return typer.Option(*names, callback=check_input_file, readable=False, **kw)
