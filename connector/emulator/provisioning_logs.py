"""``GET /auditLogs/provisioning``: the read limit, the OData query options (``$filter``,
``$top``, ``$orderby``, ``$skiptoken``) and keyset paging through ``@odata.nextLink``.

Documented: the v1.0 list page's ``$filter`` subset (``odata.py``) and ``$orderby`` on
``activityDateTime`` (resource page); Graph paging (follow ``@odata.nextLink`` as is);
"Five requests per 10 seconds" (Graph throttling limits, identity and access reports).
Assumed (docs/emulator.md, *Assumptions: Logs and errors*): newest first without
``$orderby``, ascending for ``$orderby=activityDateTime`` without a direction, a page of
100 by default, ``$top`` over 1,000 clamped, other ``$`` options a 400. The skiptoken
carries the filter, order, page size and the last entry's position, so entries that
arrive later never shift or repeat a page.
"""

from __future__ import annotations

import base64
import binascii
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from connector.emulator.auth import authenticate
from connector.emulator.config import EmulatorConfig
from connector.emulator.log_entry import LogEntry
from connector.emulator.odata import Clause, parse_filter
from connector.emulator.responses import (
    base_url,
    graph_error,
    graph_version,
    json_response,
    request_ids,
    tenant,
)
from connector.errors import FilterError

__all__ = ["get_provisioning_logs"]

_LOG_QUERY_OPTIONS = frozenset({"$filter", "$top", "$orderby", "$skiptoken"})


@dataclass(frozen=True, slots=True)
class _Query:
    """One page's query: what the caller sent, or what its skiptoken carries."""

    filter_text: str
    order: str
    top: int
    after: tuple[datetime, int] | None
    clauses: list[Clause]


async def get_provisioning_logs(request: Request) -> Response:
    denied = authenticate(request)
    if denied is None:
        denied = _throttled(request)
    if denied is None:
        denied = _unknown_options(request)
    if denied is not None:
        return denied
    try:
        query = _query(request)
    except FilterError as exc:
        return graph_error(request, 400, "BadRequest", f"Invalid filter clause: {exc}")
    state = tenant(request)
    page, more = state.logs.page(
        query.clauses,
        descending=query.order == "desc",
        top=query.top,
        after=query.after,
        cutoff=state.log_cutoff(),
    )
    return _page_response(request, query, page, more)


def _throttled(request: Request) -> Response | None:
    """429 past ``logs_rate_limit_calls`` reads in the window, with ``Retry-After``."""
    state = tenant(request)
    retry = state.limits.check_log_read()
    if retry is None:
        return None
    return graph_error(
        request,
        429,
        "TooManyRequests",
        f"Too many requests: at most {state.config.logs_rate_limit_calls} provisioning-log"
        f" reads in any {state.config.logs_rate_limit_window_seconds:g}-second window.",
        {"Retry-After": str(max(1, math.ceil(retry)))},
    )


def _unknown_options(request: Request) -> Response | None:
    """400 for a ``$`` option other than the four; parameters without ``$`` are ignored."""
    unknown = [k for k in request.query_params if k.startswith("$") and k not in _LOG_QUERY_OPTIONS]
    if not unknown:
        return None
    return graph_error(
        request,
        400,
        "BadRequest",
        f"Query option(s) {', '.join(unknown)} are not supported here;"
        " use $filter, $top, $orderby, $skiptoken",
    )


def _query(request: Request) -> _Query:
    """The page's query; a ``$skiptoken`` wins over ``$filter``, ``$top`` and ``$orderby``
    sent with it. Raises FilterError for anything the endpoint does not understand."""
    params = request.query_params
    token = params.get("$skiptoken")
    key = None
    if token:
        payload = _decode_token(token)
        filter_text, order, top, key = payload["f"], payload["o"], int(payload["t"]), payload["k"]
    else:
        filter_text = params.get("$filter") or ""
        order = _parse_orderby(params.get("$orderby"))
        top = _parse_top(params.get("$top"), tenant(request).config)
    clauses = parse_filter(filter_text, graph_version(request)) if filter_text.strip() else []
    after = None if key is None else (datetime.fromtimestamp(key[0] / 1e6, UTC), int(key[1]))
    return _Query(filter_text, order, top, after, clauses)


def _page_response(request: Request, query: _Query, page: list[LogEntry], more: bool) -> Response:
    """The page as a Graph collection, with ``@odata.nextLink`` when more entries follow."""
    version = graph_version(request)
    body: dict[str, Any] = {
        "@odata.context": f"{base_url(request)}/{version}/$metadata#auditLogs/provisioning",
        "value": [e.to_json() for e in page],
    }
    if more:
        last = page[-1]
        stamp = int(last.activity.timestamp() * 1_000_000)
        next_token = _encode_token(
            {"f": query.filter_text, "o": query.order, "t": query.top, "k": [stamp, last.seq]}
        )
        body["@odata.nextLink"] = (
            f"{base_url(request)}/{version}/auditLogs/provisioning?$skiptoken={next_token}"
        )
    request_id, client_request_id = request_ids(request)
    return json_response(
        body, headers={"request-id": request_id, "client-request-id": client_request_id}
    )


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
