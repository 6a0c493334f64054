"""SCIM payloads for Entra's bulkUpload endpoint: pure request building, no I/O.

Documented facts (Graph ``synchronization-bulkupload`` resource): the body's root
``schemas`` is the SCIM BulkRequest URN, the array is ``Operations`` (capital O),
each request holds at most 50 operations, every operation is ``method: POST`` with
``path: /Users``, a unique ``bulkId`` and ``data`` whose ``schemas`` lists the core
and enterprise User URNs plus every custom namespace used. ``failOnErrors: null``
appears in every Microsoft example (its meaning is undocumented); we send it too.

Our choices: a byte cap per request (default 256 KiB; the service documents none)
and deterministic ``bulkId`` values that name the source row, so a failure can be
traced back to a line of the extract.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any

import orjson

from connector.errors import OperationTooLargeError

__all__ = [
    "BULK_REQUEST_SCHEMA",
    "CONTENT_TYPE",
    "CORE_USER_SCHEMA",
    "DEFAULT_MAX_REQUEST_BYTES",
    "ENTERPRISE_USER_SCHEMA",
    "MAX_OPERATIONS_PER_REQUEST",
    "BulkOperation",
    "BulkPayload",
    "SerializedOperation",
    "Unserialized",
    "build_bulk_requests",
    "make_bulk_id",
    "max_operation_bytes",
    "pack_unserialized",
    "serialize_operation",
    "split_payload",
]

CORE_USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE_USER_SCHEMA = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
BULK_REQUEST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
CONTENT_TYPE = "application/scim+json"
MAX_OPERATIONS_PER_REQUEST = 50
DEFAULT_MAX_REQUEST_BYTES = 256 * 1024

_HEAD = b'{"schemas":["' + BULK_REQUEST_SCHEMA.encode() + b'"],"Operations":['
_TAIL = b'],"failOnErrors":null}'
_REQUEST_SCHEMAS = [BULK_REQUEST_SCHEMA]  # the root of a request as a dict gives _HEAD ... _TAIL

#: A record not serialized yet: ``(bulkId, externalId, data, source line)``.
Unserialized = tuple[str, str, Mapping[str, Any], int]


@dataclass(slots=True)
class BulkOperation:
    """One user record to upsert: ``data`` is the full SCIM user (schemas, externalId, ...).

    Treat it as immutable. It is not a frozen dataclass only because one is built per
    extract row and a frozen constructor costs three times as much.
    """

    bulk_id: str
    external_id: str
    data: Mapping[str, Any]


@dataclass(slots=True)
class SerializedOperation(BulkOperation):
    """A :class:`BulkOperation` that carries its JSON bytes (``json``), made once.

    The record stream has to serialize each operation anyway to check its size against
    the request cap; :func:`build_bulk_requests` then uses these bytes instead of
    serializing again. ``json`` must be :func:`serialize_operation` of the same operation:
    to change a field, build a plain :class:`BulkOperation` (``dataclasses.replace`` would
    keep the old bytes).
    """

    json: bytes = b""


@dataclass(frozen=True, slots=True)
class BulkPayload:
    """One BulkRequest ready to POST: its exact bytes and which records it carries."""

    body: bytes
    bulk_ids: tuple[str, ...]
    external_ids: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.bulk_ids)


def make_bulk_id(external_id: str, line: int | None = None) -> str:
    """A bulkId that names the record's source: ``<externalId>:L<line>`` or ``<externalId>``.

    Deterministic, so the same extract gives byte-identical payloads, and unique
    within a request because externalIds are unique within a run.
    """
    return f"{external_id}:L{line}" if line is not None else external_id


def max_operation_bytes(max_bytes: int = DEFAULT_MAX_REQUEST_BYTES) -> int:
    """The largest serialized operation that fits alone in a request of ``max_bytes``."""
    return max_bytes - len(_HEAD) - len(_TAIL)


def serialize_operation(op: BulkOperation) -> bytes:
    """The JSON bytes of one operation, exactly as they appear inside ``Operations``."""
    return orjson.dumps({"method": "POST", "bulkId": op.bulk_id, "path": "/Users", "data": op.data})


def build_bulk_requests(
    operations: Iterable[BulkOperation],
    *,
    max_operations: int = MAX_OPERATIONS_PER_REQUEST,
    max_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
) -> Iterator[BulkPayload]:
    """Group operations into BulkRequests of at most ``max_operations`` and ``max_bytes``.

    Streams: holds one request's operations at a time. Order is preserved. A single
    operation over the byte cap raises :class:`OperationTooLargeError`; the record stream
    (:func:`connector.records.iter_records`) rejects such records instead. Given the
    stream's :meth:`~connector.records.RecordStream.operations` as they are, the stream
    makes the requests itself, one ``dumps`` per request (:func:`pack_unserialized`);
    given :class:`SerializedOperation` objects, their bytes are used as they are.
    """
    if not 1 <= max_operations <= MAX_OPERATIONS_PER_REQUEST:
        raise ValueError(f"max_operations must be 1..{MAX_OPERATIONS_PER_REQUEST}")
    overhead = len(_HEAD) + len(_TAIL)
    limit = max_bytes - overhead  # bytes left for operations and their separating commas
    chunks: list[bytes] = []
    bulk_ids: list[str] = []
    external_ids: list[str] = []
    # Bytes still free, counting a comma before every operation; the first has none, so
    # the budget starts one over ``limit``. An operation that takes it below zero goes
    # to the next request.
    room = limit + 1

    def flush() -> BulkPayload:
        # head and tail glued to the first and last chunk: the body is copied once
        last = len(chunks) - 1
        chunks[0] = _HEAD + chunks[0]
        chunks[last] = chunks[last] + _TAIL
        return BulkPayload(
            body=b",".join(chunks), bulk_ids=tuple(bulk_ids), external_ids=tuple(external_ids)
        )

    requests = getattr(operations, "_requests", None)
    if requests is not None:  # the record stream's operations: serialized a request at once
        made = requests(max_operations, max_bytes)
        if made is not None:
            yield from made
            return
    packed = getattr(operations, "_packed", None)
    if packed is not None:  # the record stream's operations: tuples, no object per record
        for bulk_id, external_id, chunk in packed():
            n = len(chunk)
            if n > limit:
                raise OperationTooLargeError(bulk_id, overhead + n, max_bytes)
            room -= n + 1
            if room < 0 or len(chunks) == max_operations:
                yield flush()
                chunks, bulk_ids, external_ids = [], [], []
                room = limit - n
            chunks.append(chunk)
            bulk_ids.append(bulk_id)
            external_ids.append(external_id)
        if chunks:
            yield flush()
        return
    dumps = orjson.dumps
    serialized = SerializedOperation
    for op in operations:
        if op.__class__ is serialized:
            chunk = op.json
        else:  # inlined serialize_operation (one call less per record on the hot path)
            chunk = dumps(
                {"method": "POST", "bulkId": op.bulk_id, "path": "/Users", "data": op.data}
            )
        n = len(chunk)
        if n > limit:
            raise OperationTooLargeError(op.bulk_id, overhead + n, max_bytes)
        room -= n + 1
        # ``room`` cannot go below zero for a request's first operation (n <= limit)
        if room < 0 or len(chunks) == max_operations:
            yield flush()
            chunks, bulk_ids, external_ids = [], [], []
            room = limit - n
        chunks.append(chunk)
        bulk_ids.append(op.bulk_id)
        external_ids.append(op.external_id)
    if chunks:
        yield flush()


def pack_unserialized(
    records: Iterator[Unserialized],
    *,
    max_operations: int = MAX_OPERATIONS_PER_REQUEST,
    max_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    keep_under: int,
    reject: Callable[[Unserialized, int], None],
    at_end: Callable[[], None],
) -> Iterator[BulkPayload]:
    """The requests :func:`build_bulk_requests` makes of ``records``' operations, the same
    bytes, but one ``orjson.dumps`` per request instead of one per operation.

    A request's next ``max_operations`` records are serialized together as the whole
    request; when its body is within ``max_bytes`` and its operations within
    ``keep_under`` bytes, no operation in it can be over either, and it is the request the
    one-by-one packing makes (that packing fills a request up to ``max_operations`` when
    they fit). Otherwise the records are serialized one by one: an operation over
    ``keep_under`` bytes goes to ``reject(record, its size)`` and is left out (the records
    after it then move up), and the requests are packed by size as in
    :func:`build_bulk_requests`.

    As there, a request is handed out only once an operation after it is kept (or the
    records ended): on an error from ``records``, the requests complete before it are
    handed out, not the open one, then the error goes on. ``at_end()`` runs after the last
    record, once every rejection is made, before the last request; it may raise.
    """
    if not 1 <= max_operations <= MAX_OPERATIONS_PER_REQUEST:
        raise ValueError(f"max_operations must be 1..{MAX_OPERATIONS_PER_REQUEST}")
    overhead = len(_HEAD) + len(_TAIL)
    dumps = orjson.dumps
    pending: list[Unserialized] = []
    held: BulkPayload | None = None  # handed out once a record after it is kept
    while True:
        if len(pending) < max_operations:
            try:
                pending.extend(islice(records, max_operations - len(pending)))  # kept on error
            except Exception:
                made = _one_by_one(pending, max_operations, max_bytes, keep_under, reject)
                if held is not None and made:
                    yield held
                yield from made[:-1]
                raise
            if not pending:
                at_end()
                if held is not None:
                    yield held
                return
        window = pending[:max_operations]
        body = dumps(
            {
                "schemas": _REQUEST_SCHEMAS,
                "Operations": [
                    {"method": "POST", "bulkId": r[0], "path": "/Users", "data": r[2]}
                    for r in window
                ],
                "failOnErrors": None,
            }
        )
        if len(body) <= max_bytes and len(body) - overhead <= keep_under:
            del pending[:max_operations]
            bulk_ids, external_ids, _, _ = zip(*window, strict=True)
            made_now = BulkPayload(body, bulk_ids, external_ids)
        else:
            kept = len(pending)
            made = _one_by_one(pending, max_operations, max_bytes, keep_under, reject)
            if len(pending) < kept:
                continue  # records left out: the next ones move up into this request
            made_now = made[0]
            del pending[: len(made_now)]
        if held is not None:
            yield held
        held = made_now


def _one_by_one(
    pending: list[Unserialized],
    max_operations: int,
    max_bytes: int,
    keep_under: int,
    reject: Callable[[Unserialized, int], None],
) -> list[BulkPayload]:
    """``pending`` packed as :func:`build_bulk_requests` packs it, each operation
    serialized on its own; those over ``keep_under`` bytes are rejected and removed."""
    kept: list[SerializedOperation] = []
    survivors: list[Unserialized] = []
    for record in pending:
        bulk_id, external_id, data, _ = record
        op = SerializedOperation(bulk_id, external_id, data)
        op.json = serialize_operation(op)
        if len(op.json) > keep_under:
            reject(record, len(op.json))
            continue
        kept.append(op)
        survivors.append(record)
    pending[:] = survivors
    return list(build_bulk_requests(kept, max_operations=max_operations, max_bytes=max_bytes))


def split_payload(payload: BulkPayload, parts: Sequence[Sequence[int]]) -> list[BulkPayload]:
    """Rebuild sub-requests holding the given operation indexes of ``payload``.

    The body is parsed with orjson and each sub-body keeps the root's other members
    (``schemas``, ``failOnErrors``) so a part is exactly the original request, smaller:
    this is how a refused request is bisected to find the records a 400 is about.
    """
    root = orjson.loads(payload.body)
    ops = root.get("Operations")
    if not isinstance(ops, list) or len(ops) != len(payload.bulk_ids):
        raise ValueError("payload body does not match its bulk_ids; cannot split it")
    out = []
    for indexes in parts:
        sub = dict(root)
        sub["Operations"] = [ops[i] for i in indexes]
        out.append(
            BulkPayload(
                body=orjson.dumps(sub),
                bulk_ids=tuple(payload.bulk_ids[i] for i in indexes),
                external_ids=tuple(payload.external_ids[i] for i in indexes),
            )
        )
    return out
