"""``connector validate``: every problem of a mapping and an extract, found in one go.

Checks, in order: the mapping itself (SCIM attribute names and types, custom
attributes only under a ``urn:`` namespace, transform arguments), the extract's
encoding and header against the columns the mapping uses, then a sample of rows
through the real record stream (field counts, empty or duplicate ids, transform
failures, non-boolean ``active``, invalid dates). Each problem names the mapping
line or the CSV line. Nothing stops at the first problem: a mapping with errors is
still checked against the header with the attributes that compiled, and rows are
still checked with the attributes whose columns the header has (the others are left
out of the row check, and their missing columns are reported).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from connector.errors import ExtractError, MappingError, ReadAgainError
from connector.extract import ExtractProfile, read_extract
from connector.extract_header import header_looks_like_data
from connector.mapping import Mapping, check_mapping
from connector.records import RecordStream, iter_records
from connector.sources.xlsx import as_csv, readable

__all__ = ["DEFAULT_SAMPLE_ROWS", "Problem", "ValidationReport", "validate"]

DEFAULT_SAMPLE_ROWS = 1000
_LOCATED = re.compile(r"^(?P<where>.+?:\d+): (?P<message>.*)$", re.DOTALL)

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding: ``where`` is ``file:line`` (or a file name when no line applies)."""

    severity: Severity
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.severity}: {self.message}"

    def to_dict(self) -> dict[str, str]:
        return {"severity": self.severity, "where": self.where, "message": self.message}


@dataclass(slots=True)
class ValidationReport:
    """All findings of one validation; ``ok`` when there is no error (warnings allowed)."""

    problems: list[Problem] = field(default_factory=list)
    rows_checked: int = 0

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "rows_checked": self.rows_checked,
            "problems": [p.to_dict() for p in self.problems],
        }


def _located(severity: Severity, text: str, fallback: str) -> Problem:
    m = _LOCATED.match(text)
    if m:
        return Problem(severity, m.group("where"), m.group("message"))
    return Problem(severity, fallback, text)


def _did_you_mean(name: str, candidates: Sequence[str], *, limit: int = 3) -> list[str]:
    """Header columns close to ``name``: a case-only difference first, then difflib's matches."""
    folded = {c.casefold(): c for c in reversed(candidates)}
    same_case = folded.get(name.casefold())
    close = difflib.get_close_matches(name.casefold(), list(folded), n=limit, cutoff=0.6)
    found = [same_case] if same_case is not None else []
    found += [folded[c] for c in close if folded[c] not in found]
    return found[:limit]


def _suggestion(name: str, header: Sequence[str]) -> str:
    """Close header names; only called when the header reads as column names (not data),
    since otherwise its cells are a person's values."""
    found = _did_you_mean(name, header)
    if not found:
        return ""
    return " (did you mean " + " or ".join(repr(c) for c in found) + "?)"


def _extract_problem(exc: ExtractError, label: str) -> Problem:
    where = label if exc.line is None else f"{label}:{exc.line}"
    message = str(exc)
    prefix = f"{exc.path}, line {exc.line}: " if exc.line is not None else f"{exc.path}: "
    message = message.removeprefix(prefix)
    return Problem("error", where, message)


def validate(
    mapping: str | Path,
    extract: str | Path | None = None,
    *,
    sample_rows: int | None = DEFAULT_SAMPLE_ROWS,
) -> ValidationReport:
    """Check ``mapping`` (and, when given, ``extract``'s header and first ``sample_rows`` rows).

    ``sample_rows`` None checks every row. Never raises for content problems: they are
    all in the report.
    """
    report = ValidationReport()
    label = str(mapping)
    compiled: Mapping | None = None
    try:
        compiled, problems, warnings = check_mapping(Path(mapping), partial=True)
    except MappingError as exc:
        problems = exc.problems or [str(exc)]
        warnings = []
    report.problems.extend(_located("error", p, label) for p in problems)
    report.problems.extend(_located("warning", w, label) for w in warnings)
    if extract is None:
        return report
    extract_label = str(extract)
    if compiled is None:
        # No externalId column: still say whether the extract itself can be read.
        try:
            with as_csv(Path(extract), label=extract_label) as rows:
                read_extract(rows, label=extract_label).close()
        except ExtractError as exc:
            report.problems.append(_extract_problem(exc, extract_label))
        return report
    try:
        # An .xlsx extract is checked as its sheet converted to CSV (connector.sources.xlsx).
        with readable(compiled, Path(extract), extract_label) as (rows, for_rows):
            _check_extract(for_rows, rows, extract_label, sample_rows, report)
    except ExtractError as exc:
        report.problems.append(_extract_problem(exc, extract_label))
    return report


def _check_extract(
    mapping: Mapping,
    extract: Path,
    label: str,
    sample_rows: int | None,
    report: ValidationReport,
) -> None:
    """The extract's header against the columns the mapping uses, then a sample of rows
    (unless an id column is missing)."""
    profile = mapping.extract_profile
    try:
        header = read_extract(extract, replace(profile, id_column=None), label=label).header
    except ExtractError as exc:
        report.problems.append(_extract_problem(exc, label))
        return
    missing = _missing_columns(mapping, header, label, report)
    if {mapping.external_id_column, profile.id_column} & set(missing):
        return
    usable = mapping.without_columns(missing) if missing else mapping
    _check_rows(usable, profile, extract, label, sample_rows, report)


def _missing_columns(
    mapping: Mapping, header: list[str], label: str, report: ValidationReport
) -> list[str]:
    """The columns the mapping uses that the header lacks, each reported (with a close
    header name unless the header reads as data)."""
    missing = [c for c in mapping.required_columns if c not in header]
    ids = {mapping.external_id_column, mapping.extract_profile.id_column}
    headerless = header_looks_like_data(header)
    if headerless and missing:
        report.problems.append(
            Problem(
                "error",
                f"{label}:1",
                "the first line looks like data, not column names: the extract needs a"
                " header line naming its columns",
            )
        )
    for col in missing:
        line = mapping.column_lines.get(col)
        where = f"{mapping.source}:{line}" if line else mapping.source
        after = (
            "; rows are not checked without it"
            if col in ids
            else "; rows were checked without the attributes that read it"
        )
        report.problems.append(
            Problem(
                "error",
                where,
                f"column {col!r} is not in the header of {label}"
                f"{'' if headerless else _suggestion(col, header)}{after}",
            )
        )
    return missing


def _read_rows(
    usable: Mapping, lenient: ExtractProfile, extract: Path, label: str, sample_rows: int | None
) -> RecordStream:
    """The rows checked, read to the end of the sample. A whole file is read once, its ids
    counted as the rows go by, and again only when an id repeats (rejecting every row
    that carries it); a sample is read after the id column, since a row's id may repeat
    after the sample ends."""
    whole = sample_rows is None
    duplicates: set[int] | None = None
    while True:
        stream = iter_records(
            extract,
            usable,
            profile=lenient,
            label=label,
            ids_in_pass=whole and duplicates is None,
            duplicates=duplicates,
        )
        try:
            with stream:
                for _ in stream:
                    if sample_rows is not None and stream.stats.rows_read >= sample_rows:
                        break
        except ReadAgainError as exc:
            duplicates = exc.duplicates
            continue
        return stream


def _check_rows(
    usable: Mapping,
    profile: ExtractProfile,
    extract: Path,
    label: str,
    sample_rows: int | None,
    report: ValidationReport,
) -> None:
    """The first ``sample_rows`` rows through the record stream: every rejected row, and
    whether the share rejected is over the file cap (a sync would refuse the file)."""
    lenient: ExtractProfile = replace(profile, max_rejected_share=1.0)
    try:
        stream = _read_rows(usable, lenient, extract, label, sample_rows)
    except ExtractError as exc:
        report.problems.append(_extract_problem(exc, label))
        return
    stats = stream.stats
    report.rows_checked = stats.rows_read
    for rej in stream.rejected:
        ext = f" (externalId {rej.external_id})" if rej.external_id else ""
        report.problems.append(
            Problem("error", f"{label}:{rej.line}", f"{rej.reason_code}{ext}: {rej.message}")
        )
    cap = profile.max_rejected_share
    if stats.rows_read and stats.rows_rejected / stats.rows_read > cap:
        report.problems.append(
            Problem(
                "error",
                label,
                f"{stats.rows_rejected} of {stats.rows_read} checked rows rejected, over the"
                f" file cap of {cap:.1%}: a sync would refuse this file",
            )
        )
