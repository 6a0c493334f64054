"""Log reads: the process-wide report limiter (5 per 10 s), 429 Retry-After, v1.0 filters,
the page-size fallback."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from connector.clock import FakeClock, SystemClock
from connector.errors import BadRequestError
from connector.graph.endpoint import ProvisioningEndpoint
from connector.graph.logs import FALLBACK_PAGE_SIZE, LOG_PAGE_SIZE, LogQuery
from connector.graph.models import ProvisioningObjectSummary
from connector.pacing import REPORT_MAX_CALLS, ReservingLimiter, report_limiter

from .helpers import JOB, SP, make_client

V1 = ProvisioningEndpoint.build(SP, JOB, api_version="v1.0")


def _entry(n: int, status: str = "success") -> dict[str, Any]:
    return {
        "id": f"act-{n}",
        "activityDateTime": "2026-01-01T10:00:00Z",
        "jobId": JOB,
        "provisioningAction": "create",
        "provisioningStatusInfo": {"status": status},
        "sourceIdentity": {"id": f"E{n:05d}"},
    }


def _paged(pages: int, times: list[float], clock: FakeClock) -> Any:
    def handler(request: httpx.Request) -> httpx.Response:
        times.append(clock.monotonic())
        token = int(parse_qs(urlsplit(str(request.url)).query).get("$skiptoken", ["0"])[0])
        body: dict[str, Any] = {"value": [_entry(token)]}
        if token + 1 < pages:
            body["@odata.nextLink"] = f"{V1.logs_url}?$skiptoken={token + 1}"
        return httpx.Response(200, json=body)

    return handler


def _read(client: Any, query: LogQuery | None = None) -> list[ProvisioningObjectSummary]:
    async def main() -> list[ProvisioningObjectSummary]:
        async with client:
            result: list[ProvisioningObjectSummary] = await client.provisioning_logs(query)
            return result

    return asyncio.run(main())


def _max_in_window(times: list[float], window: float) -> int:
    return max(sum(1 for u in times if t <= u < t + window) for t in times)


def test_log_pages_are_paced_five_per_ten_seconds() -> None:
    clock = FakeClock()
    times: list[float] = []
    client, _ = make_client(_paged(12, times, clock), clock=clock, endpoint=V1)
    assert len(_read(client)) == 12
    assert len(times) == 12
    assert _max_in_window(times, 10.0) == REPORT_MAX_CALLS
    assert times[-1] >= 20.0  # 12 reads need two full windows of waiting
    assert client.metrics.log_calls == 12


def test_the_report_limiter_is_shared_by_every_client_of_a_clock() -> None:
    clock = FakeClock()
    times: list[float] = []
    first, _ = make_client(_paged(4, times, clock), clock=clock, endpoint=V1)
    second, _ = make_client(_paged(4, times, clock), clock=clock, endpoint=V1)
    assert first.reports is second.reports
    _read(first)
    _read(second)
    assert _max_in_window(times, 10.0) == REPORT_MAX_CALLS


def test_report_limiter_registry_is_per_process_and_origin() -> None:
    a = report_limiter("https://graph.microsoft.com")
    assert report_limiter("https://GRAPH.microsoft.com/", SystemClock()) is a
    assert report_limiter("https://graph.microsoft.us") is not a
    fake = FakeClock()
    assert report_limiter("https://graph.microsoft.com", fake) is not a
    assert report_limiter("https://graph.microsoft.com", fake) is report_limiter(
        "https://graph.microsoft.com", fake
    )


def test_reserving_limiter_reserves_slots_and_honours_pause() -> None:
    clock = FakeClock()
    limiter = ReservingLimiter(2, 10.0, margin=0.0, clock=clock)
    assert [limiter.reserve() for _ in range(4)] == [0.0, 0.0, 10.0, 10.0]
    limiter.pause(30)
    assert limiter.reserve() == 30.0
    with pytest.raises(ValueError, match="max_calls"):
        ReservingLimiter(0)


def test_a_throttled_log_read_waits_retry_after_and_slows_the_next_reads() -> None:
    clock = FakeClock()
    times: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        times.append(clock.monotonic())
        if len(times) == 1:
            return httpx.Response(
                429, headers={"Retry-After": "7"}, json={"error": {"code": "TooManyRequests"}}
            )
        return httpx.Response(200, json={"value": [_entry(1)]})

    client, _ = make_client(handler, clock=clock, endpoint=V1)
    assert len(_read(client)) == 1
    assert times[1] - times[0] >= 7.0
    assert client.metrics.throttles == 1


def test_v1_sends_gt_and_filters_status_itself() -> None:
    seen: list[dict[str, list[str]]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(parse_qs(urlsplit(str(request.url)).query))
        return httpx.Response(
            200, json={"value": [_entry(1), _entry(2, "Failure"), _entry(3, "skipped")]}
        )

    client, _ = make_client(handler, endpoint=V1)
    from datetime import UTC, datetime

    found = _read(client, LogQuery(status="failure", since=datetime(2026, 1, 1, tzinfo=UTC)))
    assert [e.external_id for e in found] == ["E00002"]
    [params] = seen
    assert params["$filter"] == [f"jobId eq '{JOB}' and activityDateTime gt 2025-12-31T23:59:59Z"]
    assert params["$top"] == [str(LOG_PAGE_SIZE)]


def test_a_refused_large_page_size_falls_back_once_to_100() -> None:
    tops: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        top = parse_qs(urlsplit(str(request.url)).query)["$top"][0]
        tops.append(top)
        if int(top) > FALLBACK_PAGE_SIZE:
            return httpx.Response(400, json={"error": {"code": "BadRequest", "message": "x"}})
        return httpx.Response(200, json={"value": [_entry(1)]})

    client, _ = make_client(handler, endpoint=V1)
    assert len(_read(client)) == 1
    assert tops == [str(LOG_PAGE_SIZE), str(FALLBACK_PAGE_SIZE)]

    def always_400(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"error": {"code": "BadRequest", "message": "x"}})

    failing, _ = make_client(always_400, endpoint=V1)
    with pytest.raises(BadRequestError):
        _read(failing)
