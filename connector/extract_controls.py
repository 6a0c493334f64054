"""Control characters in an extract: NUL found cheaply per block, ids checked exactly.

An id ``100004\\0`` is not ``100004``: taken as a new person, it would make the real
100004 look like a leaver. So a row is rejected (reason ``control_character``) when

- its id holds any character that is not printable (``str.isprintable``: C0 and C1
  controls including tab and line breaks, DEL, zero-width and other format
  characters, non-breaking spaces inside it), checked in the id pass at no cost to
  clean rows; or
- any of its values holds NUL, which C-based systems take for the end of the text.

Other control characters in values other than the id are passed on as text (the JSON
of a request escapes them). Finding them would mean looking at every byte of every
value: a ``bytes.translate`` over the file cost about 3,500 instructions per row,
4.6 % of read → map → serialize → batch (``docs/benchmarks.md``), while looking for NUL
in the text the reader already joins per block is one ``memchr``. So each block of lines
is looked at for NUL (:class:`NulWatch`), and only from the first block holding one on
are rows checked one by one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TextIO

__all__ = [
    "NulWatch",
    "control_columns",
    "describe_unprintable",
    "shown_id",
]


class NulWatch:
    """Watches the blocks of lines the reader parses for NUL; ``found`` once one held it.

    The check is ``"\\0" in block``: a ``memchr`` over text the reader joins anyway for its
    quote check, so a file without NUL costs next to nothing, and decoded text needs no
    care for the encoding (a UTF-16 file has zero bytes, not NUL characters).
    """

    __slots__ = ("found",)

    def __init__(self) -> None:
        self.found = False

    def needs_csv(self, joined: str) -> bool:
        """Whether a block must go to the csv path: it has a quote or a NUL (noted)."""
        if "\0" in joined:
            self.found = True
        return self.found or '"' in joined

    def blocks(self, first: list[str], text: TextIO, size: int) -> Iterator[list[str]]:
        """``first``, then blocks of lines of about ``size`` characters, each looked at first."""
        block = first
        while block:
            if not self.found and "\0" in "".join(block):
                self.found = True
            yield block
            block = text.readlines(size)


def control_columns(header: Sequence[str], row: Sequence[str]) -> list[str]:
    """``Column (U+0000)`` for each value of ``row`` holding NUL: the column, never the
    value."""
    return [f"{header[i]} (U+0000)" for i, v in enumerate(row) if "\0" in v]


def describe_unprintable(value: str) -> str:
    """``U+0000``: the code point of the first unprintable character (never the value)."""
    for ch in value:
        if not ch.isprintable():
            return f"U+{ord(ch):04X}"
    return "none"


def shown_id(external_id: str) -> str:
    """An id for reports: unprintable characters written as ``\\uXXXX`` escapes."""
    if external_id.isprintable():
        return external_id
    return "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in external_id)
