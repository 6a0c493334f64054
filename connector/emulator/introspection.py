"""``/_emulator/*``: what tests, the demo and benchmarks read and change directly (the
directory, the buckets, the calls seen, job states, the on-premises agent, time, reset).

Emulator only; nothing here is a Microsoft API. It answers loopback clients, or others
that send one of the emulator's tokens (``auth.introspection_denied``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from connector.emulator.auth import introspection_denied
from connector.emulator.clock import iso
from connector.emulator.job import JobRuntime
from connector.emulator.responses import json_response, tenant, worker

__all__ = ["JOB_STATES", "QUARANTINE_REASONS", "introspection_routes"]

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
JOB_STATES = ("Active", "Paused", "Quarantine", "NotRun", "NotConfigured")


def introspection_routes() -> list[BaseRoute]:
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


def _introspection(
    handler: Callable[[Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        denied = introspection_denied(request)
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
    users = tenant(request).users
    return json_response({"value": [u.to_json() for u in users.values()], "count": len(users)})


async def emu_user(request: Request) -> Response:
    user = tenant(request).users.get(request.path_params["external_id"])
    if user is None:
        return json_response({"error": "no user with that externalId"}, 404)
    return json_response(user.to_json())


async def emu_queue(request: Request) -> Response:
    state = tenant(request)
    return json_response(
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
    state = tenant(request)
    return json_response(
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
    state = tenant(request)
    state.reset()
    state.clock.set_offset(0.0)
    return Response(status_code=204)


async def emu_jobs(request: Request) -> Response:
    state = tenant(request)
    return json_response(
        {
            "value": [
                {"servicePrincipalId": j.service_principal_id, **j.to_json()}
                for j in state.jobs.values()
            ]
        }
    )


async def _job_and_body(request: Request) -> tuple[JobRuntime, dict[str, Any]] | Response:
    """The introspected job and the JSON body of a request to change it (or the error)."""
    job = tenant(request).jobs.get(request.path_params["job"])
    if job is None:
        return json_response({"error": "no such job"}, 404)
    try:
        return job, await _body_json(request)
    except ValueError as exc:
        return json_response({"error": str(exc)}, 400)


async def emu_job_state(request: Request) -> Response:
    state = tenant(request)
    found = await _job_and_body(request)
    if isinstance(found, Response):
        return found
    job, body = found
    code = body.get("code")
    if code not in JOB_STATES:
        return json_response({"error": f"code must be one of {', '.join(JOB_STATES)}"}, 400)
    job.state = code
    job.started = False
    if code == "Quarantine":
        reason = body.get("reason", "QuarantinedOnDemand")
        if reason not in QUARANTINE_REASONS:
            reasons = ", ".join(QUARANTINE_REASONS)
            return json_response({"error": f"reason must be one of {reasons}"}, 400)
        job.quarantine = _quarantine(reason, body, state.clock.now())
    else:
        job.quarantine = None
    worker(request).wake()
    return json_response(job.to_json())


def _quarantine(reason: str, body: dict[str, Any], now: datetime) -> dict[str, Any]:
    """A synchronizationQuarantine (documented properties), begun now."""
    began = iso(now)
    return {
        "currentBegan": began,
        "nextAttempt": began,
        "reason": reason,
        "seriesBegan": began,
        "seriesCount": 1,
        "error": {
            "code": body.get("errorCode", "Quarantined"),
            "message": body.get("message", f"The job is in quarantine: {reason}."),
            "tenantActionable": True,
        },
    }


async def emu_job_agent(request: Request) -> Response:
    """Turn an on-premises job's provisioning agent on or off: ``{"active": false}``."""
    found = await _job_and_body(request)
    if isinstance(found, Response):
        return found
    job, body = found
    active = body.get("active")
    if not isinstance(active, bool) or not job.on_premises:
        return json_response({"error": 'send {"active": true|false} for an API2AD job'}, 400)
    job.set_agent(active, tenant(request).clock.now())
    worker(request).wake()
    return json_response(job.to_json())


async def emu_time(request: Request) -> Response:
    state = tenant(request)
    if request.method == "POST":
        try:
            body = await _body_json(request)
            if "advanceSeconds" in body:
                state.clock.advance(float(body["advanceSeconds"]))
            if "offsetSeconds" in body:
                state.clock.set_offset(float(body["offsetSeconds"]))
        except (ValueError, TypeError) as exc:
            return json_response({"error": str(exc)}, 400)
    return json_response({"now": iso(state.clock.now()), "offsetSeconds": state.clock.offset})


async def emu_calls(request: Request) -> Response:
    calls = tenant(request).calls
    return json_response(
        {
            "value": [
                {"time": iso(c.time), "status": c.status, "operations": c.operations} for c in calls
            ]
        }
    )
