"""bulkUpload over loopback: auth, routing, Content-Type, every body rule, 202 headers."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest

from connector.emulator import RunningEmulator
from connector.scim import CORE_USER_SCHEMA, ENTERPRISE_USER_SCHEMA

from .helpers import bulk, headers, post, record


def test_accepted_upload_answers_202_with_documented_headers(emu: RunningEmulator) -> None:
    response = post(emu, bulk(record("1001")), hdrs=headers(emu, **{"client-request-id": "abc-1"}))
    assert response.status_code == 202
    assert response.content == b""
    assert response.headers["client-request-id"] == "abc-1"
    assert len(response.headers["request-id"]) == 36
    assert response.headers["location"] == (
        f"{emu.base_url}/v1.0/auditLogs/provisioning/?$filter=jobid%20eq%20'{emu.job_id}'"
    )
    emu.wait_idle(5)
    assert emu.users()["1001"]["accountEnabled"] is True


def test_client_request_id_is_generated_when_absent(emu: RunningEmulator) -> None:
    first = post(emu, bulk(record("1")))
    second = post(emu, bulk(record("2")))
    assert first.headers["client-request-id"] != second.headers["client-request-id"]
    assert first.headers["request-id"] != second.headers["request-id"]


def test_beta_path_is_served_and_location_keeps_beta(emu: RunningEmulator) -> None:
    url = emu.endpoint_url.replace("/v1.0/", "/beta/")
    response = post(emu, bulk(record("1001")), url=url)
    assert response.status_code == 202
    assert response.headers["location"].startswith(f"{emu.base_url}/beta/auditLogs/provisioning/")


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        (None, "Access token is empty."),
        ("Basic abc", "Access token is empty."),
        ("Bearer not-a-known-token", "Access token validation failure."),
    ],
)
def test_missing_or_unknown_token_is_401(
    emu: RunningEmulator, auth: str | None, message: str
) -> None:
    hdrs = headers(emu)
    hdrs.pop("Authorization")
    if auth:
        hdrs["Authorization"] = auth
    response = post(emu, bulk(record("1")), hdrs=hdrs)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert response.json()["error"]["message"] == message
    assert emu.queue_length() == 0


def test_expired_token_is_401_and_role_less_token_is_403(make_emulator: Any) -> None:
    emu = make_emulator(expired_tokens=["old"], tokens_without_upload_role=["reader"])
    expired = post(emu, bulk(record("1")), hdrs=headers(emu, Authorization="Bearer old"))
    assert expired.status_code == 401
    assert "expired" in expired.json()["error"]["message"]
    denied = post(emu, bulk(record("1")), hdrs=headers(emu, Authorization="Bearer reader"))
    assert denied.status_code == 403
    assert "SynchronizationData-User.Upload" in denied.json()["error"]["message"]
    # The role-less token may still read the logs (AuditLog/ProvisioningLog permission).
    logs = httpx.get(
        emu.graph_url + "/auditLogs/provisioning", headers={"Authorization": "Bearer reader"}
    )
    assert logs.status_code == 200
    assert emu.queue_length() == 0


def test_unknown_service_principal_or_job_is_404(emu: RunningEmulator) -> None:
    bad_job = emu.endpoint_url.replace(emu.job_id, "API2AAD.00.11")
    response = post(emu, bulk(record("1")), url=bad_job)
    assert response.status_code == 404
    assert "API2AAD.00.11" in response.json()["error"]["message"]
    bad_sp = emu.endpoint_url.replace(emu.service_principal_id, "0000")
    response = post(emu, bulk(record("1")), url=bad_sp)
    assert response.status_code == 404
    assert "service principal '0000'" in response.json()["error"]["message"]


def test_only_post_is_allowed(emu: RunningEmulator) -> None:
    response = httpx.put(emu.endpoint_url, content=b"{}", headers=headers(emu))
    assert response.status_code == 405


@pytest.mark.parametrize(
    "content_type", ["application/json", "text/plain", "", "application/scim+xml"]
)
def test_wrong_content_type_is_400(emu: RunningEmulator, content_type: str) -> None:
    hdrs = headers(emu, **{"Content-Type": content_type})
    response = post(emu, bulk(record("1")), hdrs=hdrs)
    assert response.status_code == 400
    assert "Content-Type" in response.json()["error"]["message"]
    assert emu.queue_length() == 0


def test_content_type_with_charset_is_accepted(emu: RunningEmulator) -> None:
    hdrs = headers(emu, **{"Content-Type": "application/scim+json; charset=utf-8"})
    assert post(emu, bulk(record("1")), hdrs=hdrs).status_code == 202


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


def test_invalid_json_is_400(emu: RunningEmulator) -> None:
    response = post(emu, b'{"schemas": [')
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]["message"]


def test_custom_namespace_listed_in_schemas_is_accepted(emu: RunningEmulator) -> None:
    rec = record("1", **{"urn:contoso:employee": {"HireDate": "2021-05-01T00:00:00-05:00"}})
    rec["schemas"].append("urn:contoso:employee")
    assert post(emu, bulk(rec)).status_code == 202
