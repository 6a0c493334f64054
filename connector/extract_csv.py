"""The csv module under the reader: its process-wide field limit, and its parse errors
sorted into a malformed row or the file-level "unterminated quote".

A quote left open is file-level on purpose. The parser then reads the following lines
as one value, so the people on them vanish from the file, and a full sync would disable
them as leavers; rejecting one row would hide that. The csv parser runs in strict mode:
a quote never closed fails at the end of the file, and one closed by a later, unrelated
quote fails where text follows that quote. Either failure on a row that runs over more
than one line, or such a row with the wrong field count, raises "unterminated quote
starting at line N (lines N-M)". The id pass meets it first, so no row is handed out.
Quoted values over several lines with the right field count are still read (CSV allows
them). What no parser can tell apart from such a value: a stray quote closed exactly at
the end of a later field in the same column; the sync engine's mass-change guard is the
backstop for that.
"""

from __future__ import annotations

import csv
from typing import Final

from connector.errors import ExtractError

__all__ = ["FIELD_LIMIT_MESSAGE", "check_csv_error", "ensure_field_limit", "runaway_quote"]

#: the csv module's process-wide field limit is raised to at least this many characters, so
#: a long field reaches the byte-cap check (rejected with its id) instead of a parse error
_FIELD_LIMIT_FLOOR: Final = 4 * 1024 * 1024
#: how the csv module's error for a field over its limit begins
FIELD_LIMIT_MESSAGE: Final = "field larger than field limit"


def ensure_field_limit(max_field_bytes: int) -> None:
    """Raise (never lower) the csv module's field limit above the byte cap and the floor.

    The limit is process-wide; raising it only lets longer fields through to our own
    size check. It still bounds memory when a quote is never closed.
    """
    want = max(_FIELD_LIMIT_FLOOR, max_field_bytes + 1)
    if csv.field_size_limit() < want:
        csv.field_size_limit(want)


def runaway_quote(
    first: int, last: int, detail: str | int, *, columns: int, label: str
) -> ExtractError:
    """The file-level error for a quoted value that swallowed lines ``first`` to ``last``;
    ``detail`` an int is the field count of the row it opens (the header has ``columns``)."""
    if isinstance(detail, int):
        detail = f"the row it opens has {detail} fields, the header has {columns}"
    return ExtractError(
        f"unterminated quote starting at line {first} (lines {first}\u2013{last}): {detail}."
        " The rows after it cannot be trusted (a full sync would take the people on those"
        " lines for leavers), so the file is not applied. Close the quote, or double a"
        " quote inside a quoted value, and send the file again",
        path=label,
        line=first,
    )


def check_csv_error(exc: csv.Error, first: int, last: int, *, columns: int, label: str) -> None:
    """Raise the file-level error when a parse error ends a value running over lines.

    The csv reader is strict, so a quote that is never closed fails at the end of the
    file, and one closed by a later quote usually fails where text follows that quote.
    A parse error confined to one line is a malformed row, rejected by the caller.
    """
    message = str(exc)
    if "unexpected end of data" in message:
        detail = "the file ends inside the quoted value"
        raise runaway_quote(first, last, detail, columns=columns, label=label)
    if last > first:
        if "expected after" in message:
            detail = f"a quote on line {last} closes it and text follows that quote"
        elif FIELD_LIMIT_MESSAGE in message:
            detail = f"the quoted value grew over {csv.field_size_limit()} characters"
        else:
            detail = f"the row cannot be parsed ({message})"
        raise runaway_quote(first, last, detail, columns=columns, label=label)
