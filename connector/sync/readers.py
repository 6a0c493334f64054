"""Reading an extract for the engine: spooling its bytes and mapping its rows.

:data:`RecordReader` is the seam (tests pass their own); :func:`read_mapped_records`
applies the source's mapping to the file with :mod:`connector.records`.

The file is read once: its ids are counted as the rows go by. Only when an id repeats
does iterating the records raise :class:`~connector.errors.ReadAgainError` after the
last one; the caller then drops what it made of them and iterates
:meth:`Rereadable.again`, which reads the file a second time with the repeated ids
known and rejects every row carrying one (:mod:`connector.sync.planning`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import tempfile
from collections.abc import Callable, Collection, Iterable, Iterator
from pathlib import Path
from typing import IO, Any, Protocol, runtime_checkable

import yaml

from connector.config import Source
from connector.errors import ReadAgainError
from connector.mapping import Mapping, load_mapping
from connector.records import MappedRecord, RecordStream, iter_records
from connector.report import (
    RejectedRow,
)
from connector.sources.xlsx import as_csv, csv_profile, is_xlsx

__all__ = [
    "ExtractRecords",
    "MappedExtract",
    "RecordReader",
    "Rereadable",
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


@runtime_checkable
class Rereadable(Protocol):
    """Records whose iteration may raise :class:`~connector.errors.ReadAgainError`: an id
    repeats, so the records handed out must be dropped and :meth:`again` read instead."""

    def again(self, duplicates: Collection[int]) -> ExtractRecords:
        """The same file read a second time, every row with a repeated id rejected."""
        ...


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

    ``open_stream(duplicates)`` makes the stream: with None, the ids are counted while
    the rows are read (:class:`Rereadable`); with the repeated ids, every row carrying
    one is rejected. ``cleanup`` runs once the records are read (an ``.xlsx`` extract's
    converted CSV), and not before the second read when an id repeats.
    """

    def __init__(
        self,
        open_stream: Callable[[Collection[int] | None], RecordStream],
        cleanup: Callable[[], None] | None = None,
        *,
        duplicates: Collection[int] | None = None,
    ) -> None:
        self._open = open_stream
        self._stream = open_stream(duplicates)
        self._cleanup = cleanup

    def __iter__(self) -> Iterator[MappedRecord]:
        read_again = False
        try:
            yield from self._stream
        except ReadAgainError:
            read_again = True  # the converted file is read again: keep it
            raise
        finally:
            self._stream.close()
            if not read_again:
                self._clean()

    def again(self, duplicates: Collection[int]) -> MappedExtract:
        """See :class:`Rereadable`; the second read owns the cleanup from here on."""
        cleanup, self._cleanup = self._cleanup, None
        try:
            return MappedExtract(self._open, cleanup, duplicates=duplicates)
        except BaseException:
            if cleanup is not None:
                cleanup()
            raise

    def _clean(self) -> None:
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
    """The default record reader: the source's mapping applied to the extract's rows,
    read once (:class:`Rereadable`)."""
    spec: str | Path
    if source.mapping_path is not None:
        spec = source.mapping_path
    else:
        spec = yaml.safe_dump(source.mapping, sort_keys=False)
    mapping = load_mapping(spec)
    # The engine spools streams under the dropped file's name, so path.name names it.
    if not is_xlsx(path):
        return MappedExtract(_opener(path, mapping, path.name))
    # A workbook is converted, streaming, to a CSV with one line per sheet row, so the
    # CSV reader's rules and line numbers apply unchanged (connector.sources.xlsx).
    converted = contextlib.ExitStack()
    try:
        csv_path = converted.enter_context(
            as_csv(path, sheet=mapping.extract_profile.sheet, label=path.name)
        )
        as_read = dataclasses.replace(mapping, extract_profile=csv_profile(mapping.extract_profile))
        return MappedExtract(_opener(csv_path, as_read, path.name), converted.close)
    except BaseException:
        converted.close()
        raise


def _opener(
    path: Path, mapping: Mapping, label: str
) -> Callable[[Collection[int] | None], RecordStream]:
    """Opens ``path``'s records: ids counted in the pass, or the repeated ids known."""

    def open_stream(duplicates: Collection[int] | None) -> RecordStream:
        return iter_records(
            path,
            mapping,
            label=label,
            ids_in_pass=duplicates is None,
            duplicates=duplicates,
        )

    return open_stream
