"""bulkUpload over loopback: routing, Content-Type, invalid JSON, 202 headers."""

from __future__ import annotations

import httpx
import pytest

from connector.emulator import RunningEmulator

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


def test_invalid_json_is_400(emu: RunningEmulator) -> None:
    response = post(emu, b'{"schemas": [')
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]["message"]
