"""The emulator's HTTP surface: Graph-shaped routes under ``/v1.0`` and ``/beta``, plus
``/_emulator/...`` introspection for tests and the demo.

The bulkUpload handler does the minimum per request (auth, limits, one orjson parse,
shape checks) and queues the operations; the worker applies them in the background,
so the emulator keeps up with any paced client.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import ipaddress
import logging
import math
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from connector.clock import Clock
from connector.emulator.config import BUCKET_FULL_MESSAGE, EmulatorConfig
from connector.emulator.model import EmulatorClock, EmulatorState, Fault, JobRuntime, Upload, iso
from connector.emulator.odata import parse_filter
from connector.emulator.processing import Worker
from connector.emulator.schema import compile_schema
from connector.errors import BulkValidationError, FilterError, SchemaError
from connector.scim import (
    BULK_REQUEST_SCHEMA,
    CONTENT_TYPE,
    CORE_USER_SCHEMA,
    ENTERPRISE_USER_SCHEMA,
    MAX_OPERATIONS_PER_REQUEST,
)

__all__ = ["BulkValidationError", "create_app", "is_loopback", "validate_bulk_request"]

log = logging.getLogger(__name__)

UPLOAD_ROLE = "SynchronizationData-User.Upload"
QUARANTINE_REASONS = (
    "EncounteredBaseEscrowThreshold",
    "EncounteredTotalEscrowThreshold",
    "EncounteredEscrowProportionThreshold",
    "EncounteredQuarantineException",
    "Unknown",
    "QuarantinedOnDemand",
    "TooManyDeletes",
    "IngestionInterrupted",
)
RESET_SCOPES = frozenset(
    {
        "None",
        "ConnectorDataStore",
        "Escrows",
        "Watermark",
        "QuarantineState",
        "Full",
        "ForceDeletes",
    }
)
JOB_STATES = ("Active", "Paused", "Quarantine", "NotRun", "NotConfigured")
_LOG_QUERY_OPTIONS = frozenset({"$filter", "$top", "$orderby", "$skiptoken"})


# --- responses ----------------------------------------------------------------


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status, headers, media_type="application/json")


def graph_error(
    request: Request, status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    """A Graph-style error body with the request ids (as Graph's ``innerError``)."""
    request_id, client_request_id = _request_ids(request)
    body = {
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": iso(_state(request).clock.now()),
                "request-id": request_id,
                "client-request-id": client_request_id,
            },
        }
    }
    all_headers = {"request-id": request_id, "client-request-id": client_request_id}
    all_headers.update(headers or {})
    return _json(body, status, all_headers)


def _request_ids(request: Request) -> tuple[str, str]:
    ids = request.scope.get("emulator.ids")
    if ids is None:
        client = request.headers.get("client-request-id") or str(uuid.uuid4())
        ids = (str(uuid.uuid4()), client)
        request.scope["emulator.ids"] = ids
    return ids[0], ids[1]


def _state(request: Request) -> EmulatorState:
    state: EmulatorState = request.app.state.emulator
    return state


def _worker(request: Request) -> Worker:
    worker: Worker = request.app.state.worker
    return worker


def _version(request: Request) -> str:
    """The Graph version the caller used; Location and nextLink keep it."""
    return "beta" if str(request.scope.get("root_path", "")).endswith("/beta") else "v1.0"


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


# --- auth ---------------------------------------------------------------------


def _authenticate(request: Request, *, upload: bool = False) -> Response | None:
    """401 for a missing/unknown/expired token; 403 when ``upload`` needs the role."""
    cfg = _state(request).config
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return graph_error(request, 401, "InvalidAuthenticationToken", "Access token is empty.")
    if token in cfg.expired_tokens:
        return graph_error(
            request,
            401,
            "InvalidAuthenticationToken",
            "Access token has expired or is not yet valid.",
        )
    if token in cfg.tokens or token in cfg.tokens_without_job_roles:
        return None
    if token in cfg.tokens_without_upload_role:
        if upload:
            return graph_error(
                request,
                403,
                "Authorization_RequestDenied",
                f"Insufficient privileges to complete the operation: the application needs the"
                f" {UPLOAD_ROLE} (or {UPLOAD_ROLE}.OwnedBy) application permission.",
            )
        return None
    return graph_error(
        request, 401, "InvalidAuthenticationToken", "Access token validation failure."
    )


def _job_or_404(request: Request) -> JobRuntime | Response:
    sp = request.path_params["sp"]
    job_id = request.path_params["job"]
    state = _state(request)
    job = state.job(sp, job_id)
    if job is not None:
        return job
    what = (
        f"synchronization job '{job_id}'"
        if state.has_service_principal(sp)
        else f"service principal '{sp}'"
    )
    return graph_error(request, 404, "ResourceNotFound", f"The {what} does not exist.")


# --- bulkUpload ---------------------------------------------------------------


def _content_type_ok(value: str) -> bool:
    media = value.split(";", 1)[0].strip().lower()
    return media == CONTENT_TYPE


def validate_bulk_request(body: Any) -> list[dict[str, Any]]:
    """Check a parsed BulkRequest against the documented rules; return its operations.

    Raises BulkValidationError naming the first broken rule and where.
    """
    if not isinstance(body, dict):
        raise BulkValidationError("the body must be a JSON object (a SCIM BulkRequest)")
    schemas = body.get("schemas")
    if not isinstance(schemas, list) or BULK_REQUEST_SCHEMA not in schemas:
        raise BulkValidationError(f"schemas must be a list containing '{BULK_REQUEST_SCHEMA}'")
    ops = body.get("Operations")
    if ops is None:
        hint = " (the key is 'Operations', capital O)" if "operations" in body else ""
        raise BulkValidationError("Operations is missing" + hint)
    if not isinstance(ops, list):
        raise BulkValidationError("Operations must be an array")
    if not ops:
        raise BulkValidationError("Operations is empty; send 1 to 50 operations")
    if len(ops) > MAX_OPERATIONS_PER_REQUEST:
        raise BulkValidationError(
            f"Operations has {len(ops)} operations; the maximum per request is"
            f" {MAX_OPERATIONS_PER_REQUEST}"
        )
    for i, op in enumerate(ops):
        where = f"Operations[{i}]"
        if not isinstance(op, dict):
            raise BulkValidationError(f"{where} must be an object")
        method = op.get("method")
        if method == "DELETE":
            continue  # accepted and ignored: see ignored_operation
        if method != "POST":
            raise BulkValidationError(f"{where}.method must be 'POST', got {method!r}")
        _validate_post(op, where)
    return ops


def ignored_operation(op: dict[str, Any]) -> bool:
    """A DELETE operation: accepted in the request, then neither processed nor logged.

    Microsoft (Q&A 2028268, 2024-09-03): the inbound API "can disable a user but it cannot
    delete them"; a DELETE "doesn't do anything. It's not even logged". The bulkUpload
    resource page: "method key must be set to POST".
    """
    return op.get("method") == "DELETE"


def _validate_post(op: dict[str, Any], where: str) -> None:
    """One POST operation's documented shape. bulkIds may repeat: Microsoft's Graph Explorer
    tutorial sends the same bulkId for both of its operations and gets 202."""
    if op.get("path") != "/Users":
        raise BulkValidationError(f"{where}.path must be '/Users', got {op.get('path')!r}")
    bulk_id = op.get("bulkId")
    if not isinstance(bulk_id, str) or not bulk_id:
        raise BulkValidationError(f"{where}.bulkId must be a non-empty string")
    data = op.get("data")
    if not isinstance(data, dict):
        raise BulkValidationError(f"{where}.data must be an object (the SCIM user)")
    data_schemas = data.get("schemas")
    if not isinstance(data_schemas, list):
        raise BulkValidationError(f"{where}.data.schemas must be an array")
    for required in (CORE_USER_SCHEMA, ENTERPRISE_USER_SCHEMA):
        if required not in data_schemas:
            raise BulkValidationError(f"{where}.data.schemas must include '{required}'")
    ext = data.get("externalId")
    if not _identifier(ext):
        raise BulkValidationError(
            f"{where}.data.externalId must be a non-empty string (or an integer)"
        )
    for key in data:
        if key.startswith("urn:") and key not in data_schemas:
            raise BulkValidationError(
                f"{where}.data uses the namespace '{key}' but data.schemas does not list it"
            )


def _identifier(value: Any) -> bool:
    """externalId is a string in every Microsoft example; an integer is accepted too (its
    decimal text is the id: assumed, undocumented), so the emulator is never stricter."""
    if isinstance(value, str):
        return bool(value.strip())
    return isinstance(value, int) and not isinstance(value, bool)


async def bulk_upload(request: Request) -> Response:
    state = _state(request)
    denied = _authenticate(request, upload=False)
    if denied is not None:
        return denied
    found = _job_or_404(request)
    if isinstance(found, Response):
        return found
    job = found
    denied = _authenticate(request, upload=True)
    if denied is not None:
        return denied
    raw = await request.body()
    fault, latency = state.draw_fault()
    if latency > 0:
        await asyncio.sleep(latency)
    if fault in (Fault.ERROR_500, Fault.ERROR_503):
        status = 500 if fault == Fault.ERROR_500 else 503
        state.record_call(status, 0)
        code = "InternalServerError" if status == 500 else "ServiceUnavailable"
        return graph_error(request, status, code, "The service encountered a transient error.")
    if fault == Fault.DROP_BEFORE:
        state.record_call(0, 0)
        return await _drop(request)
    limited = state.check_limits()
    if limited is not None:
        which, retry = limited
        state.record_call(429, 0)
        headers = {"Retry-After": str(max(1, math.ceil(retry)))} if state.config.retry_after else {}
        message = (
            f"Too many requests: at most {state.config.rate_limit_calls} calls in any"
            f" {state.config.rate_limit_window_seconds:g}-second window."
            if which == "rate"
            else f"The tenant's daily quota of {state.config.daily_quota} API calls is used up."
        )
        return graph_error(request, 429, "TooManyRequests", message, headers)
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
        ops = validate_bulk_request(orjson.loads(raw))
    except orjson.JSONDecodeError as exc:
        state.record_call(400, 0)
        return graph_error(request, 400, "BadRequest", f"The body is not valid JSON: {exc}")
    except BulkValidationError as exc:
        state.record_call(400, 0)
        return graph_error(request, 400, "BadRequest", f"Invalid BulkRequest: {exc}")
    posts = [op for op in ops if not ignored_operation(op)]
    job.ignored_operations += len(ops) - len(posts)
    if job.bucket_full(len(posts), state.config.bucket_size):
        state.record_call(500, 0)
        return graph_error(request, 500, "InternalServerError", BUCKET_FULL_MESSAGE)
    request_id, client_request_id = _request_ids(request)
    if posts:
        job.queue.append(Upload(posts, request_id, state.clock.now()))
        job.queued_operations += len(posts)
    _worker(request).wake()
    if fault == Fault.DROP_AFTER:
        state.record_call(0, len(ops))
        return await _drop(request)
    state.record_call(202, len(ops))
    version = _version(request)
    location = f"{_base(request)}/{version}/auditLogs/provisioning/?$filter=jobid%20eq%20'{job.id}'"
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


class _Dropped(Response):
    """Sends nothing: the connection is closed without a response."""

    def __init__(self) -> None:
        super().__init__(b"", 500)

    async def __call__(
        self,
        scope: Any,
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        transport = scope.get("emulator.transport")
        if transport is None:
            raise ConnectionAbortedError("fault injection: connection dropped")
        transport.close()
        # Wait for uvicorn to notice the disconnect, so it does not try to answer.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(receive(), timeout=5)


async def _drop(request: Request) -> Response:
    return _Dropped()


# --- provisioning logs --------------------------------------------------------


def _encode_token(payload: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(payload)).decode().rstrip("=")


def _decode_token(token: str) -> dict[str, Any]:
    try:
        padded = token + "=" * (-len(token) % 4)
        payload = orjson.loads(base64.urlsafe_b64decode(padded))
    except (binascii.Error, orjson.JSONDecodeError, ValueError) as exc:
        raise FilterError("$skiptoken is not one this service issued") from exc
    if not isinstance(payload, dict) or not {"f", "o", "t", "k"} <= payload.keys():
        raise FilterError("$skiptoken is not one this service issued")
    return payload


async def provisioning_logs(request: Request) -> Response:
    denied = _authenticate(request)
    if denied is not None:
        return denied
    state = _state(request)
    retry = state.check_logs_limit()
    if retry is not None:
        return graph_error(
            request,
            429,
            "TooManyRequests",
            f"Too many requests: at most {state.config.logs_rate_limit_calls} provisioning-log"
            f" reads in any {state.config.logs_rate_limit_window_seconds:g}-second window.",
            {"Retry-After": str(max(1, math.ceil(retry)))},
        )
    params = request.query_params
    unknown = [k for k in params if k.startswith("$") and k not in _LOG_QUERY_OPTIONS]
    if unknown:
        return graph_error(
            request,
            400,
            "BadRequest",
            f"Query option(s) {', '.join(unknown)} are not supported here;"
            " use $filter, $top, $orderby, $skiptoken",
        )
    try:
        token = params.get("$skiptoken")
        if token:
            payload = _decode_token(token)
            filter_text, order, top, key = (
                payload["f"],
                payload["o"],
                int(payload["t"]),
                payload["k"],
            )
        else:
            filter_text = params.get("$filter") or ""
            order = _parse_orderby(params.get("$orderby"))
            top = _parse_top(params.get("$top"), state.config)
            key = None
        clauses = parse_filter(filter_text, _version(request)) if filter_text.strip() else []
    except FilterError as exc:
        return graph_error(request, 400, "BadRequest", f"Invalid filter clause: {exc}")
    after = None
    if key is not None:
        after = (datetime.fromtimestamp(key[0] / 1e6, UTC), int(key[1]))
    page, more = state.logs.page(
        clauses, descending=order == "desc", top=top, after=after, cutoff=state.log_cutoff()
    )
    version = _version(request)
    body: dict[str, Any] = {
        "@odata.context": f"{_base(request)}/{version}/$metadata#auditLogs/provisioning",
        "value": [e.to_json() for e in page],
    }
    if more:
        last = page[-1]
        stamp = int(last.activity.timestamp() * 1_000_000)
        next_token = _encode_token({"f": filter_text, "o": order, "t": top, "k": [stamp, last.seq]})
        body["@odata.nextLink"] = (
            f"{_base(request)}/{version}/auditLogs/provisioning?$skiptoken={next_token}"
        )
    request_id, client_request_id = _request_ids(request)
    return _json(body, headers={"request-id": request_id, "client-request-id": client_request_id})


def _parse_orderby(raw: str | None) -> str:
    if raw is None or not raw.strip():
        return "desc"
    parts = raw.split()
    if parts[0].lower() != "activitydatetime" or len(parts) > 2:
        raise FilterError(f"$orderby {raw!r} is not supported; use 'activityDateTime desc|asc'")
    direction = parts[1].lower() if len(parts) == 2 else "asc"
    if direction not in ("asc", "desc"):
        raise FilterError(f"$orderby direction {parts[1]!r} must be asc or desc")
    return direction


def _parse_top(raw: str | None, cfg: EmulatorConfig) -> int:
    if raw is None:
        return cfg.logs_page_size
    try:
        top = int(raw)
    except ValueError as exc:
        raise FilterError(f"$top must be a positive integer, got {raw!r}") from exc
    if top < 1:
        raise FilterError(f"$top must be a positive integer, got {raw!r}")
    return min(top, cfg.logs_max_top)


# --- jobs and schema ----------------------------------------------------------


async def list_jobs(request: Request) -> Response:
    denied = _authenticate(request)
    if denied is not None:
        return denied
    state = _state(request)
    sp = request.path_params["sp"]
    if not state.has_service_principal(sp):
        return graph_error(
            request, 404, "ResourceNotFound", f"The service principal '{sp}' does not exist."
        )
    jobs = [
        j.to_json() for j in state.jobs.values() if j.service_principal_id.lower() == sp.lower()
    ]
    return _json({"value": jobs})


def _job_call(
    handler: Callable[[Request, JobRuntime], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        denied = _authenticate(request)
        if denied is not None:
            return denied
        found = _job_or_404(request)
        if isinstance(found, Response):
            return found
        if _bearer(request) in _state(request).config.tokens_without_job_roles:
            return graph_error(
                request,
                403,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation: the application needs"
                " Synchronization.Read.All / Synchronization.ReadWrite.All (or"
                " Application.ReadWrite.OwnedBy).",
            )
        return await handler(request, found)

    return endpoint


def _bearer(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


async def get_job(request: Request, job: JobRuntime) -> Response:
    return _json(job.to_json())


async def start_job(request: Request, job: JobRuntime) -> Response:
    job.start()
    _worker(request).wake()
    return Response(status_code=204)


async def pause_job(request: Request, job: JobRuntime) -> Response:
    job.state = "Paused"
    return Response(status_code=204)


async def restart_job(request: Request, job: JobRuntime) -> Response:
    raw = await request.body()
    if raw.strip():
        try:
            body = orjson.loads(raw)
            scope = ((body or {}).get("criteria") or {}).get("resetScope")
        except (orjson.JSONDecodeError, AttributeError):
            return graph_error(request, 400, "BadRequest", "The restart body is not valid JSON.")
        if scope is not None:
            parts = {p.strip() for p in str(scope).split(",") if p.strip()}
            bad = sorted(parts - RESET_SCOPES)
            if bad:
                return graph_error(
                    request,
                    400,
                    "BadRequest",
                    f"resetScope value(s) {', '.join(bad)} are unknown;"
                    f" use {', '.join(sorted(RESET_SCOPES))}",
                )
    job.restart()
    _worker(request).wake()
    return Response(status_code=204)


async def get_schema(request: Request, job: JobRuntime) -> Response:
    return _json(job.schema.raw)


async def put_schema(request: Request, job: JobRuntime) -> Response:
    try:
        job.schema = compile_schema(orjson.loads(await request.body()))
    except orjson.JSONDecodeError as exc:
        return graph_error(request, 400, "BadRequest", f"The schema body is not valid JSON: {exc}")
    except SchemaError as exc:
        return graph_error(request, 400, "BadRequest", f"Invalid synchronization schema: {exc}")
    return Response(status_code=204)


# --- introspection ------------------------------------------------------------


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 (also IPv4-mapped, ``::ffff:127.0.0.1``) and ``localhost``."""
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def _introspection_denied(request: Request) -> Response | None:
    """``/_emulator/*`` reads and rewrites the whole tenant: loopback clients may use it
    freely (tests, the demo); any other client needs one of the emulator's full tokens,
    so ``--host 0.0.0.0`` does not hand the directory to the network."""
    client = request.scope.get("client")
    if client and is_loopback(str(client[0])):
        return None
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip() in _state(request).config.tokens:
        return None
    return _json(
        {
            "error": "the introspection API answers loopback clients only, or a client that"
            " sends 'Authorization: Bearer <the emulator's token>'"
        },
        403,
    )


def _introspection(
    handler: Callable[[Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        denied = _introspection_denied(request)
        if denied is not None:
            return denied
        return await handler(request)

    return endpoint


async def _body_json(request: Request) -> dict[str, Any]:
    raw = await request.body()
    data = orjson.loads(raw) if raw.strip() else {}
    if not isinstance(data, dict):
        raise ValueError("body must be a JSON object")
    return data


async def emu_users(request: Request) -> Response:
    users = _state(request).users
    return _json({"value": [u.to_json() for u in users.values()], "count": len(users)})


async def emu_user(request: Request) -> Response:
    user = _state(request).users.get(request.path_params["external_id"])
    if user is None:
        return _json({"error": "no user with that externalId"}, 404)
    return _json(user.to_json())


async def emu_queue(request: Request) -> Response:
    state = _state(request)
    return _json(
        {
            "queuedOperations": state.queued_operations,
            "jobs": {
                j.id: {
                    "queuedOperations": j.queued_operations,
                    "queuedUploads": len(j.queue),
                    "failedOperations": j.failed_operations,
                    "ignoredOperations": j.ignored_operations,
                }
                for j in state.jobs.values()
            },
        }
    )


async def emu_stats(request: Request) -> Response:
    """Cheap counters (no user bodies): for the demo's report and for benchmarks."""
    state = _state(request)
    return _json(
        {
            "users": len(state.users),
            "logEntries": len(state.logs),
            "queuedOperations": state.queued_operations,
            "calls": len(state.calls),
            "acceptedCalls": sum(1 for c in state.calls if c.status == 202),
            "now": iso(state.clock.now()),
        }
    )


async def emu_reset(request: Request) -> Response:
    state = _state(request)
    state.reset()
    state.clock.set_offset(0.0)
    return Response(status_code=204)


async def emu_jobs(request: Request) -> Response:
    state = _state(request)
    return _json(
        {
            "value": [
                {"servicePrincipalId": j.service_principal_id, **j.to_json()}
                for j in state.jobs.values()
            ]
        }
    )


async def _job_and_body(request: Request) -> tuple[JobRuntime, dict[str, Any]] | Response:
    """The introspected job and the JSON body of a request to change it (or the error)."""
    job = _state(request).jobs.get(request.path_params["job"])
    if job is None:
        return _json({"error": "no such job"}, 404)
    try:
        return job, await _body_json(request)
    except ValueError as exc:
        return _json({"error": str(exc)}, 400)


async def emu_job_state(request: Request) -> Response:
    state = _state(request)
    found = await _job_and_body(request)
    if isinstance(found, Response):
        return found
    job, body = found
    code = body.get("code")
    if code not in JOB_STATES:
        return _json({"error": f"code must be one of {', '.join(JOB_STATES)}"}, 400)
    job.state = code
    job.started = False
    if code == "Quarantine":
        reason = body.get("reason", "QuarantinedOnDemand")
        if reason not in QUARANTINE_REASONS:
            return _json({"error": f"reason must be one of {', '.join(QUARANTINE_REASONS)}"}, 400)
        now = iso(state.clock.now())
        job.quarantine = {
            "currentBegan": now,
            "nextAttempt": now,
            "reason": reason,
            "seriesBegan": now,
            "seriesCount": 1,
            "error": {
                "code": body.get("errorCode", "Quarantined"),
                "message": body.get("message", f"The job is in quarantine: {reason}."),
                "tenantActionable": True,
            },
        }
    else:
        job.quarantine = None
    _worker(request).wake()
    return _json(job.to_json())


async def emu_job_agent(request: Request) -> Response:
    """Turn an on-premises job's provisioning agent on or off: ``{"active": false}``."""
    found = await _job_and_body(request)
    if isinstance(found, Response):
        return found
    job, body = found
    active = body.get("active")
    if not isinstance(active, bool) or not job.on_premises:
        return _json({"error": 'send {"active": true|false} for an API2AD job'}, 400)
    job.set_agent(active, _state(request).clock.now())
    _worker(request).wake()
    return _json(job.to_json())


async def emu_time(request: Request) -> Response:
    state = _state(request)
    if request.method == "POST":
        try:
            body = await _body_json(request)
            if "advanceSeconds" in body:
                state.clock.advance(float(body["advanceSeconds"]))
            if "offsetSeconds" in body:
                state.clock.set_offset(float(body["offsetSeconds"]))
        except (ValueError, TypeError) as exc:
            return _json({"error": str(exc)}, 400)
    return _json({"now": iso(state.clock.now()), "offsetSeconds": state.clock.offset})


async def emu_calls(request: Request) -> Response:
    calls = _state(request).calls
    return _json(
        {
            "value": [
                {"time": iso(c.time), "status": c.status, "operations": c.operations} for c in calls
            ]
        }
    )


# --- assembly -----------------------------------------------------------------


def _graph_routes() -> list[BaseRoute]:
    jobs = "/servicePrincipals/{sp}/synchronization/jobs"
    return [
        Route(jobs + "/{job}/bulkUpload", bulk_upload, methods=["POST"]),
        Route(jobs, list_jobs, methods=["GET"]),
        Route(jobs + "/{job}", _job_call(get_job), methods=["GET"]),
        Route(jobs + "/{job}/start", _job_call(start_job), methods=["POST"]),
        Route(jobs + "/{job}/pause", _job_call(pause_job), methods=["POST"]),
        Route(jobs + "/{job}/restart", _job_call(restart_job), methods=["POST"]),
        Route(jobs + "/{job}/schema", _job_call(get_schema), methods=["GET"]),
        Route(jobs + "/{job}/schema", _job_call(put_schema), methods=["PUT"]),
        Route("/auditLogs/provisioning", provisioning_logs, methods=["GET"]),
        Route("/auditLogs/provisioning/", provisioning_logs, methods=["GET"]),
    ]


def _introspection_routes() -> list[BaseRoute]:
    table: list[tuple[str, Callable[[Request], Awaitable[Response]], list[str]]] = [
        ("/users", emu_users, ["GET"]),
        ("/users/{external_id:path}", emu_user, ["GET"]),
        ("/queue", emu_queue, ["GET"]),
        ("/stats", emu_stats, ["GET"]),
        ("/reset", emu_reset, ["POST"]),
        ("/jobs", emu_jobs, ["GET"]),
        ("/jobs/{job}/state", emu_job_state, ["POST"]),
        ("/jobs/{job}/agent", emu_job_agent, ["POST"]),
        ("/time", emu_time, ["GET", "POST"]),
        ("/calls", emu_calls, ["GET"]),
    ]
    return [
        Route("/_emulator" + path, _introspection(handler), methods=methods)
        for path, handler, methods in table
    ]


class _TransportTap:
    """Outermost ASGI layer: remembers the connection's transport for fault injection."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            cycle = getattr(receive, "__self__", None)
            scope["emulator.transport"] = getattr(cycle, "transport", None)
        await self.app(scope, receive, send)


def create_app(config: EmulatorConfig | None = None, *, clock: Clock | None = None) -> Starlette:
    """Build the emulator app; ``clock`` drives windows, quota days and log timestamps."""
    cfg = config or EmulatorConfig()
    state = EmulatorState(cfg, clock if isinstance(clock, EmulatorClock) else EmulatorClock(clock))
    worker = Worker(state)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        worker.ensure_started()
        yield
        await worker.stop()

    graph = _graph_routes()
    routes: list[BaseRoute] = [
        Mount("/v1.0", routes=graph),
        Mount("/beta", routes=graph),
        *_introspection_routes(),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.emulator = state
    app.state.worker = worker
    app.add_middleware(_TransportTapMiddleware)
    return app


class _TransportTapMiddleware(_TransportTap):
    """``add_middleware`` form of the transport tap."""
