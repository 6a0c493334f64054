"""Assembles the Typer app from the command modules.

Each module exposes ``register(app)``; keep commands grouped by domain:
``core`` (validate, preview, sample), ``emulator``, ``graph`` (status, logs, schema),
``sync`` (sync, reconcile, runs, report, demo).
"""

from __future__ import annotations

import typer

from connector.cli import core, emulator, graph, sync

__all__ = ["build_app"]


def build_app() -> typer.Typer:
    app = typer.Typer(
        name="connector",
        help="HR-to-Entra ID provisioning connector.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    for module in (core, emulator, graph, sync):
        module.register(app)
    return app
