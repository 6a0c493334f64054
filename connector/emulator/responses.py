"""What every route of the emulator shares: the tenant and the worker behind a request,
Graph's error body and request ids, and the version and base URL the caller used (which
``Location`` and ``@odata.nextLink`` keep).
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from connector.emulator.clock import iso
from connector.emulator.processing import Worker
from connector.emulator.tenant import EmulatorState

__all__ = [
    "base_url",
    "graph_error",
    "graph_version",
    "json_response",
    "request_ids",
    "tenant",
    "worker",
]


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status, headers, media_type="application/json")


def graph_error(
    request: Request, status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    """A Graph-style error body with the request ids (as Graph's ``innerError``)."""
    request_id, client_request_id = request_ids(request)
    body = {
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": iso(tenant(request).clock.now()),
                "request-id": request_id,
                "client-request-id": client_request_id,
            },
        }
    }
    all_headers = {"request-id": request_id, "client-request-id": client_request_id}
    all_headers.update(headers or {})
    return json_response(body, status, all_headers)


def request_ids(request: Request) -> tuple[str, str]:
    """(``request-id``, ``client-request-id``): a new GUID, and the client's id echoed (or
    a new one); the same pair for the whole request."""
    ids = request.scope.get("emulator.ids")
    if ids is None:
        client = request.headers.get("client-request-id") or str(uuid.uuid4())
        ids = (str(uuid.uuid4()), client)
        request.scope["emulator.ids"] = ids
    return ids[0], ids[1]


def tenant(request: Request) -> EmulatorState:
    state: EmulatorState = request.app.state.emulator
    return state


def worker(request: Request) -> Worker:
    found: Worker = request.app.state.worker
    return found


def graph_version(request: Request) -> str:
    """The Graph version the caller used; Location and nextLink keep it."""
    return "beta" if str(request.scope.get("root_path", "")).endswith("/beta") else "v1.0"


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")
