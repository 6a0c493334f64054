"""The one CSV writer of every file the connector writes (failures.csv, rejected.csv).

Values come from HR extracts and from the service, so a cell may start like a formula
(``=HYPERLINK(...)``, ``+cmd|...``, ``@SUM(...)``, ``-1+1``); a spreadsheet opening the
file would evaluate it. Every cell written here that starts with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return gets a leading ``'``, which spreadsheets show as text
(the OWASP advice for CSV injection). Writing through one function keeps a new CSV from
forgetting it.
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Iterable, Iterator, Sequence
from typing import Final, TextIO

__all__ = ["FORMULA_START", "csv_bytes", "csv_parts", "neutralise_cell", "write_csv"]

#: first characters that make a spreadsheet evaluate a cell (or hide what follows)
FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")


def neutralise_cell(value: object) -> str:
    """The cell as text, prefixed with ``'`` when a spreadsheet would evaluate it."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def write_csv(
    stream: TextIO,
    header: Sequence[str],
    rows: Iterable[Sequence[object]],
) -> int:
    """Write ``header`` then ``rows`` to ``stream``, every cell neutralised; rows written.

    Lines end in CRLF (RFC 4180). That also makes the csv module quote a value holding a
    lone CR: with a bare LF terminator Python 3.11 writes it unquoted and the file breaks.
    ``stream`` must be opened with ``newline=""``.
    """
    writer = csv.writer(stream, lineterminator="\r\n")
    writer.writerow([neutralise_cell(c) for c in header])
    n = 0
    for row in rows:
        writer.writerow([neutralise_cell(c) for c in row])
        n += 1
    return n


def csv_bytes(header: Sequence[str], rows: Iterable[Sequence[object]]) -> bytes:
    """:func:`write_csv` into UTF-8 bytes (for files stored as artifacts)."""
    out = io.StringIO()
    write_csv(out, header, rows)
    return out.getvalue().encode("utf-8")


def csv_parts(
    header: Sequence[str], rows: Iterable[Sequence[object]], *, block: int = 5000
) -> Iterator[bytes]:
    """:func:`csv_bytes`'s bytes a part at a time: the header, then ``block`` rows per
    part (a file of a million rows is never whole in memory)."""
    yield csv_bytes(header, [])
    it = iter(rows)
    while part := list(itertools.islice(it, block)):
        yield csv_bytes(header, part).split(b"\r\n", 1)[1]  # without the header
