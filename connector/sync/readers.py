"""Reading an extract for the engine: spooling its bytes and mapping its rows.

:data:`RecordReader` is the seam (tests pass their own); :func:`read_mapped_records`
applies the source's mapping to the file with :mod:`connector.records`.
"""

from __future__ import annotations

import contextlib
import hashlib
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any, Protocol

import yaml

from connector.config import Source
from connector.mapping import load_mapping
from connector.records import MappedRecord, RecordStream, iter_records
from connector.report import (
    RejectedRow,
)
from connector.sources.xlsx import as_csv, csv_profile, is_xlsx

__all__ = [
    "ExtractRecords",
    "MappedExtract",
    "RecordReader",
    "read_mapped_records",
    "spooled",
]


class ExtractRecords(Protocol):
    """Mapped records of an extract, streamed, plus what was rejected and counted."""

    def __iter__(self) -> Iterator[Any]: ...

    @property
    def rejected(self) -> Iterable[Any]: ...

    @property
    def rows(self) -> int: ...


RecordReader = Callable[[Source, Path], ExtractRecords]


@contextlib.contextmanager
def spooled(stream: IO[bytes] | Path, name: str) -> Iterator[tuple[Path, str]]:
    """A file path with the extract's bytes and their SHA-256.

    A stream is copied to a private temporary folder under the dropped file's own base
    name, so every message that names the file (reader errors, rejected rows) names the
    file the operator dropped, not a spool file.
    """
    if isinstance(stream, Path):
        digest = hashlib.sha256()
        with stream.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        yield stream, digest.hexdigest()
        return
    base = Path(name.replace("\\", "/").rsplit("/", 1)[-1]).name or "extract.csv"
    if base in (".", ".."):
        base = "extract.csv"
    with tempfile.TemporaryDirectory(prefix="connector-extract-") as folder:
        path = Path(folder) / base
        digest = hashlib.sha256()
        with path.open("wb") as out:
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                digest.update(chunk)
                out.write(chunk)
        yield path, digest.hexdigest()


class MappedExtract:
    """Adapts :class:`connector.records.RecordStream` to :class:`ExtractRecords`.

    ``cleanup`` runs once the records are read (an ``.xlsx`` extract's converted CSV)."""

    def __init__(self, stream: RecordStream, cleanup: Callable[[], None] | None = None) -> None:
        self._stream = stream
        self._cleanup = cleanup

    def __iter__(self) -> Iterator[MappedRecord]:
        try:
            yield from self._stream
        finally:
            self._stream.close()
            if self._cleanup is not None:
                self._cleanup()
                self._cleanup = None

    @property
    def rejected(self) -> list[RejectedRow]:
        return [
            RejectedRow(
                line=r.line,
                reason=f"{r.reason_code}: {r.message}",
                external_id=r.external_id or None,
            )
            for r in self._stream.rejected
        ]

    @property
    def rows(self) -> int:
        return self._stream.stats.rows_read


def read_mapped_records(source: Source, path: Path) -> ExtractRecords:
    """The default record reader: the source's mapping applied to the extract's rows."""
    spec: str | Path
    if source.mapping_path is not None:
        spec = source.mapping_path
    else:
        spec = yaml.safe_dump(source.mapping, sort_keys=False)
    mapping = load_mapping(spec)
    # The engine spools streams under the dropped file's name, so path.name names it.
    if not is_xlsx(path):
        return MappedExtract(iter_records(path, mapping, label=path.name))
    # A workbook is converted, streaming, to a CSV with one line per sheet row, so the
    # CSV reader's rules and line numbers apply unchanged (connector.sources.xlsx).
    converted = contextlib.ExitStack()
    try:
        csv_path = converted.enter_context(
            as_csv(path, sheet=mapping.extract_profile.sheet, label=path.name)
        )
        profile = csv_profile(mapping.extract_profile)
        stream = iter_records(csv_path, mapping, profile=profile, label=path.name)
    except BaseException:
        converted.close()
        raise
    return MappedExtract(stream, converted.close)
