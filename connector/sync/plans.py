"""The stored plan of a run: which records it sends, in which order, in which batches.

A run's plan (``<source>/<run>/plan.jsonl.gz``, one JSON array per record) is written once
when the run is planned, so a held run can be approved, and an interrupted one resumed,
without the extract. Records are ordered managers first (:mod:`connector.sync.references`)
and batches are rebuilt from the plan deterministically: the same plan always gives the
same batches, which is what lets a journal name acknowledged batches by index.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from connector.scim import BulkOperation, BulkPayload, build_bulk_requests, make_bulk_id
from connector.state.base import (
    FINGERPRINT_SIZE,
    RecordEntry,
    RecordIndex,
)
from connector.state.base import Outcome as StateOutcome
from connector.sync.delta import (
    Change,
    ChangeKind,
    DeltaPlan,
)
from connector.sync.references import (
    manager_of,
    order_by_level,
    reference_levels,
)

__all__ = [
    "NEVER_ACCEPTED",
    "PlannedOp",
    "batches_of",
    "decode_op",
    "decode_plan",
    "encode_plan",
    "leveled_batches",
    "may_not_exist",
    "order_plan",
    "suppress_refused_resends",
]


NEVER_ACCEPTED = bytes(FINGERPRINT_SIZE)
"""Fingerprint of a record the service has never accepted (refused at its first send)."""


@dataclass(frozen=True, slots=True)
class PlannedOp:
    kind: str
    external_id: str
    line: int | None
    fingerprint: bytes
    active: bool
    data: Mapping[str, Any]
    prev: str | None = None
    """The run that last sent this record (its log entry is not this send's)."""
    level: int = 0
    """Depth in the manager chain within the plan (0: its manager exists or is not in it)."""


def may_not_exist(change: Change, entry: RecordEntry | None) -> bool:
    """Whether the directory may not hold this record yet (its reports must wait for it)."""
    if change.kind is ChangeKind.JOINER or entry is None:
        return True
    if entry.fingerprint == NEVER_ACCEPTED:
        return True
    # A create that failed: nobody exists until a later send succeeds.
    return entry.outcome == StateOutcome.FAILED.value and not entry.active


def order_plan(changes: Iterable[Change], index: RecordIndex | None = None) -> list[PlannedOp]:
    """The records to send, managers before their reports (stable within a level).

    Only managers that may not exist yet (joiners, records never accepted) make a
    report wait; movers and leavers exist already, so a daily delta is one level.
    """
    entries = index.entries if index is not None else {}
    todo = [c for c in changes if c.data is not None]
    by_id = {c.external_id: c for c in todo}

    def needs_wait(ext: str) -> bool:
        change = by_id.get(ext)
        return change is not None and may_not_exist(change, entries.get(ext))

    levels = reference_levels([(c.external_id, manager_of(c.data)) for c in todo], needs_wait)
    ops: list[PlannedOp] = []
    for k in order_by_level(len(todo), levels):
        c = todo[k]
        old = entries.get(c.external_id)
        ops.append(
            PlannedOp(
                c.kind.value,
                c.external_id,
                c.line,
                c.fingerprint,
                c.active,
                c.data or {},
                old.run_id if old is not None else None,
                levels[k],
            )
        )
    return ops


def encode_plan(ops: Iterable[PlannedOp]) -> bytes:
    buf = bytearray()
    for op in ops:
        buf += orjson.dumps(
            [
                op.kind,
                op.external_id,
                op.line,
                op.fingerprint.hex(),
                op.active,
                op.data,
                op.prev,
                op.level,
            ]
        )
        buf += b"\n"
    return gzip.compress(bytes(buf), compresslevel=5)


def decode_plan(blob: bytes) -> list[PlannedOp]:
    return [decode_op(raw) for raw in gzip.decompress(blob).splitlines() if raw]


def decode_op(raw: bytes) -> PlannedOp:
    """One line of a stored plan."""
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
    kept: list[Change] = []
    for c in plan.changes:
        entry = index.entries.get(c.external_id)
        if c.kind is ChangeKind.MOVER and entry is not None:
            if attempted.get(c.external_id) == c.fingerprint.hex():
                plan.movers -= 1
                plan.unchanged += 1
                continue
            if entry.fingerprint == NEVER_ACCEPTED:
                plan.movers -= 1
                plan.joiners += 1
                c = Change(
                    ChangeKind.JOINER, c.external_id, c.line, c.data, c.fingerprint, c.active
                )
        kept.append(c)
    plan.changes = kept


def batches_of(ops: list[PlannedOp]) -> list[BulkPayload]:
    """Deterministic: the same plan always gives the same batches in the same order."""
    return [payload for payload, _ in leveled_batches(ops)]


def leveled_batches(ops: list[PlannedOp]) -> list[tuple[BulkPayload, tuple[int, int]]]:
    """The plan's batches, each with the lowest and highest manager-chain level it holds.

    Batches are packed as before (50 operations), so ordering costs no extra calls; a
    batch may end one level and start the next (operations of one request are processed
    in order — SCIM bulk semantics, our assumption for Entra).
    """
    payloads = list(
        build_bulk_requests(
            BulkOperation(make_bulk_id(op.external_id, op.line), op.external_id, op.data)
            for op in ops
        )
    )
    out: list[tuple[BulkPayload, tuple[int, int]]] = []
    k = 0
    for payload in payloads:
        n = len(payload)
        levels = [op.level for op in ops[k : k + n]]
        k += n
        out.append((payload, (min(levels, default=0), max(levels, default=0))))
    return out
