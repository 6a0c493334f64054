"""bulkUpload calls over httpx.MockTransport: headers, pacing, retries, errors and budget."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import orjson
import pytest

from connector.clock import FakeClock
from connector.errors import (
    AuthenticationError,
    BadRequestError,
    BucketFullError,
    ConnectorError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExhaustedError,
    ServiceError,
    ThrottledError,
    TransportError,
)
from connector.graph.auth import StaticTokenProvider
from connector.graph.client import Delivery, GraphClient, RetryPolicy
from connector.graph.responses import BUCKET_FULL_MESSAGE
from connector.pacing import DailyBudget, InMemoryCallBudgetStore, SlidingWindowLimiter, Slot
from connector.scim import BULK_REQUEST_SCHEMA, CONTENT_TYPE, BulkPayload, split_payload

from .helpers import (
    ENDPOINT,
    Sent,
    accepted,
    external_ids,
    graph_error,
    make_client,
    payloads,
    run_send_all,
)


def assert_every_record_once(sent: Sent, items: list[BulkPayload]) -> None:
    seen: list[str] = []
    for delivery in sent.delivered:
        seen.extend(delivery.bulk_ids)
    for payload, _ in sent.refused:
        seen.extend(payload.bulk_ids)
    for payload in sent.unsent:
        seen.extend(payload.bulk_ids)
    assert sorted(seen) == sorted(b for p in items for b in p.bulk_ids)


def post_one(client: GraphClient, payload: BulkPayload) -> Delivery:
    async def main() -> Delivery:
        async with client:
            return await client.post_bulk(payload)

    return asyncio.run(main())


def test_happy_path_sends_scim_json_and_keeps_request_ids() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return accepted(request)

    items = payloads(120)
    client, _ = make_client(handler)
    sent = run_send_all(client, items)
    assert len(sent.delivered) == 3
    assert sent.error is None
    assert sent.records_accepted == 120
    assert client.metrics.calls == 3
    assert client.metrics.accepted_calls == 3
    for request in seen:
        assert request.method == "POST"
        assert request.url.path.endswith("/bulkUpload")
        assert request.headers["content-type"] == CONTENT_TYPE
        assert request.headers["authorization"] == "Bearer test-token"
    delivery = sent.delivered[0]
    assert delivery.request_id
    assert delivery.request_id.startswith("req-")
    sent_ids = {r.headers["client-request-id"] for r in seen}
    assert {d.client_request_id for d in sent.delivered} == sent_ids
    assert delivery.accepted_at == datetime(2026, 1, 1, tzinfo=UTC)
    assert delivery.bulk_ids == items[0].bulk_ids
    assert delivery.attempts == 1


def test_pacing_keeps_40_per_5_seconds_with_several_in_flight() -> None:
    clock = FakeClock()
    times: list[float] = []
    in_flight = 0
    peak = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        times.append(clock.monotonic())
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        in_flight -= 1
        return accepted(request)

    items = payloads(130 * 5, per_batch=5)
    client, _ = make_client(handler, clock=clock)  # type: ignore[arg-type]
    sent = run_send_all(client, items)
    assert sent.records_accepted == 650
    times.sort()
    worst = max(sum(1 for t in times[i:] if t < s + 5.0) for i, s in enumerate(times))
    assert worst == 40
    assert peak > 1  # requests overlap
    # Full speed: 130 calls need three more windows after the first 40 (plus the margin).
    assert times[-1] == pytest.approx(3 * 5.1)


def test_429_waits_for_retry_after_seconds_and_date() -> None:
    clock = FakeClock()
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            return httpx.Response(429, headers={"Retry-After": "7"})
        if calls == 2:
            when = clock.now() + timedelta(seconds=12)
            return httpx.Response(429, headers={"Retry-After": format_datetime(when, usegmt=True)})
        return accepted(request)

    client, _ = make_client(handler, clock=clock)
    sent = run_send_all(client, payloads(50))
    assert sent.records_accepted == 50
    assert client.metrics.throttles == 2
    assert [s for s in clock.slept if s > 0][:2] == [7.0, 12.0]
    assert sent.delivered[0].attempts == 3


def test_429_without_retry_after_backs_off_exponentially_then_gives_up() -> None:
    clock = FakeClock()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429)

    policy = RetryPolicy(max_attempts=4, backoff_base=2.0)
    client, _ = make_client(handler, clock=clock, retry=policy)
    sent = run_send_all(client, payloads(100), in_flight=1)
    waits = [s for s in clock.slept if s > 0]
    assert len(waits) == 3
    for attempt, wait in enumerate(waits, start=1):
        ceiling = 2.0 * 2 ** (attempt - 1)
        assert ceiling / 2 <= wait <= ceiling
    assert isinstance(sent.error, ThrottledError)
    assert "still throttled" in str(sent.error)
    assert sent.records_unsent == 100
    assert client.metrics.throttles == 4


def test_long_retry_after_is_a_spent_quota() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": "3600"})

    client, _ = make_client(handler)
    sent = run_send_all(client, payloads(150))
    assert isinstance(sent.error, QuotaExhaustedError)
    assert len(sent.unsent) == 3
    assert client.metrics.calls == 1


def test_bucket_full_is_raised_at_once_without_retries() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls >= 2:
            return graph_error(500, BUCKET_FULL_MESSAGE, "InternalServerError")
        return accepted(request)

    items = payloads(250)
    client, _ = make_client(handler)
    sent = run_send_all(client, items, in_flight=1)
    assert isinstance(sent.error, BucketFullError)
    assert "ingestion queue is full" in str(sent.error)
    assert sent.records_accepted == 50
    assert len(sent.unsent) == 4
    assert [p.bulk_ids for p in sent.unsent] == [p.bulk_ids for p in items[1:]]
    assert client.metrics.bucket_full == 1
    assert calls == 2  # no retry storm against a full queue
    assert_every_record_once(sent, items)


def test_bucket_full_waited_out_when_caller_does_not_stop() -> None:
    clock = FakeClock()
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            return graph_error(500, BUCKET_FULL_MESSAGE)
        return accepted(request)

    policy = RetryPolicy(bucket_full_wait=420.0)
    client, _ = make_client(handler, clock=clock, retry=policy)
    sent = run_send_all(client, payloads(50), wait_on_bucket_full=True)
    assert sent.records_accepted == 50
    assert 420.0 in clock.slept


def test_timeouts_and_dropped_connections_are_retried() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise httpx.ReadTimeout("slow", request=request)
        if calls == 2:
            raise httpx.RemoteProtocolError("closed", request=request)
        if calls == 3:
            return graph_error(503, "unavailable")
        return accepted(request)

    client, _ = make_client(handler)
    sent = run_send_all(client, payloads(50))
    assert sent.records_accepted == 50
    assert client.metrics.retries == 3
    assert client.metrics.transport_errors == 2
    assert client.metrics.server_errors == 1
    assert client.metrics.records_resent == 150
    assert sent.delivered[0].attempts == 4


def _connect_error(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("down", request=request)


@pytest.mark.parametrize(
    ("failure", "error_type"),
    [
        (_connect_error, TransportError),
        (lambda r: graph_error(502, "bad gateway"), ServiceError),
    ],
)
def test_retries_are_bounded(
    failure: Callable[[httpx.Request], httpx.Response], error_type: type[ConnectorError]
) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return failure(request)

    policy = RetryPolicy(max_attempts=3)
    client, _ = make_client(handler, retry=policy)
    sent = run_send_all(client, payloads(100), in_flight=1)
    assert calls == 3
    assert isinstance(sent.error, error_type)
    assert "3 times" in str(sent.error)
    assert sent.records_unsent == 100
    client, _ = make_client(handler, retry=policy)
    with pytest.raises(error_type):
        post_one(client, payloads(50)[0])


def test_401_refreshes_once_then_fails() -> None:
    class Tokens:
        def __init__(self) -> None:
            self.refreshes = 0

        async def get_token(self, *, rejected: str | None = None) -> str:
            if rejected is not None and rejected == self.current():
                self.refreshes += 1
            return self.current()

        def current(self) -> str:
            return f"token-{self.refreshes}"

    tokens = Tokens()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.headers["authorization"] == "Bearer token-0":
            return graph_error(401, "Access token has expired", "InvalidAuthenticationToken")
        return accepted(request)

    client, _ = make_client(handler, tokens=tokens)
    sent = run_send_all(client, payloads(150))
    assert sent.records_accepted == 150
    assert tokens.refreshes == 1  # three concurrent 401s, one refresh
    assert client.metrics.token_refreshes == 1
    assert sent.delivered[0].attempts == 1  # the refresh is not a try

    def always_401(request: httpx.Request) -> httpx.Response:
        return graph_error(401, "Access token has expired", "InvalidAuthenticationToken")

    client, _ = make_client(always_401, tokens=Tokens())
    sent = run_send_all(client, payloads(100))
    assert isinstance(sent.error, AuthenticationError)
    assert sent.error.code == "InvalidAuthenticationToken"
    assert client.metrics.calls == 2
    assert sent.records_unsent == 100


def test_403_names_the_permission_and_404_the_job() -> None:
    client, _ = make_client(lambda r: graph_error(403, "Forbidden", "Authorization_RequestDenied"))
    sent = run_send_all(client, payloads(50))
    assert isinstance(sent.error, PermissionDeniedError)
    assert "SynchronizationData-User.Upload" in str(sent.error)
    assert client.metrics.calls == 1

    client, _ = make_client(lambda r: graph_error(404, "not found"))
    sent = run_send_all(client, payloads(50))
    assert isinstance(sent.error, NotFoundError)
    assert "API2AAD." in str(sent.error)


def test_daily_budget_stops_cleanly_and_resumes_next_run() -> None:
    clock = FakeClock()
    store = InMemoryCallBudgetStore()
    sent_ids: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent_ids.extend(external_ids(request))
        return accepted(request)

    items = payloads(250)
    budget = DailyBudget(3, store, clock=clock)
    client, _ = make_client(handler, clock=clock, budget=budget)
    first = run_send_all(client, items)
    assert isinstance(first.error, QuotaExhaustedError)
    assert first.records_accepted == 150
    assert len(first.unsent) == 2
    assert "daily call budget" in str(first.error)
    assert_every_record_once(first, items)

    clock.advance(25 * 3600)
    budget = DailyBudget(3, store, clock=clock)
    client, _ = make_client(handler, clock=clock, budget=budget)
    second = run_send_all(client, first.unsent)
    assert second.error is None
    assert second.records_accepted == 100
    assert sorted(sent_ids) == sorted(b for p in items for b in p.bulk_ids)  # each exactly once


def test_400_is_raised_with_the_service_message_and_not_retried() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        body = orjson.loads(request.content)
        if "E00017" in external_ids(request):
            response = graph_error(400, "invalid value in E00017", "BadRequest")
            response.headers["request-id"] = "req-400"
            return response
        assert body["schemas"] == [BULK_REQUEST_SCHEMA]
        return accepted(request)

    items = payloads(100)
    client, _ = make_client(handler)
    sent = run_send_all(client, items, in_flight=1)
    assert sent.error is None  # a 400 does not stop the other requests
    assert sent.records_accepted == 50
    [(refused, err)] = sent.refused
    assert refused.bulk_ids == items[0].bulk_ids
    assert str(err).startswith("invalid value in")
    assert err.code == "BadRequest"
    assert err.request_id == "req-400"
    assert calls == 2
    assert_every_record_once(sent, items)


def test_parts_of_a_refused_request_are_valid_smaller_requests() -> None:
    bad = {"E00003"}
    seen: list[list[str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        ids = external_ids(request)
        seen.append(ids)
        body = orjson.loads(request.content)
        assert body["schemas"] == [BULK_REQUEST_SCHEMA]
        assert "failOnErrors" in body
        assert [op["bulkId"] for op in body["Operations"]] == ids
        if set(ids) & bad:
            return graph_error(400, "invalid value in E00003", "BadRequest")
        return accepted(request)

    payload = payloads(50)[0]
    client, _ = make_client(handler)
    with pytest.raises(BadRequestError):
        post_one(client, payload)
    left, right = split_payload(payload, [range(25), range(25, 50)])
    client, _ = make_client(handler)
    sent = run_send_all(client, [left, right])
    assert sent.delivered[0].bulk_ids == right.bulk_ids
    assert [p.bulk_ids for p, _ in sent.refused] == [left.bulk_ids]
    assert sorted(map(tuple, seen[1:])) == sorted([left.external_ids, right.external_ids])


class _WritingTransport(httpx.AsyncBaseTransport):
    """Answers 202 after 'writing' each request: the fake clock moves by the stall first,
    then the httpcore trace event fires, as a real connection's would."""

    def __init__(self, clock: FakeClock, stalls: dict[int, float]) -> None:
        self.clock = clock
        self.stalls = stalls
        self.written: list[float] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.clock.advance(self.stalls.get(len(self.written), 0.0))
        trace = request.extensions.get("trace")
        if trace is not None:
            await trace("http11.send_request_body.complete", {})
        self.written.append(self.clock.monotonic())
        await self.clock.sleep(0.3)  # the answer comes later than the write
        return accepted(request)


def test_a_call_counts_in_the_window_from_when_its_request_was_written() -> None:
    clock = FakeClock()
    transport = _WritingTransport(clock, stalls={0: 0.9})
    client = GraphClient(
        ENDPOINT,
        StaticTokenProvider("t"),
        transport=transport,
        clock=clock,
        limiter=SlidingWindowLimiter(2, 1.0, margin=0.0, clock=clock),
    )
    run_send_all(client, payloads(200), in_flight=1)
    times = transport.written
    assert len(times) == 4
    # The first request went out 0.9 s after its slot: the third waits for it to leave.
    assert all(times[i + 2] - times[i] >= 1.0 - 1e-9 for i in range(len(times) - 2))
    assert times[2] == pytest.approx(0.9 + 1.0)


def test_first_retry_of_a_transient_failure_goes_at_once_then_backs_off() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls in (1, 3, 4):
            return graph_error(503, "unavailable")
        if calls == 5:
            raise httpx.RemoteProtocolError("closed", request=request)
        return accepted(request)

    client, clock = make_client(handler)
    sent = run_send_all(client, payloads(100), in_flight=1)
    assert sent.records_accepted == 100
    waits = [s for s in clock.slept if s > 0]
    # batch 1: 503 then 202 (no wait); batch 2: 503, 503 (a backoff), dropped, 202.
    assert len(waits) == 2
    assert 0.5 <= waits[0] <= 1.0  # second failure in a row: the first backoff step
    assert 1.0 <= waits[1] <= 2.0
    assert client.metrics.retries == 4


def test_the_budget_is_counted_before_the_slot_is_taken() -> None:
    """A slow budget store (a state write) must not sit between a slot and its request."""
    clock = FakeClock()
    events: list[str] = []

    class SlowStore(InMemoryCallBudgetStore):
        async def save(self, counts: Mapping[str, int]) -> None:
            await clock.sleep(2.0)
            events.append("budget saved")
            await super().save(counts)

    class Recording(SlidingWindowLimiter):
        async def acquire(self) -> Slot:
            slot = await super().acquire()
            events.append("slot")
            return slot

    def handler(request: httpx.Request) -> httpx.Response:
        events.append("request")
        return accepted(request)

    client = GraphClient(
        ENDPOINT,
        StaticTokenProvider("t"),
        transport=httpx.MockTransport(handler),
        clock=clock,
        limiter=Recording(clock=clock),
        budget=DailyBudget(10, SlowStore(), clock=clock),
    )
    post_one(client, payloads(50)[0])
    assert events == ["budget saved", "slot", "request"]
