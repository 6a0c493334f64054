"""Control characters in an extract: found cheaply per block, ids checked exactly.

An id ``100004\\0`` is not ``100004``: taken as a new person, it would make the real
100004 look like a leaver. So a row is rejected (reason ``control_character``) when

- its id holds any character that is not printable (``str.isprintable``: C0 and C1
  controls including tab and line breaks, DEL, zero-width and other format
  characters, non-breaking spaces inside it), checked in the id pass at no cost to
  clean rows; or
- any of its values holds a C0 control character other than tab, line feed and carriage
  return, or DEL (:data:`FORBIDDEN`): NUL, which C-based systems take for the end of the
  text, and the others (escape, bell, form feed, ...), which no HR field holds on purpose
  and which a target system may drop or render as garbage.

Tab, line feed and carriage return stay legitimate inside values: a quoted CSV field may
hold an address over several lines or a tab; the JSON of a request escapes them. C1
controls (U+0080 to U+009F) in values other than the id are kept as text.

Each block of lines the reader parses is looked at once (:func:`holds_control`: one
``in``, a ``memchr``, per forbidden character over text the reader joins anyway for its
quote check); only from the first block holding one on are rows checked one by one, so a
clean file pays for the block scan alone (``docs/benchmarks.md``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Final, TextIO

__all__ = [
    "FORBIDDEN",
    "NulWatch",
    "control_columns",
    "describe_unprintable",
    "holds_control",
    "shown_id",
]

FORBIDDEN: Final = (
    *map(chr, range(0x00, 0x09)),
    "\x0b",
    "\x0c",
    *map(chr, range(0x0E, 0x20)),
    "\x7f",
)
"""The characters no value may hold: C0 controls except tab, LF and CR, and DEL."""
_FORBIDDEN_RE: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def holds_control(text: str) -> bool:
    """Whether ``text`` holds a :data:`FORBIDDEN` character: one ``in`` per character (a
    ``memchr``; a regex or ``str.translate`` over the text costs several times more)."""
    return any(map(text.__contains__, FORBIDDEN))


class NulWatch:
    """Watches the blocks of lines the reader parses for a :data:`FORBIDDEN` control (NUL
    or another); ``found`` once a block held one.

    The check is :func:`holds_control` over text the reader joins anyway for its quote
    check, so a clean file costs a few ``memchr`` per block, and decoded text needs no care
    for the encoding (a UTF-16 file has zero bytes, not NUL characters).
    """

    __slots__ = ("found",)

    def __init__(self) -> None:
        self.found = False

    def needs_csv(self, joined: str) -> bool:
        """Whether a block must go to the csv path: it has a quote or a control (noted)."""
        if not self.found and holds_control(joined):
            self.found = True
        return self.found or '"' in joined

    def blocks(self, first: list[str], text: TextIO, size: int) -> Iterator[list[str]]:
        """``first``, then blocks of lines of about ``size`` characters, each looked at first."""
        block = first
        while block:
            if not self.found and holds_control("".join(block)):
                self.found = True
            yield block
            block = text.readlines(size)


def control_columns(header: Sequence[str], row: Sequence[str]) -> list[str]:
    """``Column (U+001B)`` for each value of ``row`` holding a :data:`FORBIDDEN` character
    (the first one's code point): the column, never the value."""
    return [
        f"{header[i]} (U+{ord(found[0]):04X})"
        for i, v in enumerate(row)
        if (found := _FORBIDDEN_RE.search(v))
    ]


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
