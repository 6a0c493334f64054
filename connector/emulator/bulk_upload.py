"""``POST …/jobs/{job}/bulkUpload``: the checks in their order, then the upload queued in the
job's bucket and 202.

The handler does the minimum per request (auth, limits, one orjson parse, shape checks)
and queues the operations; the worker applies them in the background, so the emulator
keeps up with any paced client. Order of the checks (assumed; Microsoft states none):
401 → 404 → 403 → fault lottery → 429 → Content-Type 400 → body 400 → bucket full 500 →
202 (docs/emulator.md, *bulkUpload*).
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from connector.emulator.auth import authenticate, job_or_404
from connector.emulator.bulk_request import ignored_operation, validate_bulk_request
from connector.emulator.config import BUCKET_FULL_MESSAGE
from connector.emulator.faults import Dropped, Fault
from connector.emulator.job import JobRuntime, Upload
from connector.emulator.responses import (
    base_url,
    graph_error,
    graph_version,
    request_ids,
    tenant,
    worker,
)
from connector.errors import BulkValidationError
from connector.scim import CONTENT_TYPE

__all__ = ["post_bulk_upload"]


async def post_bulk_upload(request: Request) -> Response:
    found = _job_for_upload(request)
    if isinstance(found, Response):
        return found
    raw = await request.body()
    fault, latency = tenant(request).faults.draw()
    if latency > 0:
        await asyncio.sleep(latency)
    refused = _fault_answer(request, fault)
    if refused is None:
        refused = _throttled(request)
    if refused is not None:
        return refused
    ops = _operations(request, raw)
    if isinstance(ops, Response):
        return ops
    return _queue(request, found, ops, fault)


def _job_for_upload(request: Request) -> JobRuntime | Response:
    """401 for the token, 404 for the path, then 403 without the upload role: an unknown
    job is 404 even for a token without the role."""
    denied = authenticate(request, upload=False)
    if denied is not None:
        return denied
    found = job_or_404(request)
    if isinstance(found, Response):
        return found
    denied = authenticate(request, upload=True)
    return found if denied is None else denied


def _fault_answer(request: Request, fault: str) -> Response | None:
    """An injected 500/503 (not queued), or a connection dropped before queueing."""
    state = tenant(request)
    if fault in (Fault.ERROR_500, Fault.ERROR_503):
        status = 500 if fault == Fault.ERROR_500 else 503
        state.record_call(status, 0)
        code = "InternalServerError" if status == 500 else "ServiceUnavailable"
        return graph_error(request, status, code, "The service encountered a transient error.")
    if fault == Fault.DROP_BEFORE:
        state.record_call(0, 0)
        return Dropped()
    return None


def _throttled(request: Request) -> Response | None:
    """429 ``TooManyRequests`` from the 40/5 s window or the daily quota, with
    ``Retry-After`` in whole seconds (at least 1) unless ``retry_after`` is off."""
    state = tenant(request)
    limited = state.limits.check_upload()
    if limited is None:
        return None
    which, retry = limited
    state.record_call(429, 0)
    cfg = state.config
    headers = {"Retry-After": str(max(1, math.ceil(retry)))} if cfg.retry_after else {}
    message = (
        f"Too many requests: at most {cfg.rate_limit_calls} calls in any"
        f" {cfg.rate_limit_window_seconds:g}-second window."
        if which == "rate"
        else f"The tenant's daily quota of {cfg.daily_quota} API calls is used up."
    )
    return graph_error(request, 429, "TooManyRequests", message, headers)


def _content_type_ok(value: str) -> bool:
    """``application/scim+json``, compared case-insensitively; parameters such as
    ``charset`` allowed (a wrong type is "the most common cause" of 400)."""
    media = value.split(";", 1)[0].strip().lower()
    return media == CONTENT_TYPE


def _operations(request: Request, raw: bytes) -> list[dict[str, Any]] | Response:
    """The request's operations, or the 400 for its Content-Type or body."""
    state = tenant(request)
    content_type = request.headers.get("content-type", "")
    if not _content_type_ok(content_type):
        state.record_call(400, 0)
        return graph_error(
            request,
            400,
            "BadRequest",
            f"Invalid Data Format: Content-Type must be '{CONTENT_TYPE}'"
            f" (got '{content_type or 'none'}').",
        )
    try:
        return validate_bulk_request(orjson.loads(raw))
    except orjson.JSONDecodeError as exc:
        state.record_call(400, 0)
        return graph_error(request, 400, "BadRequest", f"The body is not valid JSON: {exc}")
    except BulkValidationError as exc:
        state.record_call(400, 0)
        return graph_error(request, 400, "BadRequest", f"Invalid BulkRequest: {exc}")


def _queue(request: Request, job: JobRuntime, ops: list[dict[str, Any]], fault: str) -> Response:
    """Queue the POSTs (DELETEs are counted and ignored) unless the bucket would overflow
    (500 with the documented "bucket … is full" message); then 202, or a connection
    dropped after queueing."""
    state = tenant(request)
    posts = [op for op in ops if not ignored_operation(op)]
    job.ignored_operations += len(ops) - len(posts)
    if job.bucket_full(len(posts), state.config.bucket_size):
        state.record_call(500, 0)
        return graph_error(request, 500, "InternalServerError", BUCKET_FULL_MESSAGE)
    request_id, client_request_id = request_ids(request)
    if posts:
        job.queue.append(Upload(posts, request_id, state.clock.now()))
        job.queued_operations += len(posts)
    worker(request).wake()
    if fault == Fault.DROP_AFTER:
        state.record_call(0, len(ops))
        return Dropped()
    state.record_call(202, len(ops))
    version = graph_version(request)
    location = (
        f"{base_url(request)}/{version}/auditLogs/provisioning/?$filter=jobid%20eq%20'{job.id}'"
    )
    return Response(
        b"",
        202,
        {
            "Location": location,
            "request-id": request_id,
            "client-request-id": client_request_id,
            "Content-Type": "application/json",
        },
    )
