"""Assembles the Typer app from the command modules.

Each module exposes ``register(app)``; keep commands grouped by domain:
``core`` (validate, preview, sample), ``migrate`` (import-psd1),
``emulator``, ``graph`` (status, logs, schema),
``sync`` (sync, reconcile, runs, report, demo).

Help is rendered by Click's plain formatter (``rich_markup_mode=None``, which sub-groups
inherit). Typer's rich help panels truncate long option names at 80 columns
(``--bad-field-co…``) and print a ``<bool>`` placeholder after every flag, as if it took a
value; the plain formatter wraps instead of truncating and shows flags bare. Command output
(tables, summaries) still uses rich where the command chooses to.
"""

from __future__ import annotations

from typing import Annotated

import typer

from connector.cli import core, emulator, graph, migrate, sync
from connector.cli.exits import EXIT_CODES

__all__ = ["build_app", "version"]

_EPILOG = "Exit codes: " + "; ".join(f"{code} {what}" for code, what in EXIT_CODES.items()) + "."


def version() -> str:
    """The installed package's version (``connector --version``)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("connector")
    except PackageNotFoundError:  # pragma: no cover - only from an uninstalled checkout
        return "unknown"


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"connector {version()}")
        raise typer.Exit()


def _root(
    _version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_show_version,
            is_eager=True,
            help="Print the connector's version and exit.",
        ),
    ] = False,
) -> None:
    """HR-to-Entra ID provisioning connector."""


def build_app() -> typer.Typer:
    app = typer.Typer(
        name="connector",
        help="HR-to-Entra ID provisioning connector.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        epilog=_EPILOG,
    )
    app.callback()(_root)
    for module in (core, migrate, emulator, graph, sync):
        module.register(app)
    return app
