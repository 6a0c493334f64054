"""CLI commands: ``validate``, ``preview`` and ``sample`` (offline; no network, no tokens).

Exit codes: 0 success, 1 the input has problems (or could not be processed),
2 usage errors (Typer's own, e.g. a missing file or unknown option, and for ``preview`` a
mapping file that cannot be loaded). ``validate`` exits 1 for a bad mapping: finding its
problems is its job.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from connector.cli.common import config_error_lines, exit_code_for
from connector.cli.jsonout import emit
from connector.cli.paths import input_file_argument, input_file_option
from connector.csv_out import write_csv
from connector.errors import (
    ConfigError,
    ExtractError,
    ReadAgainError,
    RejectedShareExceededError,
)
from connector.extract import ExtractStats, RejectedRow
from connector.mapping import load_mapping
from connector.records import iter_records
from connector.sample import LAYOUTS, Faults, churn_extract, generate_extract
from connector.scim import DEFAULT_MAX_REQUEST_BYTES, build_bulk_requests
from connector.sources.xlsx import readable
from connector.validate import DEFAULT_SAMPLE_ROWS, ValidationReport, validate

if TYPE_CHECKING:
    from connector.mapping import Mapping
    from connector.records import RecordStream

__all__ = ["PreviewSummary", "register", "run_preview"]

_PROGRESS_EVERY = 20  # requests (of up to 50 rows each)


@dataclass(slots=True)
class PreviewSummary:
    """What ``preview`` wrote and why some rows are missing from it.

    ``warnings`` are the mapping's warnings (as ``validate`` lists them), each with its
    mapping file line. ``refused`` is set when the file is over the rejected-row cap (a sync
    would not apply it); the row counts and rejected.csv then cover every row of the file,
    and ``rejected_not_listed`` counts rejected rows that are in the counts but not in
    rejected.csv (only when the full list could not be rebuilt).
    """

    rows_read: int
    rows_accepted: int
    rejected_by_reason: dict[str, int]
    requests: int
    operations: int
    bytes: int
    out: str
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    refused: bool = False
    rejected_not_listed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows_read": self.rows_read,
            "rows_accepted": self.rows_accepted,
            "rows_rejected": sum(self.rejected_by_reason.values()),
            "rejected_by_reason": dict(sorted(self.rejected_by_reason.items())),
            "requests": self.requests,
            "operations": self.operations,
            "bytes": self.bytes,
            "out": self.out,
            "error": self.error,
            "refused": self.refused,
            "rejected_not_listed": self.rejected_not_listed,
            "warnings": list(self.warnings),
        }


def _write_rejected(rejected: Iterable[RejectedRow], out: Path) -> None:
    """rejected.csv, through the one CSV writer (formula-like cells neutralised)."""
    rows = ((rej.line, rej.external_id, rej.reason_code, rej.message) for rej in rejected)
    with (out / "rejected.csv").open("w", encoding="utf-8", newline="") as f:
        write_csv(f, ["line", "externalId", "reason", "message"], rows)


def _every_rejection(
    mapping: Mapping,
    extract: Path,
    max_bytes: int,
    refusal: RejectedShareExceededError,
    *,
    label: str,
) -> tuple[list[RejectedRow], ExtractStats, int]:
    """All rejected rows of a refused file: (rows, stats, rejected rows not listed).

    The cap may refuse a file before its rows are mapped (duplicate ids and bad field counts
    are found first), so the refusal knows only the reader's rejections. A second pass with
    the cap lifted (as ``validate`` reads) finds the mapping's rejections too; it runs only
    for refused files. Should that pass fail, the refusal's own list is used: its first
    :attr:`~RejectedShareExceededError.MAX_LISTED` rows, the rest counted.
    """
    lenient = replace(mapping.extract_profile, max_rejected_share=1.0)
    try:
        again = iter_records(
            extract, mapping, profile=lenient, label=label, max_request_bytes=max_bytes
        )
        with again:
            for _ in again.operations():
                pass
    except ExtractError:
        return list(refusal.rejected), refusal.stats, refusal.rejected_omitted
    return list(again.rejected), again.stats, 0


def _refusal_message(
    extract: Path, stats: ExtractStats, share: float, out: Path, not_listed: int
) -> str:
    rows, bad = stats.rows_read, stats.rows_rejected
    listed = f"{out / 'rejected.csv'} lists every rejected row"
    if not_listed:
        listed = f"{out / 'rejected.csv'} lists the first {bad - not_listed} ({not_listed} more)"
    return (
        f"{extract}: file refused: {bad} of {rows} rows rejected ({bad / max(rows, 1):.1%}),"
        f" over the cap of {share:.1%}; a sync would not apply it. {listed}. Fix the extract"
        " or raise extract.max_rejected_share in the mapping"
    )


def run_preview(
    mapping_path: Path,
    extract: Path,
    out: Path,
    *,
    max_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    progress: Progress | None = None,
) -> PreviewSummary:
    """Write ``out/bulk-NNNNN.json`` and ``out/rejected.csv``; return the summary.

    Raises MappingError/ExtractError when nothing can be produced; a file over the
    rejected-share cap still gets its files, with ``refused`` and ``error`` set in the
    summary, and rejected.csv lists every rejected row of it (not only those found before
    the cap stopped the read).
    """
    mapping = load_mapping(mapping_path)
    # An .xlsx extract is read as its sheet converted to CSV (connector.sources.xlsx).
    with readable(mapping, extract, str(extract)) as (rows, for_rows):
        return _write_preview(for_rows, rows, extract, out, max_bytes, progress)


def _write_preview(
    mapping: Mapping,
    rows_file: Path,
    extract: Path,
    out: Path,
    max_bytes: int,
    progress: Progress | None,
) -> PreviewSummary:
    """:func:`run_preview` on ``rows_file`` (the CSV to read); messages name ``extract``.

    The file is read once, its ids counted as the rows go by; only when an id repeats
    are the payloads written so far dropped and the file read again, rejecting every row
    with a repeated id (:class:`~connector.errors.ReadAgainError`). A file-level error
    met on the way (a quote left open, undecodable bytes) drops them too.
    """
    duplicates: set[int] | None = None
    while True:
        stream = iter_records(
            rows_file,
            mapping,
            label=str(extract),
            max_request_bytes=max_bytes,
            ids_in_pass=duplicates is None,
            duplicates=duplicates,
        )
        out.mkdir(parents=True, exist_ok=True)
        _clear_payloads(out)
        written = (0, 0, 0)
        error: str | None = None
        refusal: RejectedShareExceededError | None = None
        with stream:
            try:
                written = _write_payloads(stream, out, max_bytes, progress)
            except ReadAgainError as exc:
                duplicates = exc.duplicates
                continue
            except RejectedShareExceededError as exc:
                refusal = exc
            except ExtractError as exc:  # the file as a whole: no payload of it stays
                error = str(exc)
                _clear_payloads(out)
            if refusal is None:
                rejected, stats, not_listed = list(stream.rejected), stream.stats, 0
        break
    if refusal is not None:
        rejected, stats, not_listed = _every_rejection(
            mapping, rows_file, max_bytes, refusal, label=str(extract)
        )
        share = mapping.extract_profile.max_rejected_share
        error = _refusal_message(extract, stats, share, out, not_listed)
    _write_rejected(rejected, out)
    requests, operations, size = written
    return PreviewSummary(
        rows_read=stats.rows_read,
        rows_accepted=stats.rows_accepted,
        rejected_by_reason=dict(stats.rejected_by_reason),
        requests=requests,
        operations=operations,
        bytes=size,
        out=str(out),
        error=error,
        warnings=list(mapping.warnings),
        refused=refusal is not None,
        rejected_not_listed=not_listed,
    )


def _clear_payloads(out: Path) -> None:
    for old in out.glob("bulk-[0-9][0-9][0-9][0-9][0-9].json"):
        old.unlink()


def _write_payloads(
    stream: RecordStream, out: Path, max_bytes: int, progress: Progress | None
) -> tuple[int, int, int]:
    """Every ``bulk-NNNNN.json`` of ``stream``: (requests, operations, bytes) written."""
    task = progress.add_task("mapping rows", total=None) if progress is not None else None
    requests = operations = size = 0
    for payload in build_bulk_requests(stream.operations(), max_bytes=max_bytes):
        requests += 1
        operations += len(payload)
        size += len(payload.body)
        write_payload(out / f"bulk-{requests:05d}.json", payload.body)
        if progress is not None and task is not None and requests % _PROGRESS_EVERY == 0:
            progress.update(task, completed=operations)
    return requests, operations, size


def write_payload(path: Path, body: bytes) -> None:
    """One payload file with plain os calls (no buffered file object per file)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(body)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def _print_summary(summary: PreviewSummary, console: Console) -> None:
    data = summary.to_dict()
    if console.is_terminal:
        table = Table(title="preview", show_header=False)
        table.add_column("what")
        table.add_column("value", justify="right")
        for key in ("rows_read", "rows_accepted", "rows_rejected"):
            table.add_row(key.replace("_", " "), str(data[key]))
        for reason, n in data["rejected_by_reason"].items():
            table.add_row(f"  {reason}", str(n))
        table.add_row("requests", str(summary.requests))
        table.add_row("operations", str(summary.operations))
        table.add_row("bytes", f"{summary.bytes:,}")
        table.add_row("written to", summary.out)
        if summary.refused:
            table.add_row("refused", "yes: over the rejected-row cap")
        console.print(table)
    else:
        for key in ("rows_read", "rows_accepted", "rows_rejected"):
            print(f"{key}: {data[key]}")
        for reason, n in data["rejected_by_reason"].items():
            print(f"rejected {reason}: {n}")
        print(f"requests: {summary.requests}")
        print(f"operations: {summary.operations}")
        print(f"bytes: {summary.bytes}")
        print(f"out: {summary.out}")
        if summary.refused:
            print("refused: yes (over the rejected-row cap; a sync would not apply this file)")


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


def _preview(
    mapping: Path, extract: Path, out: Path, max_bytes: int, console: Console, *, progress: bool
) -> PreviewSummary:
    """:func:`run_preview`, with a row counter on a terminal."""
    if not progress:
        return run_preview(mapping, extract, out, max_bytes=max_bytes)
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}: {task.completed:,} rows"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        return run_preview(mapping, extract, out, max_bytes=max_bytes, progress=bar)


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
    console = Console()
    try:
        summary = _preview(
            mapping, extract, out, max_bytes, console, progress=sys.stdout.isatty() and not as_json
        )
    except ConfigError as exc:  # the --mapping file: a usage error, one line per problem
        for line in config_error_lines(exc):
            print(line, file=sys.stderr)
        raise typer.Exit(exit_code_for(exc)) from None
    except ExtractError as exc:
        raise _fail(str(exc)) from None
    for warning in summary.warnings:  # also in --json; stderr keeps stdout parseable
        print(f"warning: {warning}", file=sys.stderr)
    if as_json:
        emit("preview", summary.to_dict(), exit_code=1 if summary.error else 0)
    else:
        _print_summary(summary, console)
    if summary.error:
        raise _fail(summary.error)


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
