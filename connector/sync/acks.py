"""A run's acknowledged batches: a small inline tail and sealed, append-only chunks.

The journal is rewritten after every acknowledgement, so it must stay small however long
the run is (a 1,000,000-record first load is 20,000 batches over days). :class:`AckLog`
keeps the acknowledgements in the order they arrived:

* the **tail**: the latest ones, stored inline in the journal (its ``batches`` key, the
  form every journal has always had), at most :data:`ACK_CHUNK_SIZE` of them once saved;
* **sealed chunks**: every :data:`ACK_CHUNK_SIZE` acknowledgements are moved out of the
  tail into one chunk, written once and never changed. The journal keeps only the number
  of chunks and acknowledgements sealed, the indices they acknowledged as ranges, and
  the name of the last chunk (``ackChunks``).

A chunk's name holds a hash of its content and of the previous chunk's name, and each
chunk names the one before it: a hash chain. The journal's few bytes reach every chunk
(read back from the newest, lazily, only when a caller iterates or slices past the
tail), and a chunk is never overwritten with different content: a writer that lost the
source's lock, or a save interrupted between a chunk and the journal, leaves at most an
unreferenced chunk behind, never a changed one.

Durability is the journal's: a chunk counts only once a saved journal names it, and
chunks are written before the journal that names them (:meth:`AckLog.to_seal`, then
:meth:`AckLog.sealed` after the write). Journals written before chunks existed (every
acknowledgement inline) load as a tail, and their first save seals it.

Pure: no I/O. :class:`~connector.sync.run_store.RunStore` writes the chunks and attaches
the :data:`ChunkReader` that reads them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, overload

import orjson

from connector.errors import StateError

__all__ = [
    "ACK_CHUNK_SIZE",
    "AckLog",
    "AckedBatch",
    "ChunkReader",
    "SealedChunk",
    "decode_chunk",
    "index_ranges",
]

ACK_CHUNK_SIZE = 100
"""Acknowledgements per sealed chunk (and the most the journal keeps inline once saved)."""


@dataclass(slots=True)
class AckedBatch:
    """A batch the service acknowledged (202): which one, when, and what it refused."""

    index: int
    """Its position in the plan's batches (acknowledgements arrive out of order)."""
    size: int | None
    sent_at: datetime
    request_id: str | None
    rejected: dict[str, tuple[str | None, str]] = field(default_factory=dict)
    """Records the service refused (400) in it: external id → (error code, message)."""

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any], position: int) -> AckedBatch:
        # Journals written before the window kept acknowledgements in order, without "i".
        return cls(
            index=int(doc.get("i", position)),
            size=int(doc["n"]) if doc.get("n") is not None else None,
            sent_at=datetime.fromisoformat(doc["sentAt"]),
            request_id=doc.get("requestId"),
            rejected={k: (v[0], str(v[1])) for k, v in (doc.get("rejected") or {}).items()},
        )

    def to_doc(self) -> dict[str, Any]:
        out: dict[str, Any] = {"i": self.index}
        if self.size is not None:
            out["n"] = self.size
        out["sentAt"] = self.sent_at.astimezone(UTC).isoformat()
        out["requestId"] = self.request_id
        if self.rejected:
            out["rejected"] = {k: list(v) for k, v in self.rejected.items()}
        return out


@dataclass(frozen=True, slots=True)
class SealedChunk:
    """One chunk to write: its number, name (``<number>-<hash>``) and JSON body."""

    number: int
    name: str
    body: bytes
    acks: tuple[AckedBatch, ...]


ChunkReader = Callable[[str], bytes]
"""Reads a sealed chunk's JSON body by its name (:class:`StateError` when missing)."""


def _chunk_name(number: int, prev: str | None, acks: Sequence[AckedBatch]) -> tuple[str, bytes]:
    body = orjson.dumps({"prev": prev, "acks": [a.to_doc() for a in acks]})
    digest = hashlib.sha256((prev or "").encode() + b"\n" + body).hexdigest()[:20]
    return f"{number:06d}-{digest}", body


def decode_chunk(name: str, body: bytes) -> tuple[list[AckedBatch], str | None]:
    """A chunk's acknowledgements and the name of the chunk before it."""
    try:
        doc = orjson.loads(body)
        acks = [AckedBatch.from_doc(a, 0) for a in doc["acks"]]
        prev = doc.get("prev")
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        why = type(exc).__name__
        raise StateError(f"acknowledgement chunk {name}: unreadable ({why})") from exc
    return acks, None if prev is None else str(prev)


def index_ranges(indices: Iterable[int]) -> list[list[int]]:
    """Sorted indices as inclusive ``[first, last]`` ranges."""
    out: list[list[int]] = []
    for i in sorted(set(indices)):
        if out and out[-1][1] == i - 1:
            out[-1][1] = i
        else:
            out.append([i, i])
    return out


def _earliest(acks: Iterable[AckedBatch], since: datetime | None) -> datetime | None:
    times = [a.sent_at for a in acks]
    return min([*times, since] if since is not None else times, default=None)


class AckLog(Sequence[AckedBatch]):
    """Acknowledged batches in arrival order: sealed chunks (read lazily) then the tail.

    ``len``, truth and :attr:`indices` never read a chunk; iterating, indexing or slicing
    into the sealed part reads the chunks needed (newest first) once."""

    __slots__ = (
        "_chunks",
        "_first",
        "_last",
        "_loaded",
        "_ranges",
        "_records",
        "_sealed",
        "reader",
        "tail",
    )

    def __init__(self, tail: Iterable[AckedBatch] = ()) -> None:
        self.tail: list[AckedBatch] = list(tail)
        self.reader: ChunkReader | None = None
        self._sealed = 0  # acknowledgements in sealed chunks
        self._chunks = 0
        self._last: str | None = None
        self._ranges: list[list[int]] = []
        self._records = 0  # records in sealed batches
        self._first: datetime | None = None  # the earliest sealed send
        self._loaded: list[AckedBatch] | None = []  # the sealed part, once read (None: not)

    # -- the stored form ------------------------------------------------------------------

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> AckLog:
        """From a journal document: ``batches`` (the tail) and ``ackChunks`` if sealed."""
        sealed = doc.get("ackChunks")
        offset = int(sealed["acks"]) if isinstance(sealed, Mapping) else 0
        inline = doc.get("batches") or []
        log = cls(AckedBatch.from_doc(b, offset + k) for k, b in enumerate(inline))
        if isinstance(sealed, Mapping) and sealed.get("chunks"):
            log._sealed, log._chunks = offset, int(sealed["chunks"])
            log._last = str(sealed["last"])
            log._ranges = [[int(a), int(b)] for a, b in sealed.get("ranges") or []]
            log._records = int(sealed.get("records") or 0)
            log._first = datetime.fromisoformat(sealed["firstSentAt"])
            log._loaded = None
        return log

    def to_doc(self) -> dict[str, Any]:
        """The journal keys: ``batches`` (the tail), ``ackChunks`` once chunks are sealed."""
        doc: dict[str, Any] = {"batches": [b.to_doc() for b in self.tail]}
        if self._chunks:
            doc["ackChunks"] = {
                "chunks": self._chunks,
                "acks": self._sealed,
                "last": self._last,
                "ranges": self._ranges,
                "records": self._records,
                "firstSentAt": self._first.astimezone(UTC).isoformat() if self._first else None,
            }
        return doc

    # -- sealing --------------------------------------------------------------------------

    def to_seal(self, size: int = ACK_CHUNK_SIZE) -> list[SealedChunk]:
        """The chunks the tail fills (nothing changes until :meth:`sealed`)."""
        out: list[SealedChunk] = []
        prev, number = self._last, self._chunks
        for start in range(0, len(self.tail) - size + 1, size):
            acks = tuple(self.tail[start : start + size])
            name, body = _chunk_name(number, prev, acks)
            out.append(SealedChunk(number, name, body, acks))
            prev, number = name, number + 1
        return out

    def sealed(self, chunk: SealedChunk) -> None:
        """``chunk`` (the next one :meth:`to_seal` returned) is written: move it out."""
        if chunk.number != self._chunks or tuple(self.tail[: len(chunk.acks)]) != chunk.acks:
            raise ValueError(f"chunk {chunk.name} is not the next one to seal")
        del self.tail[: len(chunk.acks)]
        self._chunks += 1
        self._sealed += len(chunk.acks)
        self._last = chunk.name
        self._ranges = index_ranges([*self._indices_sealed(), *(a.index for a in chunk.acks)])
        self._records += sum(a.size or 0 for a in chunk.acks)
        self._first = _earliest(chunk.acks, self._first)
        if self._loaded is not None:
            self._loaded.extend(chunk.acks)

    # -- reading --------------------------------------------------------------------------

    @property
    def indices(self) -> set[int]:
        """Batch indices acknowledged so far (no chunk read)."""
        return {*self._indices_sealed(), *(b.index for b in self.tail)}

    @property
    def records_sent(self) -> int:
        """Records in the acknowledged batches (no chunk read)."""
        return self._records + sum(b.size or 0 for b in self.tail)

    @property
    def first_sent_at(self) -> datetime | None:
        """When the earliest acknowledged batch was sent (no chunk read)."""
        return _earliest(self.tail, self._first)

    @property
    def sealed_count(self) -> int:
        return self._sealed

    def _indices_sealed(self) -> Iterator[int]:
        for first, last in self._ranges:
            yield from range(first, last + 1)

    def append(self, batch: AckedBatch) -> None:
        self.tail.append(batch)

    def __len__(self) -> int:
        return self._sealed + len(self.tail)

    def __bool__(self) -> bool:
        return len(self) > 0

    def __iter__(self) -> Iterator[AckedBatch]:
        if self._sealed:
            yield from self._sealed_part()
        yield from self.tail

    @overload
    def __getitem__(self, key: int) -> AckedBatch: ...

    @overload
    def __getitem__(self, key: slice) -> list[AckedBatch]: ...

    def __getitem__(self, key: int | slice) -> AckedBatch | list[AckedBatch]:
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if start >= self._sealed and step == 1:
                return self.tail[start - self._sealed : max(stop - self._sealed, 0)]
            return [*self][key]
        position = key + len(self) if key < 0 else key
        if not 0 <= position < len(self):
            raise IndexError(key)
        if position >= self._sealed:
            return self.tail[position - self._sealed]
        return self._sealed_part()[position]

    def _sealed_part(self) -> list[AckedBatch]:
        if self._loaded is None:
            self._loaded = self._read_chunks()
        return self._loaded

    def _read_chunks(self) -> list[AckedBatch]:
        if self.reader is None:
            raise StateError("the run's sealed acknowledgement chunks cannot be read here")
        chunks: list[list[AckedBatch]] = []
        name: str | None = self._last
        while name is not None:
            acks, name = decode_chunk(name, self.reader(name))
            chunks.append(acks)
        out = [a for acks in reversed(chunks) for a in acks]
        if len(chunks) != self._chunks or len(out) != self._sealed:
            raise StateError(
                f"the run's acknowledgement chunks hold {len(out)} acknowledgements in"
                f" {len(chunks)} chunks; its journal says {self._sealed} in {self._chunks}"
            )
        return out

    def __repr__(self) -> str:
        return f"AckLog({self._sealed} sealed in {self._chunks} chunks, {len(self.tail)} inline)"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, AckLog):
            return list(self) == list(other)
        if isinstance(other, list):
            return list(self) == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]
