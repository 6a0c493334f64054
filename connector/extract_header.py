"""Header checks of an extract that never echo a header cell.

A headerless extract has a person's row where the header should be: name, e-mail,
phone, street. Header errors reach logs, run journals and reports, so they describe a
problem by count and position, and say when the first line looks like data; they
name a header cell only when it is a close match to a column the mapping asks for.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from typing import Final

__all__ = ["duplicate_positions", "header_hint", "header_looks_like_data"]

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
