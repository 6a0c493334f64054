"""A pulled snapshot, written as a canonical CSV file: the seam to the file path.

A ``sql`` or ``rest`` pull is written row by row into a temporary CSV (UTF-8, no BOM,
comma, minimal quoting, ``\\n`` line ends) while its SHA-256 is computed, so the engine
ingests it exactly like a dropped file: the same reader, row rules and line numbers, and
the content hash as the run id, so pulling unchanged data twice is a no-op. Memory stays
flat: one row at a time goes through.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from connector.errors import SourceError

__all__ = ["Snapshot", "Watermark", "write_snapshot"]


@dataclass(frozen=True, slots=True)
class Watermark:
    """The highest value of a delta source's watermark column seen by a pull.

    ``kind`` says how to rebuild the typed value (``datetime``, ``date``, ``int``,
    ``decimal``, ``text``) and ``text`` is its ISO/decimal text; the engine stores both
    (:meth:`to_json`) and hands them back for the next pull (:meth:`from_json`).
    """

    kind: str
    text: str

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "text": self.text}

    @classmethod
    def from_json(cls, data: dict[str, str]) -> Watermark:
        return cls(kind=str(data["kind"]), text=str(data["text"]))


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One pull of a source: a canonical CSV at ``path`` (the caller deletes it, or uses
    :meth:`discard`), its hex SHA-256, row count, header and, for a watermark source, the
    new watermark to store once the run built from it is applied."""

    source: str
    path: Path
    sha256: str
    rows: int
    columns: tuple[str, ...]
    watermark: Watermark | None = None

    def discard(self) -> None:
        """Delete the snapshot file (idempotent)."""
        self.path.unlink(missing_ok=True)


class _HashingWriter(io.RawIOBase):
    """Passes bytes to a file and a SHA-256 at once."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self.digest = hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, b: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        data = bytes(b)
        self.digest.update(data)
        self._out.write(data)
        return len(data)


def _check_columns(source: str, columns: Sequence[str]) -> None:
    seen: set[str] = set()
    dupes: list[str] = []
    for name in columns:
        if not name.strip():
            raise SourceError(source, "a column has an empty name; name every column")
        if name in seen:
            dupes.append(name)
        seen.add(name)
    if dupes:
        raise SourceError(
            source, f"columns {', '.join(sorted(set(dupes)))} appear more than once; alias them"
        )


def write_snapshot(
    source: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    directory: str | Path | None = None,
    watermark: Watermark | None = None,
) -> Snapshot:
    """Write ``columns`` then ``rows`` (text values, one per column) as a canonical CSV.

    The file is removed again if writing fails. A row with the wrong number of values is
    a programming error in a reader, so it raises ``ValueError``.
    """
    _check_columns(source, columns)
    fd, name = tempfile.mkstemp(prefix=f"{source}-", suffix=".csv", dir=directory)
    path = Path(name)
    count = 0
    try:
        with os.fdopen(fd, "wb") as raw:
            hashing = _HashingWriter(raw)
            buffered = io.BufferedWriter(hashing, buffer_size=256 * 1024)  # type: ignore[type-var]
            text = io.TextIOWrapper(buffered, encoding="utf-8", newline="")
            writer = csv.writer(text, lineterminator="\n")
            writer.writerow(columns)
            width = len(columns)
            for row in rows:
                if len(row) != width:
                    raise ValueError(f"row has {len(row)} values for {width} columns")
                writer.writerow(row)
                count += 1
            text.flush()
            text.detach()
            buffered.flush()
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return Snapshot(
        source=source,
        path=path,
        sha256=hashing.digest.hexdigest(),
        rows=count,
        columns=tuple(columns),
        watermark=watermark,
    )
