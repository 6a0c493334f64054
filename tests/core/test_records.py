"""Extract + mapping → record stream: order, rejections, stats, the share cap, bulk operations."""

from __future__ import annotations

import io

import pytest

from connector.errors import ExtractError, TooManyRejectedRowsError
from connector.extract import ExtractProfile
from connector.mapping import load_mapping
from connector.records import MappedRecord, iter_records
from connector.scim import build_bulk_requests

from .helpers import DEFAULT_MAPPING, HR_EXTRACT, stream

MAPPING = load_mapping(
    """
externalId: Id
extract: {max_rejected_share: 0.5}
core:
  userName: Upn
  active: {column: Status, transforms: [{lookup: {Active: true, Inactive: false}}]}
extensions:
  "urn:x:hr:1.0:User":
    HireDate: {column: Hire, transforms: [date]}
"""
)


def test_records_in_file_order_with_lines() -> None:
    text = "Id,Upn,Status,Hire\n1,a@x,Active,2020-01-02\n2,b@x,Inactive,\n"
    stream_ = iter_records(stream(text), MAPPING)
    records = list(stream_)
    assert records == [
        MappedRecord(
            2,
            "1",
            {
                "schemas": [
                    "urn:ietf:params:scim:schemas:core:2.0:User",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
                    "urn:x:hr:1.0:User",
                ],
                "externalId": "1",
                "userName": "a@x",
                "active": True,
                "urn:x:hr:1.0:User": {"HireDate": "2020-01-02T00:00:00+00:00"},
            },
        ),
        MappedRecord(
            3,
            "2",
            {
                "schemas": [
                    "urn:ietf:params:scim:schemas:core:2.0:User",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
                ],
                "externalId": "2",
                "userName": "b@x",
                "active": False,
            },
        ),
    ]
    assert stream_.stats.rows_accepted == 2
    op = records[0].to_operation()
    assert (op.bulk_id, op.external_id) == ("1:L2", "1")


def test_failed_rows_are_rejected_and_the_rest_goes_on() -> None:
    text = (
        "Id,Upn,Status,Hire\n"
        "1,a@x,Active,2020-02-30\n"
        "2,b@x,Retired,\n"
        "3,c@x,Active,\n"
        "4,d@x,,\n"
        "3,e@x,Active,\n"
        "5,f@x,Active,2021-01-01\n"
    )
    s = iter_records(stream(text), MAPPING, profile=ExtractProfile(max_rejected_share=1.0))
    assert [r.external_id for r in s] == ["5"]
    got = [(r.line, r.external_id, r.reason_code) for r in s.rejected]
    assert got == [
        (2, "1", "invalid_value"),
        (3, "2", "invalid_value"),
        (4, "3", "duplicate_external_id"),
        (5, "4", "invalid_value"),
        (6, "3", "duplicate_external_id"),
    ]
    assert "HireDate" in s.rejected[0].message
    assert s.rejected[1].message.startswith("active:")
    assert s.stats.to_dict()["rejected_by_reason"] == {
        "duplicate_external_id": 2,
        "invalid_value": 3,
    }
    assert s.stats.rows_read == 6
    assert s.stats.rows_accepted == 1


def test_mapping_rejections_count_toward_the_cap() -> None:
    text = "Id,Upn,Status,Hire\n1,a,Active,\n2,b,Nope,\n3,c,Nope,\n"
    s = iter_records(stream(text), MAPPING)
    got = []
    with pytest.raises(TooManyRejectedRowsError, match="2 of 3 rows rejected"):
        got.extend(s)
    assert [r.external_id for r in got] == ["1"]
    relaxed = iter_records(stream(text), MAPPING, profile=ExtractProfile(max_rejected_share=1.0))
    assert len(list(relaxed)) == 1


def test_missing_columns_fail_at_once() -> None:
    with pytest.raises(
        ExtractError, match="lacks columns the mapping <mapping> uses: Status, Hire"
    ):
        iter_records(stream("Id,Upn\n1,a\n"), MAPPING)


def test_profile_from_mapping_is_used() -> None:
    mapping = load_mapping(
        "externalId: Id\nextract: {encoding: cp1252, delimiter: '|'}\n"
        "core: {userName: U, active: {const: true}}\n"
    )
    data = io.BytesIO("Id|U\n1|Renée\n".encode("cp1252"))
    assert [r.data["userName"] for r in iter_records(data, mapping)] == ["Renée"]


def test_sample_extract_to_bulk_requests_is_deterministic() -> None:
    mapping = load_mapping(DEFAULT_MAPPING)

    def bodies() -> list[bytes]:
        with iter_records(HR_EXTRACT, mapping) as s:
            return [p.body for p in build_bulk_requests(s.operations())]

    first = bodies()
    assert first == bodies()
    assert len(first) == 2


@pytest.mark.parametrize("quoted", [False, True])
def test_records_read_only_the_columns_the_mapping_uses(quoted: bool) -> None:
    """Templates, conditions and coalesce see their columns whichever parser reads the row."""
    mapping = load_mapping(
        """
externalId: Id
core:
  userName: {template: "{First}.{Last}@contoso.com", transforms: [lower]}
  active: {column: Status, transforms: [{equals: Active}]}
  title: {column: Title, when: {column: Kind, equals: Employee}}
  displayName: {coalesce: [Nick, First]}
"""
    )
    head = "Unused1,Id,First,Last,Unused2,Status,Title,Kind,Nick\n"
    unused = '"x, y"' if quoted else "v"
    row = f"u,1,Ann,Lee,{unused},Active,Boss,Employee,\n"
    other = "u,2,Bo,Ng,v,Inactive,Cook,Contractor,B\n"
    first, second = list(iter_records(stream(head + row + other), mapping))
    assert second.data["displayName"] == "B"
    assert "title" not in second.data
    rec = first
    assert rec.data == {
        "schemas": rec.data["schemas"],
        "externalId": "1",
        "userName": "ann.lee@contoso.com",
        "active": True,
        "title": "Boss",
        "displayName": "Ann",
    }
