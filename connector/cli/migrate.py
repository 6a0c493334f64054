"""CLI command ``import-psd1``: a CSV2SCIM AttributeMapping.psd1 → a mapping YAML.

Exit codes: 0 every entry translated and the output passes the mapping loader; 1 the
output was written but needs a person (entries left as commented placeholders, or
loader problems), each listed on stderr with its line; 2 nothing written (usage
errors, a file that cannot be read or is not a PowerShell data file, an output file
that exists without --force).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from connector.cli.paths import input_file_argument
from connector.errors import Psd1Error
from connector.migrate import Translation, import_psd1

__all__ = ["import_psd1_command", "register"]

EXIT_NEEDS_EDITING = 1
EXIT_NOTHING_WRITTEN = 2


def _report(result: Translation, out: str) -> None:
    """Everything a person must look at, on stderr (stdout may carry the YAML)."""
    for entry in result.untranslated:
        print(f"{entry}", file=sys.stderr)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    for problem in result.problems:
        print(f"error: {problem}", file=sys.stderr)
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    left = len(result.untranslated)
    summary = f"wrote {out}: {result.translated} entries translated, {left} left as placeholders"
    if result.problems:
        summary += f", {len(result.problems)} problem(s) for the mapping loader"
    print(summary, file=sys.stderr)


def import_psd1_command(
    psd1: Annotated[
        Path,
        input_file_argument(help="CSV2SCIM attribute mapping (.psd1)"),
    ],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", dir_okay=False, help="mapping YAML to write (default: stdout)"),
    ] = None,
    encoding: Annotated[
        str | None,
        typer.Option(help="text encoding when the file has no byte-order mark (default UTF-8)"),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="overwrite --out if it exists")] = False,
) -> None:
    """Translate a CSV2SCIM AttributeMapping.psd1 into a mapping YAML; never runs it.

    Exit 0: all translated and valid. 1: written, but entries were left as commented
    placeholders or the mapping has problems (listed with lines on stderr). 2: nothing
    written (unreadable file, not a data file, --out exists without --force).
    """
    if out is not None and out.exists() and not force:
        print(f"error: {out} exists; pass --force to overwrite it", file=sys.stderr)
        raise typer.Exit(EXIT_NOTHING_WRITTEN)
    label = str(out) if out is not None else "<stdout>"
    try:
        result = import_psd1(psd1, encoding=encoding, out_label=label)
    except Psd1Error as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(EXIT_NOTHING_WRITTEN) from None
    if out is None:
        sys.stdout.write(result.yaml)
    else:
        try:
            out.write_text(result.yaml, encoding="utf-8")
        except OSError as exc:
            print(f"error: {out} cannot be written: {exc.strerror or exc}", file=sys.stderr)
            raise typer.Exit(EXIT_NOTHING_WRITTEN) from None
    _report(result, label)
    if not result.complete:
        raise typer.Exit(EXIT_NEEDS_EDITING)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("import-psd1")(import_psd1_command)
