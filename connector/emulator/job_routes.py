"""The Graph job and schema APIs of a synchronization job: list, get, start, pause,
restart (with ``criteria.resetScope``), and the schema's GET and full-replace PUT.

Documented (Graph "Start synchronizationJob", "Restart synchronizationJob", the Entra
inbound provisioning FAQ): start resumes a paused job and clears quarantine; restart
clears escrows and quarantine and, when the job is not running, purges what was uploaded
before it (``job.JobRuntime``). Never throttled (not stated for ``/synchronization/…``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import orjson
from starlette.requests import Request
from starlette.responses import Response

from connector.emulator.auth import authenticate, job_or_404, job_roles_denied
from connector.emulator.job import JobRuntime
from connector.emulator.responses import graph_error, json_response, tenant, worker
from connector.emulator.schema import compile_schema
from connector.errors import SchemaError

__all__ = [
    "RESET_SCOPES",
    "get_job",
    "get_schema",
    "job_call",
    "list_jobs",
    "pause_job",
    "put_schema",
    "restart_job",
    "start_job",
]

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
"""The documented ``resetScope`` values of a restart."""


async def list_jobs(request: Request) -> Response:
    denied = authenticate(request)
    if denied is not None:
        return denied
    state = tenant(request)
    sp = request.path_params["sp"]
    if not state.has_service_principal(sp):
        return graph_error(
            request, 404, "ResourceNotFound", f"The service principal '{sp}' does not exist."
        )
    jobs = [
        j.to_json() for j in state.jobs.values() if j.service_principal_id.lower() == sp.lower()
    ]
    return json_response({"value": jobs})


def job_call(
    handler: Callable[[Request, JobRuntime], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    """A job or schema route: 401 → 404 → 403 (job roles), then ``handler`` with the job."""

    async def endpoint(request: Request) -> Response:
        denied = authenticate(request)
        if denied is not None:
            return denied
        found = job_or_404(request)
        if isinstance(found, Response):
            return found
        denied = job_roles_denied(request)
        if denied is not None:
            return denied
        return await handler(request, found)

    return endpoint


async def get_job(request: Request, job: JobRuntime) -> Response:
    return json_response(job.to_json())


async def start_job(request: Request, job: JobRuntime) -> Response:
    job.start()
    worker(request).wake()
    return Response(status_code=204)


async def pause_job(request: Request, job: JobRuntime) -> Response:
    job.state = "Paused"
    return Response(status_code=204)


async def restart_job(request: Request, job: JobRuntime) -> Response:
    refused = _reset_scope_refusal(request, await request.body())
    if refused is not None:
        return refused
    job.restart()
    worker(request).wake()
    return Response(status_code=204)


def _reset_scope_refusal(request: Request, raw: bytes) -> Response | None:
    """400 for a body that is not JSON or a ``criteria.resetScope`` naming an unknown
    value (comma-separated); an empty body is a plain restart."""
    if not raw.strip():
        return None
    try:
        body = orjson.loads(raw)
        scope = ((body or {}).get("criteria") or {}).get("resetScope")
    except (orjson.JSONDecodeError, AttributeError):
        return graph_error(request, 400, "BadRequest", "The restart body is not valid JSON.")
    if scope is None:
        return None
    parts = {p.strip() for p in str(scope).split(",") if p.strip()}
    bad = sorted(parts - RESET_SCOPES)
    if not bad:
        return None
    return graph_error(
        request,
        400,
        "BadRequest",
        f"resetScope value(s) {', '.join(bad)} are unknown; use {', '.join(sorted(RESET_SCOPES))}",
    )


async def get_schema(request: Request, job: JobRuntime) -> Response:
    return json_response(job.schema.raw)


async def put_schema(request: Request, job: JobRuntime) -> Response:
    try:
        job.schema = compile_schema(orjson.loads(await request.body()))
    except orjson.JSONDecodeError as exc:
        return graph_error(request, 400, "BadRequest", f"The schema body is not valid JSON: {exc}")
    except SchemaError as exc:
        return graph_error(request, 400, "BadRequest", f"Invalid synchronization schema: {exc}")
    return Response(status_code=204)
