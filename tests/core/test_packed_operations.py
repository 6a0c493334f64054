"""The record stream's operations give the same requests whichever way they are read."""

from __future__ import annotations

import io
import itertools
from pathlib import Path

from connector.mapping import load_mapping
from connector.records import iter_records
from connector.sample import generate_extract
from connector.scim import SerializedOperation, build_bulk_requests, serialize_operation

MAPPING = Path(__file__).resolve().parents[2] / "samples" / "mappings" / "csv2scim.yaml"


def _extract(rows: int) -> bytes:
    buf = io.StringIO()
    generate_extract(buf, rows, layout="csv2scim")
    return buf.getvalue().encode()


def _payloads(ops: object, cap: int) -> list[tuple[bytes, tuple[str, ...], tuple[str, ...]]]:
    return [
        (p.body, p.bulk_ids, p.external_ids)
        for p in build_bulk_requests(ops, max_operations=7, max_bytes=cap)  # type: ignore[arg-type]
    ]


def test_direct_and_object_paths_match() -> None:
    data = _extract(130)
    mapping = load_mapping(MAPPING)
    cap = 6000
    objects = list(iter_records(io.BytesIO(data), mapping, max_request_bytes=cap).operations())
    assert len(objects) == 130
    assert all(type(op) is SerializedOperation for op in objects)
    assert all(op.json == serialize_operation(op) for op in objects)
    direct = _payloads(
        iter_records(io.BytesIO(data), mapping, max_request_bytes=cap).operations(), cap
    )
    assert direct == _payloads(iter(objects), cap)
    assert [e for _, _, ext in direct for e in ext] == [op.external_id for op in objects]


def test_started_operations_go_on_where_they_stopped() -> None:
    data = _extract(40)
    mapping = load_mapping(MAPPING)
    all_ops = list(iter_records(io.BytesIO(data), mapping).operations())
    ops = iter_records(io.BytesIO(data), mapping).operations()
    first = next(ops)
    head = list(itertools.islice(iter(ops), 4))
    rest = _payloads(ops, 10**6)
    assert [first.bulk_id] + [o.bulk_id for o in head] == [o.bulk_id for o in all_ops[:5]]
    assert [b for _, ids, _ in rest for b in ids] == [o.bulk_id for o in all_ops[5:]]
    assert rest == _payloads(iter(all_ops[5:]), 10**6)
