"""What a Graph answer means: the pure mapping from an HTTP response to the connector's error.

Nothing here sends a request or waits: :func:`error_for` reads one ``httpx.Response``
(status, ``request-id``, the Graph error body, ``Retry-After``) and names the exception
of :mod:`connector.errors` it stands for; the client's retry loop decides whether to try
again. Documented by Microsoft: 202 accepted; 400 body refused; 401 token; 403 missing
permission; 404 unknown service principal or job; 429 throttled; 500 with "The bucket
that stores the ingested data is full…" is back-pressure. Our assumptions: the 400 body
is Graph's usual ``{"error": {"code", "message"}}`` (or SCIM's ``detail``), and a
``Retry-After`` longer than we are willing to wait means the quota is spent.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypedDict
from urllib.parse import urlsplit

import httpx
import orjson

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
from connector.graph.endpoint import ProvisioningEndpoint

__all__ = [
    "BUCKET_FULL_MESSAGE",
    "BUCKET_FULL_REMEDY",
    "PERMISSIONS",
    "error_details",
    "error_for",
    "is_bucket_full",
    "json_object",
    "parse_retry_after",
]

BUCKET_FULL_MESSAGE = (
    "The bucket that stores the ingested data is full, please wait for the synchronization"
    " service to process the ingested data and retry this request."
)
_BUCKET_FULL = re.compile(r"bucket\b.*\bfull", re.IGNORECASE | re.DOTALL)

PERMISSIONS = {
    "upload": "SynchronizationData-User.Upload (or SynchronizationData-User.Upload.OwnedBy)",
    "logs": "AuditLog.Read.All and Directory.Read.All (Microsoft's setup guide names"
    " ProvisioningLog.Read.All instead; grant both sets)",
    "job-read": "Synchronization.Read.All (or Application.ReadWrite.OwnedBy)",
    "job-write": "Synchronization.ReadWrite.All (or Application.ReadWrite.OwnedBy)",
    "schema-read": "Synchronization.Read.All (or Application.ReadWrite.OwnedBy)",
    "schema-write": "Synchronization.ReadWrite.All (or Application.ReadWrite.OwnedBy)",
}
"""The application permission each kind of call needs, named in a 403's message.

From the permissions tables of the Graph API pages: bulkUpload (least privileged
``SynchronizationData-User.Upload.OwnedBy``), "List provisioningObjectSummary" ("AuditLog.Read.All
and Directory.Read.All"), get/start/pause/restart job and get/update schema
(``Application.ReadWrite.OwnedBy``; ``Synchronization.Read.All`` / ``.ReadWrite.All``).
"""

BUCKET_FULL_REMEDY = (
    "failed payloads stay in the job's queue until the job is restarted: fix the mapping or"
    " data errors shown in the provisioning logs, restart the job (connector job restart),"
    " wait about 40 minutes, then send again; if the job is paused or in quarantine, start it"
)
"""Microsoft's known issues for API-driven provisioning: "Failed payloads remain in the
queue, which can eventually fill the bucket" -> "fix mapping or data issues, restart the
provisioning job, and resend the requests"; "Wait about 40 minutes, then resend"."""


class _ErrorFields(TypedDict):
    """What every GraphError of an HTTP answer carries, for Microsoft support."""

    status: int
    request_id: str | None
    code: str | None


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date), or None."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - now).total_seconds()
    if seconds != seconds or seconds in (float("inf"), float("-inf")):  # NaN / inf
        return None
    return max(0.0, seconds)


def error_details(response: httpx.Response) -> tuple[str, str | None]:
    """The service's error message and code from a Graph-style error body (or its text)."""
    try:
        body = orjson.loads(response.content) if response.content else None
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            message = err.get("message")
            code = err.get("code")
            return (str(message) if message else str(err)), (str(code) if code else None)
        if "detail" in body:  # SCIM-style error
            return str(body["detail"]), str(body.get("scimType") or "") or None
    text = response.text.strip() if response.content else ""
    return (text[:500] or f"HTTP {response.status_code}"), None


def is_bucket_full(status: int, message: str) -> bool:
    """The job's ingestion queue is full: a 500 whose message says so (documented text)."""
    return status == 500 and _BUCKET_FULL.search(message) is not None


def error_for(
    response: httpx.Response,
    *,
    kind: str = "upload",
    endpoint: ProvisioningEndpoint | None = None,
    attempts: int = 1,
    now: datetime | None = None,
    max_retry_after: float = 300.0,
) -> GraphError | UnsafeEndpointError | None:
    """The error ``response`` stands for, or None for a 2xx.

    ``kind`` names the call (``upload``, ``logs``, ``job-read``…) so a 403 can name the
    permission; ``attempts`` is how many tries the answer ends, for the messages of the
    retryable errors (429, 5xx) once the loop gives up; ``now`` reads an HTTP-date
    ``Retry-After``; a 429 asking for more than ``max_retry_after`` seconds is a spent quota.
    """
    status = response.status_code
    if 200 <= status < 300:
        return None
    method, path = _request_line(response)
    if 300 <= status < 400:
        where = response.headers.get("location", "?")
        return UnsafeEndpointError(
            f"{method} {path} answered {status} redirecting to {where!r};"
            " the client never follows redirects with a token"
        )
    message, code = error_details(response)
    fields = _ErrorFields(status=status, request_id=response.headers.get("request-id"), code=code)
    if status == 401:
        return AuthenticationError(
            f"Graph refused the token twice (401 {code or ''}: {message}); check the"
            " identity, its tenant and the token's audience (https://graph.microsoft.com)",
            **fields,
        )
    if status == 403:
        return PermissionDeniedError(
            f"403 from Graph on {method} {path} ({message}): the identity lacks the"
            f" application permission {PERMISSIONS.get(kind, kind)}; grant it with admin"
            " consent (see docs/deploy.md)",
            **fields,
        )
    if status == 404:
        return NotFoundError(_not_found(message, endpoint), **fields)
    if status == 400:
        return BadRequestError(message, **fields)
    if status == 429:
        return _throttled(response, message, fields, attempts, now, max_retry_after)
    if is_bucket_full(status, message):
        return BucketFullError(
            f"the job's ingestion queue is full ({message}); {BUCKET_FULL_REMEDY}",
            **fields,
        )
    if status >= 500:
        return ServiceError(
            f"Graph answered {status} {attempts} times ({message}); retry later", **fields
        )
    return GraphError(f"unexpected HTTP {status} from {method} {path}: {message}", **fields)


def _throttled(
    response: httpx.Response,
    message: str,
    fields: _ErrorFields,
    attempts: int,
    now: datetime | None,
    max_retry_after: float,
) -> ThrottledError | QuotaExhaustedError:
    retry_after = parse_retry_after(
        response.headers.get("retry-after"), now if now is not None else datetime.now(UTC)
    )
    if retry_after is not None and retry_after > max_retry_after:
        return QuotaExhaustedError(
            f"throttled with Retry-After {retry_after:.0f} s (over the"
            f" {max_retry_after:.0f} s we wait): the service's quota is"
            " probably spent; the remaining batches wait for the next run",
            **fields,
        )
    return ThrottledError(
        f"still throttled (429) after {attempts} attempts; lower the pace or retry later",
        retry_after=retry_after,
        **fields,
    )


def _not_found(message: str, endpoint: ProvisioningEndpoint | None) -> str:
    if endpoint is None:
        return f"404 from Graph ({message}): check the Provisioning API endpoint in the portal"
    return (
        f"404 from Graph ({message}): service principal"
        f" {endpoint.service_principal_id} or job {endpoint.job_id} does"
        " not exist; check the Provisioning API endpoint in the portal"
    )


def _request_line(response: httpx.Response) -> tuple[str, str]:
    """The method and path of the request ``response`` answers (``?`` when it has none)."""
    try:
        request = response.request
    except RuntimeError:
        return "?", "?"
    return request.method, urlsplit(str(request.url)).path


def json_object(response: httpx.Response) -> dict[str, Any]:
    """The JSON object of a successful answer; a GraphError when it is not one."""
    try:
        data = orjson.loads(response.content)
    except orjson.JSONDecodeError as exc:
        raise GraphError(
            f"Graph answered {response.status_code} with a body that is not JSON",
            status=response.status_code,
            request_id=response.headers.get("request-id"),
        ) from exc
    if not isinstance(data, dict):
        raise GraphError("Graph answered with JSON that is not an object")
    return data
