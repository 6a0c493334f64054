"""Opening an extract: a path or a caller's stream, its text encoding, and where an
undecodable byte sits.

The reader reads a file more than once (the header, then the id pass, then the rows), so
a source becomes an *opener*: a callable giving a fresh binary stream at the start of the
data each time. A stream that cannot seek is copied to a temporary file first.
"""

from __future__ import annotations

import codecs
import io
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, Final

from connector.errors import ExtractError

__all__ = ["Opener", "Source", "decode_error", "detect_encoding", "open_source", "text_of"]

Source = str | Path | BinaryIO
Opener = Callable[[], BinaryIO]

_SPOOL_BYTES: Final = 8 * 1024 * 1024


class _NonClosing(io.RawIOBase):
    """Lets a TextIOWrapper sit on a caller's stream without closing it."""

    def __init__(self, inner: BinaryIO) -> None:
        self._inner = inner

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self._inner.read(len(b))
        n = len(data)
        b[:n] = data
        return n

    def close(self) -> None:  # the caller owns the stream
        super().close()


def open_source(source: Source, label: str | None) -> tuple[Opener, str, BinaryIO | None]:
    """The opener of ``source``, the label its errors name, and the temporary copy of a
    non-seekable stream (None otherwise; the caller closes it when done)."""
    if isinstance(source, str | Path):
        path = Path(source)
        if not path.is_file():
            raise ExtractError("file not found", path=label or str(path))

        def open_path() -> BinaryIO:
            return path.open("rb")

        return open_path, label or str(path), None
    stream = source
    spool: BinaryIO | None = None
    if not stream.seekable():
        copy = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)  # noqa: SIM115
        shutil.copyfileobj(stream, copy)
        copy.seek(0)
        spool = stream = copy  # type: ignore[assignment]
    start = stream.tell()

    def open_stream() -> BinaryIO:
        stream.seek(start)
        return io.BufferedReader(_NonClosing(stream))

    name = getattr(source, "name", None)
    return open_stream, label or (name if isinstance(name, str) and name else "<stream>"), spool


def detect_encoding(head: bytes, named: str | None) -> str:
    """UTF-16 and UTF-8 BOMs win (they are unambiguous); otherwise the named encoding or UTF-8."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if named is None:
        return "utf-8-sig"
    norm = codecs.lookup(named).name
    return "utf-8-sig" if norm == "utf-8" else named


def text_of(raw: BinaryIO, encoding: str) -> io.TextIOWrapper:
    """``raw`` as strictly decoded text with line endings kept (the csv module wants them)."""
    return io.TextIOWrapper(raw, encoding=encoding, errors="strict", newline="")


def decode_error(
    exc: UnicodeError, opener: Opener, encoding: str, named: str | None, label: str
) -> ExtractError:
    """The error for a decode failure: the line and the offending bytes, and which setting
    to change (``named`` is the profile's encoding, None when it was detected)."""
    shown = encoding.removesuffix("-sig")
    if not isinstance(exc, UnicodeDecodeError):
        # The codec refuses the stream as a whole (utf-16/utf-32 without a byte order
        # mark): no offending bytes to point at.
        return ExtractError(
            f"cannot decode as {shown}: {exc}; for a file without a byte order mark name"
            " the byte order in the mapping's extract.encoding (e.g. utf-16-le)",
            path=label,
            line=1,
        )
    line, bad = _locate_decode_error(opener, encoding)
    hint = (
        "name the file's encoding in the mapping's extract.encoding (e.g. cp1252)"
        if named is None
        else "check extract.encoding in the mapping"
    )
    detail = f" (bytes {bad})" if bad else ""
    return ExtractError(f"cannot decode as {shown}{detail}; {hint}", path=label, line=line)


def _locate_decode_error(opener: Opener, encoding: str) -> tuple[int, str]:
    """Slow path, only after a decode failure: the line number and the offending bytes."""
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    newlines = 0
    with opener() as raw:
        while True:
            chunk = raw.read(64 * 1024)
            try:
                newlines += decoder.decode(chunk, final=not chunk).count("\n")
            except UnicodeDecodeError as exc:
                good = exc.object[: exc.start]
                newlines += good.decode(encoding, errors="ignore").count("\n")
                return newlines + 1, exc.object[exc.start : exc.end].hex(" ")
            if not chunk:
                return newlines + 1, ""
