"""Fuzzing the emulator's bulkUpload parser: any body is operations or a
BulkValidationError (a body that is not JSON is answered 400 by the app), and every
operation it accepts is processed into a log entry; never a crash."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.strategies import json_bytes, tree
from tests.fuzz.targets import holds

FUZZ = settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])

BULK = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
KEYS = [
    "schemas", "Operations", "operations", "method", "bulkId", "path", "data", "externalId",
    "userName", "active", "displayName", "name", "givenName", "familyName", "emails",
    "phoneNumbers", "addresses", "value", "type", "primary", "manager", ENTERPRISE,
    "employeeNumber", "department", "urn:x:1.0:User", "title",
]  # fmt: skip
WORDS = [BULK, CORE, ENTERPRISE, "POST", "DELETE", "PATCH", "/Users", "/Groups", "1", "work"]
USER_SCHEMAS = st.sampled_from([[CORE, ENTERPRISE], [CORE, ENTERPRISE, "urn:x:1.0:User"], [CORE]])


def _envelope(ops: list[Any]) -> dict[str, Any]:
    return {"schemas": [BULK], "Operations": ops}


OPERATION = st.fixed_dictionaries(
    {
        "method": st.sampled_from(["POST", "POST", "DELETE"]),
        "bulkId": st.sampled_from(["1", "2", ""]),
        "path": st.sampled_from(["/Users", "/Users", "/x"]),
        "data": st.builds(
            lambda schemas, ext, rest: {"schemas": schemas, "externalId": ext, **rest},
            USER_SCHEMAS,
            st.one_of(st.sampled_from(["100001", "100002", " ", "\x00"]), st.integers(-1, 3)),
            st.dictionaries(st.sampled_from(KEYS[7:]), tree(KEYS, WORDS), max_size=6),
        ),
    }
)


@FUZZ
@given(json_bytes(st.lists(OPERATION, min_size=1, max_size=4).map(_envelope)))
def test_near_valid_requests_are_processed_or_refused_with_a_bulk_error(data: bytes) -> None:
    holds("bulk", data)


@FUZZ
@given(json_bytes(tree(KEYS, WORDS)))
def test_json_trees_are_operations_or_a_bulk_error(data: bytes) -> None:
    holds("bulk", data)


@FUZZ
@given(st.binary(max_size=200))
def test_any_bytes_are_refused_or_parsed(data: bytes) -> None:
    holds("bulk", data)
