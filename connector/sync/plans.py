"""The stored plan of a run: which records it sends, in which order, in which batches.

A run's plan (``<source>/<run>/plan.jsonl.gz``, one JSON array per record:
``[kind, externalId, line, fingerprint hex, active, payload, previous run, level]``) is
written once when the run is planned, so a held run can be approved, and an interrupted
one resumed, without the extract. Records are ordered managers first
(:mod:`connector.sync.references`) and batches are rebuilt from the plan
deterministically: the same plan always gives the same batches, which is what lets a
journal name acknowledged batches by index.

In memory a plan is :class:`PlanOps`: compact columns over an
:class:`~connector.sync.op_table.OpTable` whose payloads are spooled to a temporary
file, so a plan of a million records costs tens of megabytes, not gigabytes. Plans are
written and read as gzip streams; the format is the one every earlier version wrote.
"""

from __future__ import annotations

import gzip
import io
import itertools
from array import array
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import IO, Any

import orjson

from connector.scim import BulkPayload, build_bulk_requests, make_bulk_id
from connector.state.base import (
    FINGERPRINT_SIZE,
    RecordEntry,
    RecordIndex,
)
from connector.state.base import Outcome as StateOutcome
from connector.sync.delta import (
    Change,
    ChangeKind,
    ChangeList,
    DeltaPlan,
)
from connector.sync.op_table import OpTable, RowView
from connector.sync.references import (
    manager_of,
    order_by_level,
    reference_levels,
)

__all__ = [
    "NEVER_ACCEPTED",
    "PlanOps",
    "PlannedOp",
    "batches_of",
    "decode_op",
    "decode_plan",
    "encode_plan",
    "may_not_exist",
    "order_plan",
    "read_plan",
    "suppress_refused_resends",
    "write_plan_to",
]


NEVER_ACCEPTED = bytes(FINGERPRINT_SIZE)
"""Fingerprint of a record the service has never accepted (refused at its first send)."""

_COMPRESSLEVEL = 5


class PlannedOp:
    """One planned record. ``data`` (the SCIM user to POST) is read from the plan's
    spool when first asked for, so holding many of these costs little."""

    __slots__ = (
        "_data",
        "_row",
        "active",
        "external_id",
        "fingerprint",
        "kind",
        "level",
        "line",
        "prev",
    )

    def __init__(
        self,
        kind: str,
        external_id: str,
        line: int | None,
        fingerprint: bytes,
        active: bool,
        data: Mapping[str, Any] | None = None,
        prev: str | None = None,
        level: int = 0,
    ) -> None:
        self.kind = kind
        self.external_id = external_id
        self.line = line
        self.fingerprint = fingerprint
        self.active = active
        self.prev = prev
        """The run that last sent this record (its log entry is not this send's)."""
        self.level = level
        """Depth in the manager chain within the plan (0: its manager exists or is not in it)."""
        self._data = data
        self._row: tuple[OpTable, int] | None = None

    @classmethod
    def at(cls, table: OpTable, i: int) -> PlannedOp:
        op = cls(
            table.kind(i),
            table.ext[i],
            table.line(i),
            table.fingerprint(i),
            table.active(i),
            None,
            table.prev(i),
            table.level(i),
        )
        op._row = (table, i)
        return op

    @property
    def data(self) -> Mapping[str, Any]:
        if self._data is None and self._row is not None:
            return self._row[0].data(self._row[1]) or {}
        return self._data or {}

    def _key(self) -> tuple[object, ...]:
        return (self.kind, self.external_id, self.line, self.fingerprint, self.active)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PlannedOp):
            return NotImplemented
        return (
            self._key() == other._key()
            and (self.prev, self.level) == (other.prev, other.level)
            and self.data == other.data
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        where = f"line={self.line}, level={self.level}"
        return f"PlannedOp({self.kind!r}, {self.external_id!r}, {where})"


class PlanOps(RowView[PlannedOp]):
    """A stored plan's operations in send order, over a compact :class:`OpTable`."""

    def __init__(self, table: OpTable | None = None) -> None:
        self.table = table if table is not None else OpTable()
        self._bounds: array[int] | None = None

    @classmethod
    def of(cls, ops: Iterable[PlannedOp]) -> PlanOps:
        if isinstance(ops, PlanOps):
            return ops
        table = OpTable()
        for op in ops:
            table.add(
                op.kind,
                op.external_id,
                op.line,
                op.fingerprint,
                op.active,
                op.data,
                prev=op.prev,
                level=op.level,
                manager=manager_of(op.data) if op.level else None,
            )
        return cls(table)

    def __len__(self) -> int:
        return len(self.table)

    def _row(self, i: int) -> PlannedOp:
        return PlannedOp.at(self.table, i)

    @property
    def external_ids(self) -> list[str]:
        return self.table.ext

    def operation(self, i: int) -> tuple[str, str, bytes]:
        """Row ``i`` as ``(bulkId, externalId, operation JSON)``: the bytes
        :func:`connector.scim.serialize_operation` gives for the same operation."""
        t = self.table
        ext = t.ext[i]
        bulk_id = make_bulk_id(ext, t.line(i))
        data = t.payload(i)
        body = b"{}" if data is None else data
        chunk = b'{"method":"POST","bulkId":' + orjson.dumps(bulk_id)
        return bulk_id, ext, chunk + b',"path":"/Users","data":' + body + b"}"

    def bounds(self) -> array[int]:
        """Where each batch starts, plus the end: batch ``k`` is rows
        ``bounds[k]:bounds[k + 1]`` (packed by :func:`connector.scim.build_bulk_requests`)."""
        if self._bounds is None:
            out = array("q", [0])
            for payload in build_bulk_requests(_Packed(self, 0, len(self))):
                out.append(out[-1] + len(payload))
            self._bounds = out
        return self._bounds

    def batch_count(self) -> int:
        return len(self.bounds()) - 1

    def batch(self, k: int) -> BulkPayload:
        """Batch ``k``, built from the spool (the same bytes every time)."""
        b = self.bounds()
        (payload,) = build_bulk_requests(_Packed(self, b[k], b[k + 1]))
        return payload

    def batches(self) -> Batches:
        return Batches(self)

    def batch_levels(self) -> list[tuple[int, int]]:
        """Each batch's lowest and highest manager-chain level."""
        b, levels = self.bounds(), self.table.levels
        return [(min(levels[s:e]), max(levels[s:e])) for s, e in itertools.pairwise(b)]

    def batch_deps(self) -> list[tuple[int, ...]]:
        """For each batch, the earlier batches holding the managers its records wait for.

        A record of level *n* > 0 waits for its manager (level *n* − 1, earlier in the
        plan: :func:`order_plan` and the priority order keep managers first); a manager
        in the same batch is no wait (its operation comes first in the request, and the
        operations of one request are processed in order: SCIM bulk semantics, assumed for
        Entra). A plan with one level has no dependencies. Should a waiting record's
        manager not be found in an earlier batch (a plan not made by :func:`order_plan`),
        the record waits for every earlier batch holding a lower level, as a level barrier
        would.
        Kept in memory: a batch index per manager that a record waits for, not per record.
        """
        b, t = self.bounds(), self.table
        levels, manager, ext = t.levels, t.manager, t.ext
        if max(levels, default=0) == 0:
            return [()] * (len(b) - 1)
        where = {m: -1 for i, level in enumerate(levels) if level and (m := manager(i))}
        lowest = [lo for lo, _ in self.batch_levels()]
        out: list[tuple[int, ...]] = []
        for k, (start, end) in enumerate(itertools.pairwise(b)):
            deps: set[int] = set()
            barrier = 0  # the level of a record whose manager was not found
            for i in range(start, end):
                if level := levels[i]:
                    m = manager(i)
                    j = where.get(m, -1) if m is not None else -1
                    if j < 0:
                        barrier = max(barrier, level)
                    elif j < k:
                        deps.add(j)
                if where.get(ext[i]) == -1:  # a manager: located at its first row
                    where[ext[i]] = k
            if barrier:
                deps.update(j for j in range(k) if lowest[j] < barrier)
            out.append(tuple(sorted(deps)))
        return out

    def members(self) -> list[list[str]]:
        """The external ids of each batch, in order."""
        b, ext = self.bounds(), self.table.ext
        return [ext[s:e] for s, e in itertools.pairwise(b)]


class _Packed:
    """Rows ``start:end`` of a plan as build_bulk_requests' packed operations."""

    def __init__(self, ops: PlanOps, start: int, end: int) -> None:
        self._ops, self._start, self._end = ops, start, end

    def __iter__(self) -> Iterator[Any]:
        raise TypeError("read through _packed()")

    def _packed(self) -> Iterator[tuple[str, str, bytes]]:
        return (self._ops.operation(i) for i in range(self._start, self._end))


class Batches(RowView[BulkPayload]):
    """A plan's batches, each built when asked for (a few kept for the send window)."""

    def __init__(self, ops: PlanOps, keep: int = 32) -> None:
        self._ops = ops
        self._keep = keep
        self._cache: OrderedDict[int, BulkPayload] = OrderedDict()

    def __len__(self) -> int:
        return self._ops.batch_count()

    def _row(self, k: int) -> BulkPayload:
        got = self._cache.get(k)
        if got is None:
            got = self._cache[k] = self._ops.batch(k)
            if len(self._cache) > self._keep:
                self._cache.popitem(last=False)
        return got


def may_not_exist(change: Change, entry: RecordEntry | None) -> bool:
    """Whether the directory may not hold this record yet (its reports must wait for it)."""
    return _may_not_exist(change.kind.value, entry)


def _may_not_exist(kind: str, entry: RecordEntry | None) -> bool:
    if kind == ChangeKind.JOINER.value or entry is None:
        return True
    if entry.fingerprint == NEVER_ACCEPTED:
        return True
    # A create that failed: nobody exists until a later send succeeds.
    return entry.outcome == StateOutcome.FAILED.value and not entry.active


def order_plan(
    changes: Iterable[Change], index: RecordIndex | None = None, *, kind: str | None = None
) -> PlanOps:
    """The records to send, managers before their reports (stable within a level).

    Only managers that may not exist yet (joiners, records never accepted) make a
    report wait; movers and leavers exist already, so a daily delta is one level.
    Levels are worked out over externalIds and manager ids only (no payload is read).
    ``kind``: every operation's kind (a child run's), else each change's own.
    """
    entries = index.entries if index is not None else {}
    src = ChangeList.of(changes).with_data().table
    n = len(src)

    def needs_wait(ext: str) -> bool:
        k = src.position(ext)
        return k is not None and _may_not_exist(src.kind(k), entries.get(ext))

    levels = reference_levels(_Refs(src), needs_wait, position=_Positions(src))
    order = order_by_level(n, levels)
    table = src.take(order, (levels[k] for k in order), kind=kind)
    prev = [entries.get(ext) for ext in table.ext]
    table.set_prev(None if e is None else e.run_id for e in prev)
    return PlanOps(table)


class _Refs(Sequence[tuple[str, str | None]]):
    """``(externalId, manager)`` of each row, without building the pairs up front."""

    def __init__(self, table: OpTable) -> None:
        self._t = table

    def __len__(self) -> int:
        return len(self._t)

    def __getitem__(self, k: Any) -> Any:
        return (self._t.ext[k], self._t.manager(k))


class _Positions(Mapping[str, int]):
    def __init__(self, table: OpTable) -> None:
        self._t = table

    def __getitem__(self, ext: str) -> int:
        k = self._t.position(ext)
        if k is None:
            raise KeyError(ext)
        return k

    def get(self, ext: str, default: Any = None) -> Any:
        k = self._t.position(ext)
        return default if k is None else k

    def __iter__(self) -> Iterator[str]:
        return iter(self._t.ext)

    def __len__(self) -> int:
        return len(self._t)


def write_plan_to(out: IO[bytes], ops: PlanOps) -> None:
    """Write ``ops`` to ``out`` as ``plan.jsonl.gz`` (streamed, a request's worth at a time)."""
    t = ops.table
    dumps = orjson.dumps
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=_COMPRESSLEVEL, mtime=0) as gz:
        buf: list[bytes] = []
        for i in range(len(t)):
            head = dumps([t.kind(i), t.ext[i], t.line(i), t.fingerprint(i).hex(), t.active(i)])
            tail = dumps([t.prev(i), t.level(i)])
            data = t.payload(i) or b"{}"
            buf.append(head[:-1] + b"," + data + b"," + tail[1:] + b"\n")
            if len(buf) >= 256:
                gz.write(b"".join(buf))
                buf.clear()
        if buf:
            gz.write(b"".join(buf))


def encode_plan(ops: Iterable[PlannedOp]) -> bytes:
    """The stored form of ``ops`` (:func:`write_plan_to` into bytes)."""
    out = io.BytesIO()
    write_plan_to(out, PlanOps.of(ops))
    return out.getvalue()


def read_plan(src: IO[bytes]) -> PlanOps:
    """A stored plan, streamed: plans of every earlier version read the same way (those
    stored before previous runs or levels were kept read with none and one level)."""
    table = OpTable()
    loads = orjson.loads
    with gzip.GzipFile(fileobj=src, mode="rb") as gz:
        for raw in gz:
            if not raw.strip():
                continue
            kind, ext, line, fp, active, data, *rest = loads(raw)
            prev = rest[0] if rest else None
            level = int(rest[1]) if len(rest) > 1 else 0  # plans stored before levels: one level
            fingerprint = bytes.fromhex(fp)
            manager = manager_of(data) if level else None  # what the priority order reads
            table.add(
                kind,
                ext,
                line,
                fingerprint,
                bool(active),
                data,
                prev=prev,
                level=level,
                manager=manager,
            )
    return PlanOps(table)


def decode_plan(blob: bytes) -> PlanOps:
    return read_plan(io.BytesIO(blob))


def decode_op(raw: bytes) -> PlannedOp:
    """One line of a stored plan (a record streamed without building the plan's table)."""
    kind, ext, line, fp, active, data, *rest = orjson.loads(raw)
    prev = rest[0] if rest else None
    level = int(rest[1]) if len(rest) > 1 else 0  # plans stored before levels: one level
    return PlannedOp(kind, ext, line, bytes.fromhex(fp), bool(active), data, prev, level)


def suppress_refused_resends(
    plan: DeltaPlan, index: RecordIndex, attempted: Mapping[str, str]
) -> None:
    """Records the service refused (400) and that come back unchanged are not re-sent.

    Their index entry keeps the last accepted fingerprint, so the delta sees a change;
    the refused attempt's fingerprint (``attempted``) says it is the same data again.
    A record refused at its very first send counts as a joiner when its data changes.
    """
    if not attempted:
        return
    changes = ChangeList.of(plan.changes)
    src = changes.table
    kept = ChangeList(OpTable(src.spool))
    for k in range(len(src)):
        ext = src.ext[k]
        entry = index.entries.get(ext)
        kind: str | None = None
        if src.kind(k) == ChangeKind.MOVER.value and entry is not None:
            if attempted.get(ext) == src.fingerprint(k).hex():
                plan.movers -= 1
                plan.unchanged += 1
                continue
            if entry.fingerprint == NEVER_ACCEPTED:
                plan.movers -= 1
                plan.joiners += 1
                kind = ChangeKind.JOINER.value
        kept.table.copy_row(src, k, kind=kind)
    plan.changes = kept


def batches_of(ops: Sequence[PlannedOp]) -> list[BulkPayload]:
    """Deterministic: the same plan always gives the same batches in the same order."""
    plan = PlanOps.of(ops)
    return [plan.batch(k) for k in range(plan.batch_count())]
