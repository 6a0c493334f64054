"""CLI commands: ``validate``, ``preview`` and ``sample`` (offline; no network, no tokens).

Exit codes: 0 success, 1 the input has problems (or could not be processed),
2 usage errors (Typer's own, e.g. a missing file or unknown option).
"""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from connector.errors import ExtractError, MappingError
from connector.mapping import load_mapping
from connector.records import RecordStream, iter_records
from connector.sample import LAYOUTS, Faults, churn_extract, generate_extract
from connector.scim import DEFAULT_MAX_REQUEST_BYTES, build_bulk_requests
from connector.validate import DEFAULT_SAMPLE_ROWS, validate

__all__ = ["PreviewSummary", "register", "run_preview"]

_PROGRESS_EVERY = 1000


@dataclass(slots=True)
class PreviewSummary:
    """What ``preview`` wrote and why some rows are missing from it.

    ``warnings`` are the mapping's warnings (as ``validate`` lists them), each with its
    mapping file line.
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
            "warnings": list(self.warnings),
        }


def _write_rejected(stream: RecordStream, out: Path) -> None:
    with (out / "rejected.csv").open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["line", "externalId", "reason", "message"])
        for rej in stream.rejected:
            writer.writerow([rej.line, rej.external_id, rej.reason_code, rej.message])


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
    rejected-share cap still gets its files, with ``error`` set in the summary.
    """
    mapping = load_mapping(mapping_path)
    stream = iter_records(extract, mapping, label=str(extract), max_request_bytes=max_bytes)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("bulk-[0-9][0-9][0-9][0-9][0-9].json"):
        old.unlink()
    task = progress.add_task("mapping rows", total=None) if progress is not None else None
    requests = operations = size = 0
    error: str | None = None

    def ops() -> Any:
        for n, op in enumerate(stream.operations(), 1):
            if progress is not None and task is not None and n % _PROGRESS_EVERY == 0:
                progress.update(task, completed=n)
            yield op

    with stream:
        try:
            for payload in build_bulk_requests(ops(), max_bytes=max_bytes):
                requests += 1
                operations += len(payload)
                size += len(payload.body)
                (out / f"bulk-{requests:05d}.json").write_bytes(payload.body)
        except ExtractError as exc:  # over the rejected-share cap, found at the end
            error = str(exc)
        _write_rejected(stream, out)
    stats = stream.stats
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
    )


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


def _fail(message: str) -> typer.Exit:
    print(message, file=sys.stderr)
    return typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""

    @app.command("validate")
    def validate_cmd(
        mapping: Annotated[
            Path,
            typer.Option("--mapping", "-m", exists=True, dir_okay=False, help="mapping YAML"),
        ],
        extract: Annotated[
            Path | None,
            typer.Argument(exists=True, dir_okay=False, help="HR extract (CSV) to check"),
        ] = None,
        rows: Annotated[
            int, typer.Option(min=0, help="rows to check; 0 = every row")
        ] = DEFAULT_SAMPLE_ROWS,
        as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
    ) -> None:
        """List every problem of a mapping (and an extract); exit 0 clean, 1 problems."""
        report = validate(mapping, extract, sample_rows=rows or None)
        if as_json:
            sys.stdout.write(orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2).decode())
            sys.stdout.write("\n")
        else:
            for problem in report.problems:
                print(problem)
            checked = f", {report.rows_checked} rows checked" if extract is not None else ""
            print(f"{len(report.errors)} error(s), {len(report.warnings)} warning(s){checked}")
        raise typer.Exit(0 if report.ok else 1)

    @app.command("preview")
    def preview_cmd(
        extract: Annotated[
            Path, typer.Argument(exists=True, dir_okay=False, help="HR extract (CSV)")
        ],
        mapping: Annotated[
            Path,
            typer.Option("--mapping", "-m", exists=True, dir_okay=False, help="mapping YAML"),
        ],
        out: Annotated[
            Path, typer.Option("--out", "-o", file_okay=False, help="directory for the payloads")
        ],
        max_bytes: Annotated[
            int, typer.Option(min=1024, help="byte cap per BulkRequest")
        ] = DEFAULT_MAX_REQUEST_BYTES,
        as_json: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
    ) -> None:
        """Write the exact BulkRequest payloads and rejected.csv; print a summary."""
        console = Console()
        show_progress = sys.stdout.isatty() and not as_json
        try:
            if show_progress:
                with Progress(
                    SpinnerColumn(),
                    TextColumn("{task.description}: {task.completed:,} rows"),
                    TimeElapsedColumn(),
                    console=console,
                    transient=True,
                ) as progress:
                    summary = run_preview(
                        mapping, extract, out, max_bytes=max_bytes, progress=progress
                    )
            else:
                summary = run_preview(mapping, extract, out, max_bytes=max_bytes)
        except (MappingError, ExtractError) as exc:
            raise _fail(str(exc)) from None
        for warning in summary.warnings:  # also in --json; stderr keeps stdout parseable
            print(f"warning: {warning}", file=sys.stderr)
        if as_json:
            sys.stdout.write(orjson.dumps(summary.to_dict(), option=orjson.OPT_INDENT_2).decode())
            sys.stdout.write("\n")
        else:
            _print_summary(summary, console)
        if summary.error:
            raise _fail(summary.error)

    @app.command("sample")
    def sample_cmd(
        out: Annotated[Path, typer.Option("--out", "-o", dir_okay=False, help="CSV to write")],
        rows: Annotated[int, typer.Option(min=1, help="data rows")] = 1000,
        seed: Annotated[int, typer.Option(help="random seed (same seed, same file)")] = 0,
        layout: Annotated[
            str, typer.Option(help="column layout: " + " | ".join(LAYOUTS))
        ] = "default",
        from_: Annotated[
            Path | None,
            typer.Option(
                "--from", exists=True, dir_okay=False, help="previous extract: write the next day"
            ),
        ] = None,
        churn: Annotated[
            float, typer.Option(min=0.0, max=1.0, help="share of rows changed with --from")
        ] = 0.01,
        bad_field_count: Annotated[
            int, typer.Option(min=0, help="rows with a wrong field count")
        ] = 0,
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
            print(
                f"wrote {out}: "
                + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in counts.items())
            )
            return
        faults = Faults(
            bad_field_count=bad_field_count,
            duplicate_ids=duplicate_ids,
            bad_dates=bad_dates,
            duplicate_upn=duplicate_upn,
            unresolved_manager=unresolved_manager,
        )
        try:
            kwargs: dict[str, Any] = {"faults": faults}
            if anchor is not None:
                kwargs["as_of"] = anchor
            n = generate_extract(out, rows, seed, layout, **kwargs)  # type: ignore[arg-type]
        except ValueError as exc:
            raise _fail(str(exc)) from None
        print(f"wrote {out}: {n} rows ({layout} layout, seed {seed})")
