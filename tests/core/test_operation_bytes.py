"""One serialization of a record's bulk operation: preview's requests are the sync plan's.

Preview serializes each operation as its row is read (``connector.records``) and joins
them into requests; the sync plan keeps each record's payload bytes and rebuilds its
batches from them (:meth:`connector.sync.plans.PlanOps.operation`). Both are the bytes
``orjson.dumps`` gives for the envelope, non-ASCII, quotes, backslashes and characters
outside the BMP included.
"""

from __future__ import annotations

import io

import orjson
import pytest

from connector.mapping import Mapping, load_mapping
from connector.records import iter_records
from connector.scim import BulkOperation, build_bulk_requests, serialize_operation
from connector.state.base import FINGERPRINT_SIZE
from connector.sync.plans import PlannedOp, batches_of

from .helpers import CSV2SCIM_EXTRACT, CSV2SCIM_MAPPING, DEFAULT_MAPPING, HR_EXTRACT

TITLES = [
    "short é",
    'Ünïcödé "quoted" \\ back\\slash',
    "漢字 かな 한글 🙂 \u2028 line separator \u00a0 no-break space",
    "x" * 700,
]
IDS = ["1", 'q"uote', "back\\slash", "Ünï", "🙂", "a:L9"]


def _unicode_extract() -> bytes:
    lines = ["Id,Upn,Title"]
    for i in range(130):
        ext = f"{IDS[i % len(IDS)]}{i}"
        title = TITLES[i % len(TITLES)].replace('"', '""')
        lines.append(f'"{ext.replace(chr(34), chr(34) * 2)}",u{i}@x,"{title}"')
    return ("\n".join(lines) + "\n").encode()


UNICODE_MAPPING = (
    "externalId: Id\nextract: {max_rejected_share: 1}\n"
    "core:\n  userName: Upn\n  title: Title\n  active: {const: true}\n"
)


def _cases() -> list[tuple[Mapping, bytes]]:
    return [
        (load_mapping(DEFAULT_MAPPING), HR_EXTRACT.read_bytes()),
        (load_mapping(CSV2SCIM_MAPPING), CSV2SCIM_EXTRACT.read_bytes()),
        (load_mapping(UNICODE_MAPPING), _unicode_extract()),
    ]


@pytest.mark.parametrize("case", range(3))
def test_preview_requests_are_the_sync_plans_batches(case: int) -> None:
    mapping, data = _cases()[case]
    records = list(iter_records(io.BytesIO(data), mapping))
    assert records
    plan = [
        PlannedOp("joiner", r.external_id, r.line, b"\x01" * FINGERPRINT_SIZE, True, r.data)
        for r in records
    ]
    preview = list(build_bulk_requests(iter_records(io.BytesIO(data), mapping).operations()))
    assert batches_of(plan) == preview


@pytest.mark.parametrize("case", range(3))
def test_operation_bytes_are_orjson_of_the_envelope(case: int) -> None:
    mapping, data = _cases()[case]
    for op in iter_records(io.BytesIO(data), mapping).operations():
        envelope = {"method": "POST", "bulkId": op.bulk_id, "path": "/Users", "data": op.data}
        assert serialize_operation(BulkOperation(op.bulk_id, op.external_id, op.data)) == (
            orjson.dumps(envelope)
        )
        assert orjson.loads(serialize_operation(op)) == envelope


def test_unicode_ids_and_values_reach_the_requests_unescaped() -> None:
    mapping = load_mapping(UNICODE_MAPPING)
    bodies = b"".join(
        p.body
        for p in build_bulk_requests(
            iter_records(io.BytesIO(_unicode_extract()), mapping).operations()
        )
    )
    assert "🙂".encode() in bodies
    assert "漢字".encode() in bodies
    assert b'\\"quoted\\"' in bodies
    assert b'"bulkId":"q\\"uote1:L3"' in bodies
