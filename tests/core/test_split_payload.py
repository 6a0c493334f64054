"""A bulk request split into parts: each part is the same request with fewer operations."""

from __future__ import annotations

import orjson
import pytest

from connector.scim import (
    BULK_REQUEST_SCHEMA,
    CORE_USER_SCHEMA,
    BulkOperation,
    BulkPayload,
    build_bulk_requests,
    split_payload,
)


def payload(count: int) -> BulkPayload:
    ops = [
        BulkOperation(
            bulk_id=f"E{i:05d}",
            external_id=f"E{i:05d}",
            data={"schemas": [CORE_USER_SCHEMA], "externalId": f"E{i:05d}", "active": True},
        )
        for i in range(count)
    ]
    [only] = build_bulk_requests(ops)
    return only


def test_split_payload_keeps_root_members_and_order() -> None:
    whole = payload(6)
    left, right = split_payload(whole, [[0, 2], [5]])
    assert left.bulk_ids == ("E00000", "E00002")
    assert right.external_ids == ("E00005",)
    root = orjson.loads(left.body)
    assert root["schemas"] == [BULK_REQUEST_SCHEMA]
    assert root["failOnErrors"] is None
    assert [op["bulkId"] for op in root["Operations"]] == list(left.bulk_ids)
    with pytest.raises(ValueError, match="does not match"):
        split_payload(BulkPayload(body=whole.body, bulk_ids=("x",), external_ids=("x",)), [[0]])
