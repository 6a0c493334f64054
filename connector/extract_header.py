"""The header of an extract: its delimiter sniffed, its names cleaned and checked, with
errors that never echo a header cell.

A headerless extract has a person's row where the header should be: name, e-mail,
phone, street. Header errors reach logs, run journals and reports, so they describe a
problem by count and position, and say when the first line looks like data; they
name a header cell only when it is a close match to a column the mapping asks for.
"""

from __future__ import annotations

import _csv
import csv
import difflib
import itertools
import re
from collections.abc import Sequence
from typing import Final, TextIO

from connector.errors import ExtractError
from connector.extract_profile import SNIFFED_DELIMITERS

__all__ = [
    "checked_header",
    "duplicate_positions",
    "header_hint",
    "header_looks_like_data",
    "header_reader",
    "sniff",
]

#: a header cell that reads as a value, not a column name: a number, a date, a phone
#: number or an e-mail address (column names start with a letter and hold no '@')
_DATA_CELL: Final = re.compile(r"[+\-(]?\d[\d\s.,/:()+\-]*|[^@\s]+@[^@\s]+\.[^@\s]+")


def header_looks_like_data(header: Sequence[str]) -> bool:
    """Whether the first line reads as a data row (a headerless extract).

    True when a cell is a number, date, phone number or e-mail address: no column name is.
    """
    return any(_DATA_CELL.fullmatch(cell) for cell in header)


def header_hint(header: Sequence[str], wanted: str | None = None) -> str:
    """The end of a header error: a hint when the first line looks like data, else a
    suggestion close to ``wanted``. Never other header cells: in a headerless file they
    are a person's name, e-mail and address, and the error reaches logs and reports."""
    if header_looks_like_data(header):
        return (
            "; the first line looks like data, not column names: the extract needs a"
            " header line naming its columns"
        )
    if wanted is None:
        return ""
    close = difflib.get_close_matches(wanted.casefold(), [h.casefold() for h in header], n=1)
    if not close:
        return ""
    found = next(h for h in header if h.casefold() == close[0])
    return f" (did you mean {found!r}?)"


def duplicate_positions(header: Sequence[str]) -> list[str]:
    """ "the same name at positions 2, 5": positions only, never the names themselves."""
    at: dict[str, list[int]] = {}
    for i, name in enumerate(header, 1):
        if name:
            at.setdefault(name, []).append(i)
    return [
        "the same column name at positions " + ", ".join(map(str, spots))
        for spots in at.values()
        if len(spots) > 1
    ]


def sniff(header_line: str) -> str:
    """The candidate delimiter occurring most often outside quotes; ',' on a tie or none."""
    counts = dict.fromkeys(SNIFFED_DELIMITERS, 0)
    quoted = False
    for ch in header_line:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in counts:
            counts[ch] += 1
    best = max(SNIFFED_DELIMITERS, key=lambda d: counts[d])
    if counts[best] == 0 or sum(1 for d in counts if counts[d] == counts[best]) > 1:
        return ","
    return best


def header_reader(
    text: TextIO, delimiter: str | None, label: str
) -> tuple[_csv.Reader, list[str], str]:
    """A csv reader positioned after the header, the raw header fields, and the delimiter
    (``delimiter`` None: sniffed from the header line)."""
    first = text.readline()
    if not first.strip():
        raise ExtractError("the file is empty or its first line is blank", path=label)
    delimiter = delimiter or sniff(first)
    reader = csv.reader(itertools.chain((first,), text), delimiter=delimiter)
    try:
        raw_header = next(reader)
    except csv.Error as exc:
        raise ExtractError(f"header cannot be parsed: {exc}", path=label, line=1) from None
    return reader, raw_header, delimiter


def checked_header(raw_header: Sequence[str], label: str) -> list[str]:
    """The column names, cleaned of spaces, a BOM and quotes; an error names every empty
    or repeated name by position."""
    header = [_clean_name(h) for h in raw_header]
    problems: list[str] = []
    empty = [str(i + 1) for i, h in enumerate(header) if not h]
    if empty:
        problems.append("empty column name at position " + ", ".join(empty))
    problems += duplicate_positions(header)
    if problems:
        raise ExtractError(
            "bad header: " + "; ".join(problems) + header_hint(header), path=label, line=1
        )
    return header


def _clean_name(name: str) -> str:
    name = name.strip().lstrip("\ufeff").strip()
    for q in ('"', "'"):
        if len(name) >= 2 and name[0] == q and name[-1] == q:
            name = name[1:-1].strip()
    return name
