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

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
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
    "build_bulk_requests",
    "make_bulk_id",
    "max_operation_bytes",
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
    (:func:`connector.records.iter_records`) rejects such records before they get here, and
    hands its operations packed (``_packed``: tuples, no object per record) or as
    :class:`SerializedOperation` objects whose bytes are used as they are.
    """
    if not 1 <= max_operations <= MAX_OPERATIONS_PER_REQUEST:
        raise ValueError(f"max_operations must be 1..{MAX_OPERATIONS_PER_REQUEST}")
    packed = getattr(operations, "_packed", None)
    triples = packed() if packed is not None else _triples(operations)
    return _requests(triples, max_operations, max_bytes)


def _triples(operations: Iterable[BulkOperation]) -> Iterator[tuple[str, str, bytes]]:
    """(bulkId, externalId, operation JSON) of each operation, serialized when needed."""
    dumps = orjson.dumps
    serialized = SerializedOperation
    for op in operations:
        if op.__class__ is serialized:
            chunk = op.json
        else:  # serialize_operation inlined (one call less per record)
            chunk = dumps(
                {"method": "POST", "bulkId": op.bulk_id, "path": "/Users", "data": op.data}
            )
        yield op.bulk_id, op.external_id, chunk


def _requests(
    triples: Iterator[tuple[str, str, bytes]], max_operations: int, max_bytes: int
) -> Iterator[BulkPayload]:
    """The requests, filled up to the operation and byte caps in order."""
    overhead = len(_HEAD) + len(_TAIL)
    limit = max_bytes - overhead  # bytes left for operations and their separating commas
    chunks: list[bytes] = []
    bulk_ids: list[str] = []
    external_ids: list[str] = []
    # Bytes still free, counting a comma before every operation; the first has none, so
    # the budget starts one over ``limit``. An operation that takes it below zero goes
    # to the next request (``room`` cannot go below zero for a request's first one).
    room = limit + 1
    for bulk_id, external_id, chunk in triples:
        n = len(chunk)
        if n > limit:
            raise OperationTooLargeError(bulk_id, overhead + n, max_bytes)
        room -= n + 1
        if room < 0 or len(chunks) == max_operations:
            yield _payload(chunks, bulk_ids, external_ids)
            chunks, bulk_ids, external_ids = [], [], []
            room = limit - n
        chunks.append(chunk)
        bulk_ids.append(bulk_id)
        external_ids.append(external_id)
    if chunks:
        yield _payload(chunks, bulk_ids, external_ids)


def _payload(chunks: list[bytes], bulk_ids: list[str], external_ids: list[str]) -> BulkPayload:
    """One request; head and tail glued to the first and last chunk (the body is copied
    once)."""
    last = len(chunks) - 1
    chunks[0] = _HEAD + chunks[0]
    chunks[last] = chunks[last] + _TAIL
    return BulkPayload(
        body=b",".join(chunks), bulk_ids=tuple(bulk_ids), external_ids=tuple(external_ids)
    )


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
