"""The record stream's requests, each serialized at once, are the bytes of one-by-one packing.

``build_bulk_requests(stream.operations())`` serializes a request's operations in one
``orjson.dumps``; the object path (``list(stream.operations())``, each operation serialized
and measured as its row is read) is the reference: same request bodies, bulkIds, rejected
rows (order included), counts, and the same requests handed out before an error.
"""

from __future__ import annotations

import io
import random
from typing import Any

import pytest

from connector.errors import ConnectorError, RejectedShareExceededError
from connector.mapping import Mapping, load_mapping
from connector.records import iter_records
from connector.sample import generate_extract
from connector.scim import build_bulk_requests
from connector.state.base import FINGERPRINT_SIZE
from connector.sync.plans import PlannedOp, PlanOps, batches_of

from .helpers import CSV2SCIM_EXTRACT, CSV2SCIM_MAPPING, DEFAULT_MAPPING, HR_EXTRACT

Outcome = tuple[list[tuple[bytes, tuple[str, ...], tuple[str, ...]]], list[Any], Any, str | None]

TITLES = [
    "short é",
    'Ünïcödé "quoted" \\ back\\slash',
    "漢字 かな 한글 emoji 🙂 \u2028 line sep \u00a0 nbsp",
    "x" * 700,
    "t" * 1500,  # alone over a 1 KiB request
]


def _run(data: bytes, mapping: Mapping, *, at_once: bool, cap: int, per_request: int) -> Outcome:
    stream = iter_records(io.BytesIO(data), mapping, max_request_bytes=cap, ids_in_pass=True)
    # iter(): a plain iterator of SerializedOperation, each serialized as its row is read
    ops = stream.operations() if at_once else iter(stream.operations())
    made: list[tuple[bytes, tuple[str, ...], tuple[str, ...]]] = []
    error = None
    try:
        for p in build_bulk_requests(ops, max_bytes=cap, max_operations=per_request):
            made.append((p.body, p.bulk_ids, p.external_ids))
    except ConnectorError as exc:
        error = type(exc).__name__
    return made, list(stream.rejected), stream.stats, error


def _extract(rng: random.Random, rows: int) -> bytes:
    lines = ["Id,Upn,Title"]
    for i in range(rows):
        title = rng.choices(TITLES, weights=[80, 6, 6, 4, 4])[0]
        ext = "" if rng.random() < 0.02 else str(i)
        lines.append(f'{ext},u{i}@x,"{title.replace(chr(34), chr(34) * 2)}"')
    return ("\n".join(lines) + "\n").encode()


def _mapping(share: float) -> Mapping:
    return load_mapping(
        f"externalId: Id\nextract: {{max_rejected_share: {share}}}\n"
        "core:\n  userName: Upn\n  title: Title\n  active: {const: true}\n"
    )


@pytest.mark.parametrize("share", [0.03, 0.1, 1.0])
def test_requests_made_at_once_match_one_by_one_packing(share: float) -> None:
    rng = random.Random(share)
    mapping = _mapping(share)
    for _ in range(12):
        data = _extract(rng, rng.randint(1, 130))
        for cap in (1024, 1500, 3000, 9000, 262144):
            for per_request in (50, 3, 1):
                kw = {"cap": cap, "per_request": per_request}
                at_once = _run(data, mapping, at_once=True, **kw)
                assert at_once == _run(data, mapping, at_once=False, **kw)


@pytest.mark.parametrize(
    ("mapping_path", "extract"),
    [(DEFAULT_MAPPING, HR_EXTRACT), (CSV2SCIM_MAPPING, CSV2SCIM_EXTRACT)],
)
def test_sample_files_give_the_same_requests_at_once(mapping_path: Any, extract: Any) -> None:
    mapping = load_mapping(mapping_path)
    data = extract.read_bytes()
    for cap in (4000, 20000, 262144):
        for per_request in (50, 7):
            kw = {"cap": cap, "per_request": per_request}
            assert _run(data, mapping, at_once=True, **kw) == _run(
                data, mapping, at_once=False, **kw
            )


def test_generated_extract_gives_the_same_requests_at_once() -> None:
    buf = io.StringIO()
    generate_extract(buf, 400, seed=7, layout="default")
    mapping = load_mapping(DEFAULT_MAPPING)
    data = buf.getvalue().encode()
    for cap in (1100, 5000, 262144):
        kw = {"cap": cap, "per_request": 50}
        assert _run(data, mapping, at_once=True, **kw) == _run(data, mapping, at_once=False, **kw)


def test_an_oversized_record_is_listed_at_its_line_among_later_rejections() -> None:
    text = "Id,Upn,Title\n1,a@x,short\n2,b@x," + "t" * 1500 + "\n,c@x,short\n4,d@x,short\n"
    mapping = _mapping(1.0)
    stream = iter_records(io.BytesIO(text.encode()), mapping, max_request_bytes=1024)
    payloads = list(build_bulk_requests(stream.operations(), max_bytes=1024))
    assert [b for p in payloads for b in p.bulk_ids] == ["1:L2", "4:L5"]
    assert [(r.line, r.reason_code) for r in stream.rejected] == [
        (3, "operation_too_large"),
        (4, "empty_external_id"),
    ]
    assert stream.stats.rows_accepted == 2
    assert stream.stats.rows_read == 4


def _refused(short_rows: int, per_request: int) -> list[tuple[str, ...]]:
    """The bulkIds of each request handed out before the refusal of ``short_rows`` short
    rows, then a row with no id and an oversized one (the same as one by one)."""
    rows = [f"{i},u{i}@x,short" for i in range(1, short_rows + 1)]
    rows += [",z@x,short", "99,y@x," + "t" * 1500]
    data = ("Id,Upn,Title\n" + "\n".join(rows) + "\n").encode()
    mapping = _mapping(0.05)
    kw = {"cap": 1024, "per_request": per_request}
    at_once = _run(data, mapping, at_once=True, **kw)
    assert at_once[3] == RejectedShareExceededError.__name__
    assert at_once == _run(data, mapping, at_once=False, **kw)
    return [ids for _, ids, _ in at_once[0]]


def test_oversized_records_of_the_last_request_count_towards_the_rejected_share() -> None:
    # 1 of 21 rows rejected (4.8 %) is under the 5 % cap; the oversized last row makes
    # it 2 of 21 (9.5 %): the file is refused although the reader's own count passed.
    handed_out = [b for ids in _refused(19, 50) for b in ids]
    assert handed_out
    assert "19:L20" not in handed_out  # the open request is not handed out


def test_requests_before_an_error_are_those_complete_before_it() -> None:
    # one operation per request: the rows after the last kept one are rejected, then the
    # cap refuses the file; the last kept operation's request was still open
    assert _refused(24, 1)[-1] == ("23:L24",)


def test_preview_requests_are_the_sync_plans_batches() -> None:
    """One serialization: the sync plan rebuilds its batches from stored payload bytes
    (:meth:`PlanOps.operation`); preview serializes whole requests; the bytes agree,
    non-ASCII, quotes, backslashes and non-BMP characters included."""
    rng = random.Random(3)
    mapping = _mapping(1.0)
    data = _extract(rng, 240).replace(b"t" * 1500, b"t" * 100)
    records = list(iter_records(io.BytesIO(data), mapping))
    plan = PlanOps.of(
        PlannedOp("joiner", r.external_id, r.line, b"\x01" * FINGERPRINT_SIZE, True, r.data)
        for r in records
    )
    stream = iter_records(io.BytesIO(data), mapping)
    assert batches_of(plan) == list(build_bulk_requests(stream.operations()))
