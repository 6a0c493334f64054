"""Planned operations kept compact: small columns in memory, payloads spooled to a file.

A run may plan a million records (a first load, a full re-send). Kept as objects with
their SCIM payloads as dicts, that is ~5 KB a record; here each record costs its
externalId plus a few dozen bytes of columns, and its payload lives in a temporary file
as the JSON bytes that are sent (:class:`PayloadSpool`), read back a request at a time.

:class:`OpTable` is the one representation under both views the engine uses: the delta's
changes (:class:`connector.sync.delta.ChangeList`) and the stored plan's operations
(:class:`connector.sync.plans.PlanOps`). Rows are added in order and read by position;
:meth:`OpTable.take` makes a reordered (or filtered) table over the same spool.
"""

from __future__ import annotations

import tempfile
from array import array
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from typing import IO, Any, TypeVar, overload

import orjson

from connector.state.base import FINGERPRINT_SIZE

__all__ = ["OpTable", "PayloadMap", "PayloadSpool", "RowView"]

_T = TypeVar("_T")

_ACTIVE = 1
_DEACTIVATION = 2


class RowView(Sequence[_T]):
    """A sequence whose items are made from rows when read (:meth:`_row`); compares
    equal to a list of the same items."""

    def _row(self, i: int) -> _T:
        raise NotImplementedError

    @overload
    def __getitem__(self, i: int) -> _T: ...

    @overload
    def __getitem__(self, i: slice) -> list[_T]: ...

    def __getitem__(self, i: int | slice) -> _T | list[_T]:
        n = len(self)
        if isinstance(i, slice):
            return [self._row(k) for k in range(n)[i]]
        k = i + n if i < 0 else i
        if not 0 <= k < n:
            raise IndexError(i)
        return self._row(k)

    def __iter__(self) -> Iterator[_T]:
        return (self._row(k) for k in range(len(self)))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RowView | list):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]


class PayloadSpool:
    """Append-only JSON payloads in an anonymous temporary file (deleted when closed)."""

    def __init__(self) -> None:
        # Lives as long as the plan that reads it (closed with it, or when collected).
        self._file: IO[bytes] = tempfile.TemporaryFile(prefix="connector-plan-")  # noqa: SIM115
        self._end = 0
        self._dirty = False

    def add(self, blob: bytes) -> int:
        """Append ``blob``; returns its offset."""
        offset = self._end
        self._file.write(blob)
        self._end += len(blob)
        self._dirty = True
        return offset

    def read(self, offset: int, size: int) -> bytes:
        if self._dirty:
            self._file.flush()
            self._dirty = False
        self._file.seek(offset)
        blob = self._file.read(size)
        self._file.seek(self._end)
        return blob

    def close(self) -> None:
        self._file.close()


def payload_bytes(data: Mapping[str, Any]) -> bytes:
    """The JSON of a payload exactly as it appears inside a bulk operation."""
    return orjson.dumps(data, default=dict)


class OpTable:
    """Rows of (kind, externalId, line, fingerprint, active, deactivation, previous run,
    level, manager, payload), stored as columns; payloads in a :class:`PayloadSpool`."""

    def __init__(self, spool: PayloadSpool | None = None) -> None:
        self.spool = spool if spool is not None else PayloadSpool()
        self._names: list[str | None] = [None]
        self._name_ids: dict[str | None, int] = {None: 0}
        self.ext: list[str] = []
        self._kind = array("H")
        self._line = array("q")
        self._fp = bytearray()
        self._flags = bytearray()
        self._prev = array("I")
        self._level = array("i")
        self._manager: list[str | None] = []
        self._offset = array("q")
        self._size = array("q")
        self._positions: dict[str, int] | None = None

    def __len__(self) -> int:
        return len(self.ext)

    def _name(self, value: str | None) -> int:
        got = self._name_ids.get(value)
        if got is None:
            got = self._name_ids[value] = len(self._names)
            self._names.append(value)
        return got

    def add(
        self,
        kind: str,
        external_id: str,
        line: int | None,
        fingerprint: bytes,
        active: bool,
        payload: Mapping[str, Any] | bytes | None,
        *,
        deactivation: bool = False,
        prev: str | None = None,
        level: int = 0,
        manager: str | None = None,
    ) -> None:
        """Append a row; a mapping payload is serialized (:func:`payload_bytes`)."""
        if len(fingerprint) != FINGERPRINT_SIZE:
            raise ValueError(f"record {external_id!r}: a fingerprint has {FINGERPRINT_SIZE} bytes")
        if payload is None:
            offset, size = -1, 0
        else:
            blob = payload if isinstance(payload, bytes) else payload_bytes(payload)
            offset, size = self.spool.add(blob), len(blob)
        self.ext.append(external_id)
        self._kind.append(self._name(kind))
        self._line.append(-1 if line is None else line)
        self._fp += fingerprint
        self._flags.append((_ACTIVE if active else 0) | (_DEACTIVATION if deactivation else 0))
        self._prev.append(self._name(prev))
        self._level.append(level)
        self._manager.append(None if manager is None else self._names[self._name(manager)])
        self._offset.append(offset)
        self._size.append(size)
        self._positions = None

    def copy_row(self, src: OpTable, i: int, *, kind: str | None = None) -> None:
        """Append row ``i`` of ``src`` (same spool), optionally with another kind."""
        if src.spool is not self.spool:
            raise ValueError("rows are copied only between tables over the same spool")
        self.ext.append(src.ext[i])
        self._kind.append(self._name(src.kind(i) if kind is None else kind))
        self._line.append(src._line[i])
        self._fp += src._fp[i * FINGERPRINT_SIZE : (i + 1) * FINGERPRINT_SIZE]
        self._flags.append(src._flags[i])
        self._prev.append(self._name(src.prev(i)))
        self._level.append(src._level[i])
        self._manager.append(src._manager[i])
        self._offset.append(src._offset[i])
        self._size.append(src._size[i])
        self._positions = None

    def take(
        self, rows: Iterable[int], levels: Iterable[int] | None = None, *, kind: str | None = None
    ) -> OpTable:
        """A new table of ``rows`` in that order (same spool), with new ``levels`` if
        given and every row's kind set to ``kind`` if given."""
        out = OpTable(self.spool)
        for i in rows:
            out.copy_row(self, i, kind=kind)
        if levels is not None:
            out._level = array("i", levels)
            if len(out._level) != len(out.ext):
                raise ValueError("one level per row")
        return out

    # -- reading a row -------------------------------------------------------------------

    def kind(self, i: int) -> str:
        name = self._names[self._kind[i]]
        assert name is not None
        return name

    def line(self, i: int) -> int | None:
        line = self._line[i]
        return None if line < 0 else line

    def fingerprint(self, i: int) -> bytes:
        return bytes(self._fp[i * FINGERPRINT_SIZE : (i + 1) * FINGERPRINT_SIZE])

    def active(self, i: int) -> bool:
        return bool(self._flags[i] & _ACTIVE)

    def deactivation(self, i: int) -> bool:
        return bool(self._flags[i] & _DEACTIVATION)

    def prev(self, i: int) -> str | None:
        return self._names[self._prev[i]]

    def level(self, i: int) -> int:
        return self._level[i]

    @property
    def levels(self) -> array[int]:
        return self._level

    def manager(self, i: int) -> str | None:
        return self._manager[i]

    def payload_size(self, i: int) -> int:
        """Bytes of the payload's JSON; -1 for a row without payload."""
        return -1 if self._offset[i] < 0 else self._size[i]

    def set_prev(self, values: Iterable[str | None]) -> None:
        """Each row's previous run, in order."""
        self._prev = array("I", (self._name(v) for v in values))
        if len(self._prev) != len(self.ext):
            raise ValueError("one previous run per row")

    def payload(self, i: int) -> bytes | None:
        """The payload's JSON bytes (None: a row without payload)."""
        offset = self._offset[i]
        return None if offset < 0 else self.spool.read(offset, self._size[i])

    def data(self, i: int) -> dict[str, Any] | None:
        blob = self.payload(i)
        if blob is None:
            return None
        data: dict[str, Any] = orjson.loads(blob)
        return data

    def position(self, external_id: str) -> int | None:
        """The first row of ``external_id`` (an index built on first use)."""
        if self._positions is None:
            positions: dict[str, int] = {}
            for k, ext in enumerate(self.ext):
                positions.setdefault(ext, k)
            self._positions = positions
        return self._positions.get(external_id)


class PayloadMap(Mapping[str, Mapping[str, Any]]):
    """externalId → payload, decoded when looked up: payloads added as JSON bytes go to
    a spool; whole plans are looked into where they are (:meth:`add_table`)."""

    def __init__(self) -> None:
        self._spool: PayloadSpool | None = None
        self._at: dict[str, int] = {}
        self._offset = array("q")
        self._size = array("q")
        self._tables: list[tuple[OpTable, Collection[str]]] = []

    def add(self, external_id: str, blob: bytes) -> None:
        if external_id in self._at:
            return
        if self._spool is None:
            self._spool = PayloadSpool()
        self._at[external_id] = len(self._offset)
        self._offset.append(self._spool.add(blob))
        self._size.append(len(blob))

    def add_table(self, table: OpTable, external_ids: Collection[str]) -> None:
        """Look ``external_ids`` up in ``table`` (a stored plan), after what was added."""
        self._tables.append((table, external_ids))

    def _blob(self, external_id: str) -> bytes | None:
        k = self._at.get(external_id)
        if k is not None and self._spool is not None:
            return self._spool.read(self._offset[k], self._size[k])
        for table, ids in self._tables:
            if external_id in ids:
                row = table.position(external_id)
                if row is not None:
                    return table.payload(row)
        return None

    def __getitem__(self, external_id: str) -> Mapping[str, Any]:
        blob = self._blob(external_id)
        if blob is None:
            raise KeyError(external_id)
        data: dict[str, Any] = orjson.loads(blob)
        return data

    def __contains__(self, external_id: object) -> bool:
        return isinstance(external_id, str) and self._blob(external_id) is not None

    def __iter__(self) -> Iterator[str]:
        seen = set(self._at)
        yield from self._at
        for table, ids in self._tables:
            for ext in ids:
                if ext not in seen and table.position(ext) is not None:
                    seen.add(ext)
                    yield ext

    def __len__(self) -> int:
        return sum(1 for _ in self)
