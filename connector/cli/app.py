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

import importlib
from typing import Annotated, Final

import typer

from connector.cli.exits import EXIT_CODES

__all__ = ["build_app", "version"]

#: the command modules, in the order their commands are listed
MODULES: Final = ("core", "migrate", "emulator", "graph", "sync")
#: the commands of ``core``: run on their own, they need no other command module
CORE_COMMANDS: Final = frozenset({"validate", "preview", "sample"})

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


def build_app(command: str | None = None) -> typer.Typer:
    """The app; ``command`` is the command about to run, when known.

    For one of :data:`CORE_COMMANDS` only ``core`` is imported: the other modules bring
    the Graph client, pydantic models and the SQL sources, a quarter of a second of
    start-up that ``preview`` of a large extract would pay for nothing.
    """
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
    names = ("core",) if command in CORE_COMMANDS else MODULES
    for name in names:
        importlib.import_module(f"connector.cli.{name}").register(app)
    return app
