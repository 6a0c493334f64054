"""The ``connector`` command line: one Typer app, each command group in its own module."""

from __future__ import annotations

import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``connector`` console script."""
    try:
        from connector.cli.app import build_app
    except ImportError as exc:  # pragma: no cover - only without the [cli] extra
        print(
            f"the connector CLI needs its extra dependencies ({exc.name} is missing):"
            " pip install 'connector[cli]'",
            file=sys.stderr,
        )
        return 2
    args = sys.argv[1:] if argv is None else argv
    app = build_app(args[0] if args else None)
    try:
        app(args=argv, prog_name="connector", standalone_mode=True)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0
