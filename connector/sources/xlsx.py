"""An ``.xlsx`` extract, streamed into a canonical CSV: one row path for every format.

A dropped workbook is read row by row (openpyxl ``read_only``, cached formula values) and
written as UTF-8 CSV (comma, minimal quoting, ``\\n`` line ends, the form of
:mod:`connector.sources.snapshot`), one CSV line per sheet row: the header is the sheet's
row 1 and an empty sheet row becomes a blank line, which the CSV reader skips but counts,
so every line number the reader reports (rejected rows, bad header) is the sheet's row
number. The CSV reader then applies its row rules unchanged (header, duplicate ids, field
counts). Cells become text by :mod:`connector.sources.values` (``100002.0`` → ``100002``,
booleans ``true``/``false``, ISO 8601 dates); a date-formatted cell without a time part
becomes a date (``2024-03-01``), as a CSV export of the sheet would show it.

The run id stays the SHA-256 of the dropped workbook's bytes (the engine hashes the file
before it gets here), so dropping the same workbook twice is a no-op.
"""

from __future__ import annotations

import contextlib
import csv
import tempfile
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from connector.errors import ExtractError, UnconvertibleValueError
from connector.extract import ExtractProfile
from connector.sources.values import to_text

if TYPE_CHECKING:
    from connector.mapping import Mapping

__all__ = ["XLSX_SUFFIXES", "as_csv", "csv_profile", "is_xlsx", "readable", "xlsx_to_csv"]

XLSX_SUFFIXES = frozenset({".xlsx", ".xlsm"})
_ZIP_MAGIC = b"PK\x03\x04"
# An encrypted (password-protected) workbook is an OLE compound file, not a zip.
_CFB_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_TIME_CODES = ("h", "s")
# What openpyxl raises for a damaged workbook: a bad zip or deflate stream, a missing
# part, malformed XML (ElementTree's ParseError is a SyntaxError), unexpected values.
_UNREADABLE = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    KeyError,
    OSError,
    SyntaxError,
    TypeError,
    ValueError,
)


def _head(path: Path) -> bytes:
    try:
        with path.open("rb") as fh:
            return fh.read(8)
    except OSError:
        return b""


def is_xlsx(path: Path) -> bool:
    """Whether ``path`` is a workbook: an ``.xlsx``/``.xlsm`` name or a zip's magic bytes."""
    return path.suffix.lower() in XLSX_SUFFIXES or _head(path).startswith(_ZIP_MAGIC)


def csv_profile(profile: ExtractProfile) -> ExtractProfile:
    """``profile`` for the converted CSV: UTF-8 and comma, whatever the mapping says."""
    return replace(profile, encoding=None, delimiter=",")


def _is_date_only(number_format: str) -> bool:
    fmt = number_format.lower().split(";", 1)[0]
    return not any(code in fmt for code in _TIME_CODES)


def _cell_text(cell: Any, column: str) -> str:
    value = getattr(cell, "value", None)
    fmt = str(getattr(cell, "number_format", "") or "")
    if isinstance(value, datetime) and value.time() == datetime.min.time() and _is_date_only(fmt):
        return value.date().isoformat()
    return to_text(value, column)


def _trimmed(values: list[str], width: int) -> list[str]:
    """Trailing empty cells beyond ``width`` dropped; a row longer than the header keeps
    its extra values (the CSV reader rejects it as it would a CSV line)."""
    end = len(values)
    while end > width and not values[end - 1]:
        end -= 1
    return values[:end]


def _rows(sheet: Any, label: str) -> Iterator[list[str]]:
    width = 0
    for index, row in enumerate(sheet.iter_rows(), start=1):
        try:
            values = [_cell_text(c, f"column {i + 1}") for i, c in enumerate(row)]
        except UnconvertibleValueError as exc:
            raise ExtractError(f"row {index}: {exc}", path=label) from None
        if index == 1:
            values = _trimmed(values, 0)
            width = len(values)
            if not width:
                raise ExtractError(
                    "the sheet's first row is empty: it must name the columns", path=label
                )
            yield values
            continue
        values = _trimmed(values, width)
        yield values if any(values) else []


def _open_sheet(path: Path, sheet: str | None, label: str) -> tuple[Any, Any]:
    import openpyxl

    if _head(path).startswith(_CFB_MAGIC):
        raise ExtractError(
            "the workbook is password-protected (encrypted); save it without a password",
            path=label,
        )
    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except _UNREADABLE as exc:
        kind = type(exc).__name__
        raise ExtractError(f"not a readable .xlsx workbook ({kind})", path=label) from None
    if sheet is None:
        if not book.sheetnames:
            book.close()
            raise ExtractError("the workbook has no sheet", path=label)
        return book, book[book.sheetnames[0]]
    if sheet not in book.sheetnames:
        names = ", ".join(repr(n) for n in book.sheetnames)
        book.close()
        raise ExtractError(f"no sheet named {sheet!r} (sheets: {names})", path=label)
    return book, book[sheet]


def xlsx_to_csv(path: Path, out: Path, *, sheet: str | None = None, label: str) -> int:
    """Write the ``sheet`` (default the first) of workbook ``path`` to ``out`` as CSV.

    Returns the number of sheet rows written (header included). Raises
    :class:`~connector.errors.ExtractError` naming ``label`` for a corrupt, encrypted or
    empty workbook and a missing sheet.
    """
    book, ws = _open_sheet(path, sheet, label)
    count = 0
    try:
        with out.open("w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            try:
                for values in _rows(ws, label):
                    _write(writer, values)
                    count += 1
            except ExtractError:
                raise
            except _UNREADABLE as exc:
                kind = type(exc).__name__
                raise ExtractError(f"not a readable .xlsx workbook ({kind})", path=label) from None
    finally:
        book.close()
    if count == 0:
        raise ExtractError("the sheet is empty: it needs a header row", path=label)
    return count


def _write(writer: Any, values: Sequence[str]) -> None:
    if values:
        writer.writerow(values)
    else:
        writer.writerow([])  # a blank line: skipped by the reader, counted as a line


@contextlib.contextmanager
def as_csv(path: Path, *, sheet: str | None = None, label: str | None = None) -> Iterator[Path]:
    """``path`` itself when it is not a workbook; else a temporary CSV of its sheet,
    deleted on exit. The temporary file carries the workbook's own name, so messages that
    name the file name the file the operator gave."""
    if not is_xlsx(path):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="connector-xlsx-") as folder:
        out = Path(folder) / path.name
        xlsx_to_csv(path, out, sheet=sheet, label=label or path.name)
        yield out


@contextlib.contextmanager
def readable(mapping: Mapping, path: Path, label: str) -> Iterator[tuple[Path, Mapping]]:
    """The file the CSV reader should read for ``path`` and the mapping to read it with:
    ``path`` and ``mapping`` themselves for a CSV; for a workbook, its converted sheet
    (the mapping's ``extract.sheet``) and the mapping with :func:`csv_profile`."""
    if not is_xlsx(path):
        yield path, mapping
        return
    with as_csv(path, sheet=mapping.extract_profile.sheet, label=label) as converted:
        yield converted, replace(mapping, extract_profile=csv_profile(mapping.extract_profile))
