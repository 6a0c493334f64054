"""The ``connector`` command line: one Typer app, each command group in its own module."""

from __future__ import annotations

import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``connector`` console script.

    A plainly spelled ``preview`` runs without building the Typer app
    (:func:`connector.cli.preview.quick_preview`); every other command line goes to the app.
    """
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["preview"]:
        from connector.cli.preview import quick_preview

        quick = quick_preview(args[1:])
        if quick is not None:
            return quick
    try:
        from connector.cli.app import build_app
    except ImportError as exc:  # pragma: no cover - only without the [cli] extra
        print(
            f"the connector CLI needs its extra dependencies ({exc.name} is missing):"
            " pip install 'connector[cli]'",
            file=sys.stderr,
        )
        return 2
    app = build_app(args[0] if args else None)
    try:
        app(args=argv, prog_name="connector", standalone_mode=True)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0
