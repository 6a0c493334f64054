"""Control characters in an extract: NUL found cheaply in the bytes, ids checked exactly.

An id ``100004\\0`` is not ``100004``: taken as a new person, it would make the real
100004 look like a leaver. So a row is rejected (reason ``control_character``) when

- its id holds any character that is not printable (``str.isprintable``: C0 and C1
  controls including tab and line breaks, DEL, zero-width and other format
  characters, non-breaking spaces inside it), checked in the id pass at no cost to
  clean rows; or
- any of its values holds NUL, which C-based systems take for the end of the text.

Other control characters in values other than the id are passed on as text (the JSON
of a request escapes them). Finding them would mean looking at every byte of every
value: one ``bytes.translate`` per chunk costs about 2,300 instructions per row,
4.6 % of read → map → serialize → batch (``docs/benchmarks.md``), while one ``memchr``
for NUL costs about 100. So the bytes are scanned for NUL as they are read
(:class:`ControlScan`), and only a file in which a NUL went by has its rows checked one
by one from that point on. In encodings where a zero byte is part of other characters
(UTF-16, UTF-32) or bytes below 0x80 are not ASCII (EBCDIC) every row is checked.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import BinaryIO, Final

__all__ = [
    "ControlScan",
    "control_columns",
    "describe_unprintable",
    "id_is_clean",
    "shown_id",
]

_ASCII: Final = "".join(map(chr, range(128)))


def _bytes_are_chars(encoding: str) -> bool:
    """Whether every byte below 0x80 decodes to that ASCII character in ``encoding``
    (UTF-8 with or without BOM, cp1252, latin-1: yes; UTF-16, EBCDIC: no)."""
    try:
        return bytes(range(128)).decode(encoding) == _ASCII
    except (UnicodeError, LookupError):
        return False


class ControlScan(io.BufferedIOBase):
    """Passes a binary stream through, noting whether a NUL byte went by (``found``).

    ``found`` starts True for an encoding whose bytes cannot be scanned this way, so the
    caller checks every row.
    """

    def __init__(self, inner: BinaryIO, encoding: str) -> None:
        super().__init__()
        self._inner = inner
        self.found = not _bytes_are_chars(encoding)

    def readable(self) -> bool:
        return True

    def _scan(self, data: bytes) -> bytes:
        if not self.found and b"\0" in data:
            self.found = True
        return data

    def read(self, size: int | None = -1) -> bytes:
        return self._scan(self._inner.read(-1 if size is None else size) or b"")

    def read1(self, size: int = -1) -> bytes:
        read1 = getattr(self._inner, "read1", None)
        data = read1(size) if read1 is not None else self._inner.read(size)
        return self._scan(data or b"")

    def close(self) -> None:  # the caller owns the inner stream
        super().close()


def id_is_clean(external_id: str) -> bool:
    """Whether an (already stripped) id holds only printable characters."""
    return external_id.isprintable()


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
