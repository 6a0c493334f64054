"""``connector preview``: the exact BulkRequest payloads of an extract, and its rejected rows.

Typer-free, so that ``preview`` of a large extract starts as fast as a plain script: the
console script hands a plain command line (:func:`quick_preview`: the extract, ``-m``,
``-o``, ``--max-bytes``, ``--json``, files that can be read, output not to a terminal)
straight to :func:`preview`, the command's one body. Anything else (``--help``, a missing
or unreadable file, an unknown option, a terminal, which gets a progress bar and a table)
goes through the Typer app, whose ``preview`` command (:mod:`connector.cli.core`) calls the
same :func:`preview`; its messages and exit codes are Typer's. Typer builds a pydantic
``TypeAdapter`` for each parameter, and with rich and pydantic imported that was 0.13 s of
the command's 0.19 s of start-up.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
from connector.scim import DEFAULT_MAX_REQUEST_BYTES, build_bulk_requests
from connector.sources.xlsx import readable

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

    from connector.mapping import Mapping
    from connector.records import RecordStream

__all__ = ["PreviewSummary", "preview", "quick_preview", "run_preview", "write_payload"]

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
    return _summary(stats, written, out, mapping, error, refusal is not None, not_listed)


def _summary(
    stats: ExtractStats,
    written: tuple[int, int, int],
    out: Path,
    mapping: Mapping,
    error: str | None,
    refused: bool,
    not_listed: int,
) -> PreviewSummary:
    """The counts of a read and of the requests written from it."""
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
        refused=refused,
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


def _print_summary(summary: PreviewSummary, console: Console | None) -> None:
    """A table on a terminal, else ``key: value`` lines (``console`` None: not a terminal)."""
    data = summary.to_dict()
    if console is not None and console.is_terminal:
        from rich.table import Table

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


def _preview(
    mapping: Path,
    extract: Path,
    out: Path,
    max_bytes: int,
    console: Console | None,
    *,
    progress: bool,
) -> PreviewSummary:
    """:func:`run_preview`, with a row counter on a terminal."""
    if not progress or console is None:
        return run_preview(mapping, extract, out, max_bytes=max_bytes)
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}: {task.completed:,} rows"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        return run_preview(mapping, extract, out, max_bytes=max_bytes, progress=bar)


def preview(
    extract: Path,
    mapping: Path,
    out: Path,
    *,
    max_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    as_json: bool = False,
    console: Console | None = None,
) -> int:
    """The ``preview`` command once its arguments are checked: print the summary (a table
    when ``console`` is a terminal) and return the exit code (0; 1 the input has problems;
    2 the mapping cannot be loaded)."""
    try:
        summary = _preview(
            mapping,
            extract,
            out,
            max_bytes,
            console,
            progress=sys.stdout.isatty() and not as_json,
        )
    except ConfigError as exc:  # the --mapping file: a usage error, one line per problem
        from connector.cli.common import config_error_lines, exit_code_for

        for line in config_error_lines(exc):
            print(line, file=sys.stderr)
        return exit_code_for(exc)
    except ExtractError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    for warning in summary.warnings:  # also in --json; stderr keeps stdout parseable
        print(f"warning: {warning}", file=sys.stderr)
    if as_json:
        from connector.cli.jsonout import emit

        emit("preview", summary.to_dict(), exit_code=1 if summary.error else 0)
    else:
        _print_summary(summary, console)
    if summary.error:
        print(summary.error, file=sys.stderr)
        return 1
    return 0


#: options of ``preview`` that take a value: their spellings and parameter
_VALUED = {"-m": "mapping", "--mapping": "mapping", "-o": "out", "--out": "out"}
_VALUED["--max-bytes"] = "max_bytes"


def _plain_args(argv: list[str]) -> dict[str, str] | None:
    """``preview``'s arguments when ``argv`` is plainly spelled, else None.

    Plain: one extract, each of ``-m``/``--mapping``, ``-o``/``--out`` and ``--max-bytes``
    at most once with its value as the next word or after ``=``, ``--json`` at most once,
    and no empty value or word that starts with ``-`` in a value's place.
    """
    got: dict[str, str] = {}
    words = iter(argv)
    for word in words:
        name, eq, value = word.partition("=") if word.startswith("--") else (word, "", "")
        if name == "--json" and not eq:
            key, value = "as_json", "1"
        elif name in _VALUED:
            key = _VALUED[name]
            if not eq:
                value = next(words, "-")
            if not value or value.startswith("-"):
                return None
        elif word.startswith("-") or "extract" in got:
            return None
        else:
            key, value = "extract", word
        if key in got:
            return None
        got[key] = value
    return got if {"extract", "mapping", "out"} <= got.keys() else None


def quick_preview(argv: list[str]) -> int | None:
    """Run ``preview`` with ``argv`` (the words after ``preview``) without building the CLI
    app; None when the Typer app should run it (see the module docstring).

    Only a command line the app would accept as it is runs here: the files readable
    (:func:`~connector.cli.files.file_problem`), ``--out`` not a file, ``--max-bytes`` a
    number of at least 1024, and output that Rich would not draw as a terminal.
    """
    args = _plain_args(argv)
    if args is None or sys.stdout.isatty() or {"TTY_COMPATIBLE", "FORCE_COLOR"} & os.environ.keys():
        return None
    from connector.cli.files import file_problem

    extract, mapping, out = Path(args["extract"]), Path(args["mapping"]), Path(args["out"])
    if file_problem(extract) is not None or file_problem(mapping) is not None:
        return None
    if out.exists() and not out.is_dir():
        return None
    max_bytes = DEFAULT_MAX_REQUEST_BYTES
    if "max_bytes" in args:
        text = args["max_bytes"]
        if not (text.isascii() and text.isdigit()) or int(text) < 1024:
            return None
        max_bytes = int(text)
    return preview(extract, mapping, out, max_bytes=max_bytes, as_json="as_json" in args)
