"""The BulkRequest body rules: each broken rule is a 400 naming it; what Microsoft's examples
send (a repeated bulkId, DELETE operations, custom namespaces listed in data.schemas) is
accepted."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from connector.emulator import RunningEmulator
from connector.emulator.bulk_request import ignored_operation, validate_bulk_request
from connector.errors import BulkValidationError
from connector.scim import CORE_USER_SCHEMA, ENTERPRISE_USER_SCHEMA

from .helpers import bulk, logs_for, post, queue_info, record, upload


def _mutate(path: str, value: Any) -> dict[str, Any]:
    body = bulk(record("1"), record("2"))
    target: Any = body
    keys = path.split(".")
    for key in keys[:-1]:
        target = target[int(key)] if key.isdigit() else target[key]
    last: Any = int(keys[-1]) if keys[-1].isdigit() else keys[-1]
    if value is _DELETE:
        del target[last]
    else:
        target[last] = value
    return body


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("schemas", ["urn:wrong"], "schemas must be a list containing"),
        ("schemas", _DELETE, "schemas must be a list containing"),
        ("Operations", _DELETE, "Operations is missing"),
        ("Operations", {}, "Operations must be an array"),
        ("Operations", [], "Operations is empty"),
        ("Operations.1", "x", "Operations[1] must be an object"),
        ("Operations.1.method", "PATCH", "Operations[1].method must be 'POST'"),
        ("Operations.0.path", "/Groups", "Operations[0].path must be '/Users'"),
        ("Operations.0.bulkId", _DELETE, "Operations[0].bulkId must be a non-empty string"),
        ("Operations.0.bulkId", "", "Operations[0].bulkId must be a non-empty string"),
        ("Operations.0.data", _DELETE, "Operations[0].data must be an object"),
        ("Operations.0.data.schemas", _DELETE, "Operations[0].data.schemas must be an array"),
        ("Operations.0.data.schemas", [CORE_USER_SCHEMA], ENTERPRISE_USER_SCHEMA),
        ("Operations.0.data.schemas", [ENTERPRISE_USER_SCHEMA], CORE_USER_SCHEMA),
        ("Operations.0.data.externalId", _DELETE, "data.externalId must be a non-empty string"),
        ("Operations.0.data.externalId", 1.5, "data.externalId must be a non-empty string"),
        (
            "Operations.0.data.urn:contoso:employee",
            {"HireDate": "2021-05-01T00:00:00Z"},
            "namespace 'urn:contoso:employee' but data.schemas does not list it",
        ),
    ],
)
def test_each_body_rule_is_a_400_naming_the_problem(
    emu: RunningEmulator, path: str, value: Any, expected: str
) -> None:
    response = post(emu, _mutate(path, value))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "BadRequest"
    assert expected in error["message"]
    assert error["innerError"]["request-id"] == response.headers["request-id"]
    assert emu.queue_length() == 0


def test_lower_case_operations_key_is_refused_with_a_hint(emu: RunningEmulator) -> None:
    body = bulk(record("1"))
    body["operations"] = body.pop("Operations")
    response = post(emu, body)
    assert response.status_code == 400
    assert "capital O" in response.json()["error"]["message"]


def test_fifty_operations_pass_and_fifty_one_fail(emu: RunningEmulator) -> None:
    fifty = bulk(*(record(str(i)) for i in range(50)))
    assert post(emu, fifty).status_code == 202
    fifty_one = copy.deepcopy(fifty)
    fifty_one["Operations"].append(
        {"method": "POST", "bulkId": "b50", "path": "/Users", "data": record("50")}
    )
    response = post(emu, fifty_one)
    assert response.status_code == 400
    assert "51 operations" in response.json()["error"]["message"]


def test_custom_namespace_listed_in_schemas_is_accepted(emu: RunningEmulator) -> None:
    rec = record("1", **{"urn:contoso:employee": {"HireDate": "2021-05-01T00:00:00-05:00"}})
    rec["schemas"].append("urn:contoso:employee")
    assert post(emu, bulk(rec)).status_code == 202


# --- what Microsoft's examples send is accepted (never stricter than them) -----------


def test_the_same_bulk_id_twice_is_accepted_as_in_the_graph_explorer_tutorial(
    emu: RunningEmulator,
) -> None:
    body = bulk(record("701984"), record("701985"))
    for op in body["Operations"]:
        op["bulkId"] = "897401c2-2de4-4b87-a97f-c02de3bcfc61"
    assert post(emu, body).status_code == 202
    emu.wait_idle(5)
    assert set(emu.users()) == {"701984", "701985"}


def test_delete_is_accepted_and_does_nothing_not_even_a_log_entry(emu: RunningEmulator) -> None:
    upload(emu, record("1"))
    body = bulk(record("2"))
    body["Operations"].append({"method": "DELETE", "bulkId": "d1", "path": "/Users/1"})
    assert post(emu, body).status_code == 202
    emu.wait_idle(5)
    assert set(emu.users()) == {"1", "2"}
    assert emu.users()["1"]["accountEnabled"] is True
    assert len(logs_for(emu, "1")) == 1
    assert queue_info(emu)["ignoredOperations"] == 1


def test_a_request_of_deletes_only_is_accepted(emu: RunningEmulator) -> None:
    body = bulk(record("1"))
    body["Operations"] = [{"method": "DELETE", "bulkId": "d1", "path": "/Users/1"}]
    assert post(emu, body).status_code == 202
    assert emu.queue_length() == 0


def test_delete_operations_pass_validation_and_are_the_ignored_ones() -> None:
    body = bulk(record("1"))
    body["Operations"].append({"method": "DELETE", "bulkId": "d1", "path": "/Users/1"})
    ops = validate_bulk_request(body)
    assert [ignored_operation(op) for op in ops] == [False, True]


def test_validation_names_the_first_broken_operation() -> None:
    body = bulk(record("1"), record("2"))
    del body["Operations"][1]["bulkId"]
    with pytest.raises(BulkValidationError, match=r"Operations\[1\]\.bulkId"):
        validate_bulk_request(body)
