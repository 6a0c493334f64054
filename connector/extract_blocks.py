"""The reader's fast path: blocks of lines that ``str.split`` parses exactly as the csv
module would, at a fraction of the cost.

The reader takes lines a block at a time (:data:`BLOCK_CHARS`); while every block
qualifies, no csv reader runs and no field needs measuring. From the first block that
does not, the csv reader parses the rest of the file.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import repeat
from typing import Final

from connector.extract_controls import NulWatch

__all__ = ["BLOCK_CHARS", "quoted_rows", "split_block"]

#: about how many characters of lines one block holds (``readlines`` hint)
BLOCK_CHARS: Final = 64 * 1024


def split_block(
    lines: list[str], ncols: int, quick_cap: int, delim: str, nul: NulWatch
) -> Iterable[list[str]] | None:
    """A block's rows when ``str.split`` parses them exactly as the csv module would, else
    None (the csv reader then parses the rest of the file, measuring every field).

    Each line must be one row, and no value may need a look of its own: no line longer
    than a quarter of the byte cap, no NUL in the block (:class:`NulWatch`). Lines without
    any quote are split on the delimiter (the line ending stays on the last field, which
    the caller strips). A block whose every field is quoted with no quote inside
    (``"a","b"``, as spreadsheets and many HR systems write) is split on
    quote-delimiter-quote (:func:`quoted_rows`).
    """
    if ncols == 1 or max(map(len, lines)) > quick_cap:  # 1: a blank line is one empty field
        return None
    if not nul.needs_csv("".join(lines)):
        return map(str.split, lines, repeat(delim))
    if nul.found:
        return None
    return quoted_rows(lines, ncols, delim)


def quoted_rows(lines: list[str], ncols: int, delim: str) -> list[list[str]] | None:
    """``"v1","v2",...`` lines as rows, or None when any line is not exactly that.

    A line qualifies when it holds ``2 * ncols`` quotes, starts and ends (before its line
    ending) with one, and splits on quote-delimiter-quote into ``ncols`` parts: the
    separators and the two ends then use every quote, so no value holds one, and the csv
    module would read the same values. Anything else (a doubled quote, an unquoted or
    multi-line value, a stray space) leaves the block to the csv reader.
    """
    want = 2 * ncols
    if list(map(str.count, lines, repeat('"'))).count(want) != len(lines):
        return None
    sep = f'"{delim}"'
    rows = []
    for line in lines:
        body = line.rstrip("\r\n")
        if body[:1] != '"' or body[-1:] != '"' or len(body) < 2:
            return None
        row = body[1:-1].split(sep)
        if len(row) != ncols:
            return None
        rows.append(row)
    return rows
