"""CLI commands: ``validate``, ``preview`` and ``sample`` (offline; no network, no tokens).

Exit codes: 0 success, 1 the input has problems (or could not be processed),
2 usage errors (Typer's own, e.g. a missing file or unknown option, and for ``preview`` a
mapping file that cannot be loaded). ``validate`` exits 1 for a bad mapping: finding its
problems is its job.
"""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from connector.cli.jsonout import emit
from connector.cli.paths import input_file_argument, input_file_option
from connector.cli.preview import preview
from connector.sample import LAYOUTS, Faults, churn_extract, generate_extract
from connector.scim import DEFAULT_MAX_REQUEST_BYTES
from connector.validate import DEFAULT_SAMPLE_ROWS, ValidationReport, validate

__all__ = ["register"]


def _fail(message: str) -> typer.Exit:
    print(message, file=sys.stderr)
    return typer.Exit(1)


#: ``sample`` options that only shape a fresh extract: --from keeps the previous file's rows
#: and layout, and its churn plants no faults (parameter name, flag as typed)
_FRESH_ONLY = (
    ("rows", "--rows"),
    ("layout", "--layout"),
    ("bad_field_count", "--bad-field-count"),
    ("duplicate_ids", "--duplicate-ids"),
    ("bad_dates", "--bad-dates"),
    ("duplicate_upn", "--duplicate-upn"),
    ("unresolved_manager", "--unresolved-manager"),
)


def _given(ctx: typer.Context, name: str) -> bool:
    """Whether the option was on the command line (or in the environment), not defaulted."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


def _check_sample_options(ctx: typer.Context, *, with_from: bool) -> None:
    """Refuse option combinations ``sample`` would otherwise ignore without a word."""
    if with_from:
        ignored = [flag for name, flag in _FRESH_ONLY if _given(ctx, name)]
        if ignored:
            raise typer.BadParameter(
                f"{', '.join(ignored)} cannot be combined with --from: the next day's extract"
                " keeps the previous file's rows and layout and plants no faults. Generate a"
                " fresh extract with those options (without --from), or drop them",
                param_hint="--from",
            )
    elif _given(ctx, "churn"):
        raise typer.BadParameter("--churn only applies with --from PREV", param_hint="--churn")


def validate_command(
    mapping: Annotated[
        Path | None,
        input_file_option("--mapping", "-m", help="mapping YAML"),
    ] = None,
    extract: Annotated[
        Path | None,
        input_file_argument(help="HR extract (CSV or .xlsx) to check"),
    ] = None,
    rows: Annotated[
        int, typer.Option(min=0, help="rows to check; 0 = every row")
    ] = DEFAULT_SAMPLE_ROWS,
    as_json: Annotated[
        bool, typer.Option("--json", is_eager=True, help="print the report as JSON")
    ] = False,
    source: Annotated[
        str | None,
        typer.Option(
            "--source",
            "-s",
            help="a sql or rest source: check its mapping against the columns it has",
        ),
    ] = None,
    config: Annotated[
        Path | None,
        input_file_option("--config", "-c", help="sources config (with --source)"),
    ] = None,
) -> None:
    """List every problem of a mapping (and an extract); exit 0 clean, 1 problems.

    With ``--source NAME --config FILE`` (a sql or rest source), the source's mapping is
    checked against the columns a pull of it would have."""
    if source is not None:
        _validate_source(source, config, extract, mapping, as_json)
    if mapping is None:
        raise typer.BadParameter(
            "give --mapping (or --source with --config)", param_hint="--mapping"
        )
    report = validate(mapping, extract, sample_rows=rows or None)
    _print_validation(report, extract is not None, as_json)


def _validate_source(
    source: str, config: Path | None, extract: Path | None, mapping: Path | None, as_json: bool
) -> None:
    """``validate --source``: the mapping against the columns a pull would have."""
    from connector.cli.exits import failing
    from connector.cli.pulled import mapping_and_header

    if config is None or extract is not None or mapping is not None:
        raise typer.BadParameter(
            "--source takes --config and no --mapping or extract", param_hint="--source"
        )
    with failing(), mapping_and_header(config, source) as (path, header):
        report = validate(path, header, sample_rows=None)
    _print_validation(report, False, as_json)


def _print_validation(report: ValidationReport, rows: bool, as_json: bool) -> None:
    if as_json:
        emit("validation", report.to_dict(), exit_code=0 if report.ok else 1)
    else:
        for problem in report.problems:
            print(problem)
        checked = f", {report.rows_checked} rows checked" if rows else ""
        print(f"{len(report.errors)} error(s), {len(report.warnings)} warning(s){checked}")
    raise typer.Exit(0 if report.ok else 1)


def preview_command(
    extract: Annotated[Path, input_file_argument(help="HR extract (CSV or .xlsx)")],
    mapping: Annotated[Path, input_file_option("--mapping", "-m", help="mapping YAML")],
    out: Annotated[
        Path, typer.Option("--out", "-o", file_okay=False, help="directory for the payloads")
    ],
    max_bytes: Annotated[
        int, typer.Option(min=1024, help="byte cap per BulkRequest")
    ] = DEFAULT_MAX_REQUEST_BYTES,
    as_json: Annotated[
        bool, typer.Option("--json", is_eager=True, help="print the summary as JSON")
    ] = False,
) -> None:
    """Write the exact BulkRequest payloads and rejected.csv; print a summary."""
    code = preview(extract, mapping, out, max_bytes=max_bytes, as_json=as_json, console=Console())
    if code:
        raise typer.Exit(code)


def sample_command(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", "-o", dir_okay=False, help="CSV to write")],
    rows: Annotated[int, typer.Option(min=1, help="data rows")] = 1000,
    seed: Annotated[int, typer.Option(help="random seed (same seed, same file)")] = 0,
    layout: Annotated[str, typer.Option(help="column layout: " + " | ".join(LAYOUTS))] = "default",
    from_: Annotated[
        Path | None,
        input_file_option("--from", help="previous extract: write the next day"),
    ] = None,
    churn: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="share of rows changed with --from")
    ] = 0.01,
    bad_field_count: Annotated[int, typer.Option(min=0, help="rows with a wrong field count")] = 0,
    duplicate_ids: Annotated[int, typer.Option(min=0, help="rows repeating another id")] = 0,
    bad_dates: Annotated[int, typer.Option(min=0, help="rows with an invalid hire date")] = 0,
    duplicate_upn: Annotated[
        bool, typer.Option(help="one worker gets another worker's user name")
    ] = False,
    unresolved_manager: Annotated[
        bool, typer.Option(help="one row's manager id exists nowhere")
    ] = False,
    as_of: Annotated[
        str | None, typer.Option(help="anchor date YYYY-MM-DD for hire/leave dates")
    ] = None,
) -> None:
    """Generate a realistic HR extract, or the next day's extract with --from."""
    _check_sample_options(ctx, with_from=from_ is not None)
    if layout not in LAYOUTS:
        raise typer.BadParameter(f"choose one of {', '.join(LAYOUTS)}", param_hint="--layout")
    try:
        anchor = date.fromisoformat(as_of) if as_of else None
    except ValueError:
        raise typer.BadParameter("use YYYY-MM-DD", param_hint="--as-of") from None
    if from_ is not None:
        try:
            counts = churn_extract(from_, out, churn, seed, as_of=anchor)
        except ValueError as exc:
            raise _fail(str(exc)) from None
        print(f"wrote {out}: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in counts.items()))
        return
    faults = Faults(
        bad_field_count=bad_field_count,
        duplicate_ids=duplicate_ids,
        bad_dates=bad_dates,
        duplicate_upn=duplicate_upn,
        unresolved_manager=unresolved_manager,
    )
    _write_fresh_sample(out, rows, seed, layout, faults, anchor)


def _write_fresh_sample(
    out: Path, rows: int, seed: int, layout: str, faults: Faults, anchor: date | None
) -> None:
    """``sample`` without --from: a new extract with the faults asked for."""
    try:
        kwargs: dict[str, Any] = {"faults": faults}
        if anchor is not None:
            kwargs["as_of"] = anchor
        n = generate_extract(out, rows, seed, layout, **kwargs)  # type: ignore[arg-type]
    except ValueError as exc:
        raise _fail(str(exc)) from None
    print(f"wrote {out}: {n} rows ({layout} layout, seed {seed})")


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("validate")(validate_command)
    app.command("preview")(preview_command)
    app.command("sample")(sample_command)
