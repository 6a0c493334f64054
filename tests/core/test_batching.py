"""Batch packing against a plain reference: same splits, same bytes, at every boundary."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.scim import (
    BULK_REQUEST_SCHEMA,
    BulkOperation,
    SerializedOperation,
    build_bulk_requests,
    make_bulk_id,
    serialize_operation,
)

_HEAD = b'{"schemas":["' + BULK_REQUEST_SCHEMA.encode() + b'"],"Operations":['
_TAIL = b'],"failOnErrors":null}'


def _ops(pads: list[int], serialized: bool) -> list[BulkOperation]:
    out: list[BulkOperation] = []
    for i, pad in enumerate(pads):
        ext = f"E{i}"
        op = BulkOperation(make_bulk_id(ext, i + 2), ext, {"externalId": ext, "title": "x" * pad})
        if serialized:
            op = SerializedOperation(op.bulk_id, op.external_id, op.data, serialize_operation(op))
        out.append(op)
    return out


def _reference(ops: list[BulkOperation], per: int, cap: int) -> list[tuple[bytes, tuple[str, ...]]]:
    """Greedy packing written out the obvious way: add while the whole body still fits."""
    out: list[tuple[bytes, tuple[str, ...]]] = []
    group: list[BulkOperation] = []

    def body(g: list[BulkOperation]) -> bytes:
        return _HEAD + b",".join(serialize_operation(o) for o in g) + _TAIL

    for op in ops:
        if group and (len(group) == per or len(body([*group, op])) > cap):
            out.append((body(group), tuple(o.bulk_id for o in group)))
            group = []
        group.append(op)
    if group:
        out.append((body(group), tuple(o.bulk_id for o in group)))
    return out


@settings(max_examples=150, deadline=None)
@given(
    pads=st.lists(st.integers(0, 400), max_size=30),
    per=st.integers(1, 50),
    slack=st.integers(0, 1200),
    serialized=st.booleans(),
)
def test_same_requests_as_reference(
    pads: list[int], per: int, slack: int, serialized: bool
) -> None:
    ops = _ops(pads, serialized)
    # caps from "the largest operation just fits alone" upwards, so exact fits occur
    biggest = max((len(serialize_operation(o)) for o in ops), default=0)
    cap = len(_HEAD) + len(_TAIL) + biggest + slack
    got = list(build_bulk_requests(ops, max_operations=per, max_bytes=cap))
    want = _reference(ops, per, cap)
    assert [(p.body, p.bulk_ids) for p in got] == want
    assert [e for p in got for e in p.external_ids] == [o.external_id for o in ops]
    for p in got:
        assert len(p.body) <= cap
        assert len(orjson.loads(p.body)["Operations"]) == len(p)


def test_exact_fit_stays_in_one_request() -> None:
    ops = _ops([10, 20, 30], serialized=True)
    cap = len(_reference(ops, 50, 10**9)[0][0])
    assert [len(p) for p in build_bulk_requests(ops, max_bytes=cap)] == [3]
    assert [len(p) for p in build_bulk_requests(ops, max_bytes=cap - 1)] == [2, 1]
