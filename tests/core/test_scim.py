"""BulkRequest building: 50 operations, byte cap, exact envelope, deterministic bulkIds."""

from __future__ import annotations

import orjson
import pytest

from connector.errors import OperationTooLargeError
from connector.scim import (
    BULK_REQUEST_SCHEMA,
    MAX_OPERATIONS_PER_REQUEST,
    BulkOperation,
    build_bulk_requests,
    make_bulk_id,
    serialize_operation,
)


def op(i: int, pad: int = 0) -> BulkOperation:
    ext = f"E{i}"
    return BulkOperation(make_bulk_id(ext, i + 2), ext, {"externalId": ext, "title": "x" * pad})


def test_envelope_and_operation_shape() -> None:
    [payload] = list(build_bulk_requests([op(1)]))
    body = orjson.loads(payload.body)
    assert list(body) == ["schemas", "Operations", "failOnErrors"]
    assert body["schemas"] == [BULK_REQUEST_SCHEMA]
    assert body["failOnErrors"] is None
    assert body["Operations"] == [
        {
            "method": "POST",
            "bulkId": "E1:L3",
            "path": "/Users",
            "data": {"externalId": "E1", "title": ""},
        }
    ]
    assert payload.bulk_ids == ("E1:L3",)
    assert payload.external_ids == ("E1",)
    assert len(payload) == 1


def test_at_most_50_operations_in_order() -> None:
    payloads = list(build_bulk_requests(op(i) for i in range(120)))
    assert [len(p) for p in payloads] == [50, 50, 20]
    ids = [e for p in payloads for e in p.external_ids]
    assert ids == [f"E{i}" for i in range(120)]
    assert all(
        len(orjson.loads(p.body)["Operations"]) <= MAX_OPERATIONS_PER_REQUEST for p in payloads
    )


def test_byte_cap_splits_early() -> None:
    cap = 4096
    payloads = list(build_bulk_requests((op(i, pad=900) for i in range(20)), max_bytes=cap))
    assert all(len(p.body) <= cap for p in payloads)
    assert len(payloads) > 1
    assert sum(len(p) for p in payloads) == 20
    # each request is as full as the cap allows
    one = len(serialize_operation(op(0, pad=900)))
    assert len(payloads[0].body) + one + 1 > cap


def test_single_oversized_operation_raises() -> None:
    with pytest.raises(OperationTooLargeError, match="E0:L2 serializes to"):
        list(build_bulk_requests([op(0, pad=5000)], max_bytes=2048))


def test_max_operations_bounds() -> None:
    with pytest.raises(ValueError, match="max_operations"):
        list(build_bulk_requests([op(0)], max_operations=51))
    assert [len(p) for p in build_bulk_requests((op(i) for i in range(5)), max_operations=2)] == [
        2,
        2,
        1,
    ]


def test_bulk_id_forms() -> None:
    assert make_bulk_id("1222", 14) == "1222:L14"
    assert make_bulk_id("1222") == "1222"
