"""Records whose bulk operation alone is over the request byte cap are rejected, not fatal."""

from __future__ import annotations

import csv
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from connector.cli import core
from connector.errors import TooManyRejectedRowsError
from connector.mapping import load_mapping
from connector.records import iter_records
from connector.scim import (
    BulkOperation,
    SerializedOperation,
    build_bulk_requests,
    max_operation_bytes,
    serialize_operation,
)

from .helpers import DEFAULT_MAPPING, HR_EXTRACT, stream

MAPPING = load_mapping(
    """
externalId: Id
extract: {max_rejected_share: 0.5}
core:
  userName: Upn
  title: Title
  active: {const: true}
"""
)
CAP = 1024
TEXT = (
    "Id,Upn,Title\n"
    "1,a@x,short\n"
    f"2,b@x,{'t' * 1500}\n"  # under the 4 KiB field cap, but its operation is over 1 KiB
    "3,c@x,short\n"
)


@pytest.mark.parametrize("as_operations", [True, False])
def test_oversized_operation_is_rejected_with_line_and_reason(as_operations: bool) -> None:
    records = iter_records(stream(TEXT), MAPPING, max_request_bytes=CAP)
    got = list(records.operations() if as_operations else records)
    assert [r.external_id for r in got] == ["1", "3"]
    [rej] = records.rejected
    assert (rej.line, rej.external_id, rej.reason_code) == (3, "2", "operation_too_large")
    assert f"over the request cap of {CAP} bytes" in rej.message
    assert "tttt" not in rej.message
    assert records.stats.rows_read == 3
    assert records.stats.rejected_by_reason == {"operation_too_large": 1}


def test_stream_operations_batch_under_the_same_cap_with_the_same_bytes() -> None:
    records = iter_records(stream(TEXT), MAPPING, max_request_bytes=CAP)
    ops = list(records.operations())
    assert all(isinstance(op, SerializedOperation) for op in ops)
    assert all(op.json == serialize_operation(op) for op in ops)
    payloads = list(build_bulk_requests(ops, max_bytes=CAP))
    plain = [BulkOperation(op.bulk_id, op.external_id, op.data) for op in ops]
    assert [p.body for p in payloads] == [p.body for p in build_bulk_requests(plain, max_bytes=CAP)]
    assert all(len(p.body) <= CAP for p in payloads)


def test_an_operation_exactly_at_the_limit_is_kept() -> None:
    mapping = load_mapping(
        "externalId: Id\nextract: {max_rejected_share: 1}\n"
        "core: {title: T, active: {const: true}}\n"
    )
    [one] = list(iter_records(stream("Id,T\n1,t\n"), mapping).operations())
    room = max_operation_bytes(CAP) - len(one.json) + 1  # title length that fills the request

    def ops(title_length: int) -> list[SerializedOperation]:
        text = f"Id,T\n1,{'t' * title_length}\n"
        return list(iter_records(stream(text), mapping, max_request_bytes=CAP).operations())

    [kept] = ops(room)
    [payload] = build_bulk_requests([kept], max_bytes=CAP)
    assert len(payload.body) == CAP
    assert ops(room + 1) == []


def test_oversized_operations_count_toward_the_share_cap() -> None:
    text = "Id,Upn,Title\n1,a@x,x\n" + "".join(f"{i},u,{'t' * 1500}\n" for i in range(2, 5))
    records = iter_records(stream(text), MAPPING, max_request_bytes=CAP)
    with pytest.raises(TooManyRejectedRowsError, match="3 of 4 rows rejected"):
        list(records.operations())


def test_default_cap_is_the_batch_builders() -> None:
    records = iter_records(HR_EXTRACT, load_mapping(DEFAULT_MAPPING))
    assert records.max_request_bytes == 256 * 1024
    assert len(list(build_bulk_requests(records.operations()))) == 2


def test_preview_with_a_small_byte_cap_rejects_instead_of_crashing(tmp_path: Path) -> None:
    lines = HR_EXTRACT.read_text(encoding="utf-8").splitlines(keepends=True)
    fields = next(csv.reader([lines[5]]))
    fields[6] = "Principal " * 120  # JobTitle: 1200 characters, under the 4 KiB field cap
    lines[5] = ",".join(fields) + "\n"
    extract = tmp_path / "hr.csv"
    extract.write_text("".join(lines), encoding="utf-8")
    out = tmp_path / "out"
    app = core.typer.Typer()
    core.register(app)
    args = ["preview", "-m", str(DEFAULT_MAPPING), str(extract), "-o", str(out), "--json"]
    res = CliRunner().invoke(app, [*args, "--max-bytes", "1500"])
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    assert res.exit_code == 0, res.output
    summary = orjson.loads(res.stdout)
    assert summary["rejected_by_reason"] == {"operation_too_large": 1}
    assert summary["rows_accepted"] == 59
    with (out / "rejected.csv").open(encoding="utf-8") as f:
        [row] = list(csv.DictReader(f))
    assert (row["line"], row["externalId"], row["reason"]) == (
        "6",
        fields[0],
        "operation_too_large",
    )
    assert all(len(p.read_bytes()) <= 1500 for p in out.glob("bulk-*.json"))
