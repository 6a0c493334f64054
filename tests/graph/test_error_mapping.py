"""What a Graph answer means (pure: no network): status, code, request id, Retry-After."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from connector.errors import (
    AuthenticationError,
    BadRequestError,
    BucketFullError,
    GraphError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExhaustedError,
    ServiceError,
    ThrottledError,
    UnsafeEndpointError,
)
from connector.graph.responses import (
    BUCKET_FULL_MESSAGE,
    error_details,
    error_for,
    json_object,
    parse_retry_after,
)

from .helpers import ENDPOINT

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def answer(status: int, body: Any = None, headers: dict[str, str] | None = None) -> httpx.Response:
    request = httpx.Request("POST", ENDPOINT.bulk_upload_url)
    if body is None:
        return httpx.Response(status, headers=headers, request=request)
    if isinstance(body, str):
        return httpx.Response(status, text=body, headers=headers, request=request)
    return httpx.Response(status, json=body, headers=headers, request=request)


def graph_body(message: str, code: str = "Error") -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


@pytest.mark.parametrize("status", [200, 201, 202, 204])
def test_success_is_no_error(status: int) -> None:
    assert error_for(answer(status)) is None


@pytest.mark.parametrize(
    ("status", "body", "error_type"),
    [
        (400, graph_body("bad value", "BadRequest"), BadRequestError),
        (401, graph_body("expired", "InvalidAuthenticationToken"), AuthenticationError),
        (403, graph_body("Forbidden", "Authorization_RequestDenied"), PermissionDeniedError),
        (404, graph_body("not found", "ResourceNotFound"), NotFoundError),
        (429, graph_body("slow down", "TooManyRequests"), ThrottledError),
        (500, graph_body(BUCKET_FULL_MESSAGE, "InternalServerError"), BucketFullError),
        (500, graph_body("oops", "InternalServerError"), ServiceError),
        (503, graph_body("unavailable", "ServiceUnavailable"), ServiceError),
        (418, graph_body("teapot", "Teapot"), GraphError),
    ],
)
def test_each_status_maps_to_its_error_with_code_and_request_id(
    status: int, body: dict[str, Any], error_type: type[GraphError]
) -> None:
    error = error_for(answer(status, body, {"request-id": "req-1"}), endpoint=ENDPOINT)
    assert type(error) is error_type
    assert isinstance(error, GraphError)
    assert error.status == status
    assert error.request_id == "req-1"
    assert error.code == body["error"]["code"]


def test_400_message_is_the_service_message() -> None:
    error = error_for(answer(400, graph_body("invalid value in E00017", "BadRequest")))
    assert str(error) == "invalid value in E00017"


def test_403_names_the_permission_of_the_call_kind() -> None:
    upload = error_for(answer(403, graph_body("Forbidden")), kind="upload")
    logs = error_for(answer(403, graph_body("Forbidden")), kind="logs")
    assert "SynchronizationData-User.Upload" in str(upload)
    assert "AuditLog.Read.All and Directory.Read.All" in str(logs)
    assert "ProvisioningLog.Read.All" in str(logs)


def test_403_names_the_request_that_failed() -> None:
    request = httpx.Request("GET", ENDPOINT.job_url)
    error = error_for(
        httpx.Response(403, json=graph_body("Forbidden"), request=request), kind="job-read"
    )
    assert f"GET /beta/servicePrincipals/{ENDPOINT.service_principal_id}" in str(error)
    assert "Synchronization.Read.All" in str(error)


def test_bucket_full_names_the_documented_remedy() -> None:
    error = error_for(answer(500, graph_body(BUCKET_FULL_MESSAGE)))
    assert isinstance(error, BucketFullError)
    text = str(error)
    assert "fix the mapping" in text
    assert "connector job restart" in text
    assert "40 minutes" in text


def test_404_names_the_service_principal_and_job() -> None:
    error = error_for(answer(404, graph_body("nope")), endpoint=ENDPOINT)
    assert ENDPOINT.service_principal_id in str(error)
    assert "API2AAD." in str(error)


def test_bucket_full_is_recognised_by_its_documented_text_only_on_500() -> None:
    assert isinstance(error_for(answer(500, graph_body("The bucket is full"))), BucketFullError)
    assert isinstance(error_for(answer(503, graph_body(BUCKET_FULL_MESSAGE))), ServiceError)


def test_429_carries_retry_after_and_a_long_one_is_a_spent_quota() -> None:
    short = error_for(answer(429, headers={"Retry-After": "7"}), now=NOW, attempts=6)
    assert isinstance(short, ThrottledError)
    assert short.retry_after == 7.0
    assert "after 6 attempts" in str(short)
    dated = error_for(
        answer(429, headers={"Retry-After": "Thu, 01 Jan 2026 00:00:30 GMT"}), now=NOW
    )
    assert isinstance(dated, ThrottledError)
    assert dated.retry_after == 30.0
    none = error_for(answer(429), now=NOW)
    assert isinstance(none, ThrottledError)
    assert none.retry_after is None
    long = error_for(answer(429, headers={"Retry-After": "3600"}), now=NOW, max_retry_after=300)
    assert isinstance(long, QuotaExhaustedError)
    assert "3600 s" in str(long)


def test_5xx_message_counts_the_attempts() -> None:
    assert "502 3 times" in str(error_for(answer(502, graph_body("bad gateway")), attempts=3))


def test_redirect_is_an_unsafe_endpoint_not_followed() -> None:
    error = error_for(answer(307, headers={"Location": "https://evil.example/collect"}))
    assert isinstance(error, UnsafeEndpointError)
    assert "evil.example" in str(error)
    assert "never follows redirects" in str(error)


def test_unexpected_status_names_the_request() -> None:
    error = error_for(answer(418, graph_body("teapot")))
    assert "unexpected HTTP 418 from POST" in str(error)
    assert "/bulkUpload" in str(error)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (graph_body("the message", "TheCode"), ("the message", "TheCode")),
        ({"error": {"code": "OnlyCode"}}, ("{'code': 'OnlyCode'}", "OnlyCode")),
        ({"detail": "scim detail", "scimType": "invalidValue"}, ("scim detail", "invalidValue")),
        ({"detail": "scim detail"}, ("scim detail", None)),
        ("plain text failure", ("plain text failure", None)),
        (None, ("HTTP 400", None)),
    ],
)
def test_error_details_read_graph_scim_and_text_bodies(
    body: Any, expected: tuple[str, str | None]
) -> None:
    assert error_details(answer(400, body)) == expected


def test_json_object_refuses_what_is_not_a_json_object() -> None:
    assert json_object(answer(200, {"a": 1})) == {"a": 1}
    with pytest.raises(GraphError, match="not JSON"):
        json_object(answer(200, "<html>"))
    with pytest.raises(GraphError, match="not an object"):
        json_object(answer(200, [1, 2]))


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("5", 5.0),
        (" 2.5 ", 2.5),
        ("-3", 0.0),
        ("soon", None),
        ("", None),
        (None, None),
        ("Thu, 01 Jan 2026 00:00:30 GMT", 30.0),
        ("Wed, 31 Dec 2025 23:00:00 GMT", 0.0),
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header, NOW) == expected
