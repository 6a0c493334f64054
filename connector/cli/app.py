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

import typer

from connector.cli import core, emulator, graph, migrate, sync

__all__ = ["build_app"]


def build_app() -> typer.Typer:
    app = typer.Typer(
        name="connector",
        help="HR-to-Entra ID provisioning connector.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
    )
    for module in (core, migrate, emulator, graph, sync):
        module.register(app)
    return app
