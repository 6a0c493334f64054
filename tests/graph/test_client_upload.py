"""bulkUpload over httpx.MockTransport: headers, pacing, retries, errors and isolation."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import orjson
import pytest

from connector.clock import FakeClock
from connector.errors import (
    AuthenticationError,
    NotFoundError,
    PermissionDeniedError,
    ServiceError,
    TransportError,
)
from connector.graph.client import (
    BUCKET_FULL_MESSAGE,
    BatchStatus,
    DeferReason,
    RetryPolicy,
    UploadResult,
    parse_retry_after,
    split_payload,
)
from connector.pacing import DailyBudget, InMemoryCallBudgetStore
from connector.scim import BULK_REQUEST_SCHEMA, CONTENT_TYPE, BulkPayload

from .helpers import accepted, external_ids, graph_error, make_client, payloads


def run_upload(client_and_clock, items: list[BulkPayload], **kw) -> UploadResult:  # type: ignore[no-untyped-def]
    client, _ = client_and_clock

    async def main() -> UploadResult:
        async with client:
            return await client.upload(items, **kw)

    return asyncio.run(main())


def assert_every_record_once(result: UploadResult, items: list[BulkPayload]) -> None:
    seen: list[str] = []
    for outcome in result.outcomes:
        for d in outcome.accepted:
            seen.extend(d.bulk_ids)
        seen.extend(r.bulk_id for r in outcome.rejected)
        for p in outcome.deferred:
            seen.extend(p.bulk_ids)
    expected = [b for p in items for b in p.bulk_ids]
    assert sorted(seen) == sorted(expected)


def test_happy_path_sends_scim_json_and_keeps_request_ids() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return accepted(request)

    items = payloads(120)
    result = run_upload(make_client(handler), items)
    assert [o.status for o in result.outcomes] == [BatchStatus.ACCEPTED] * 3
    assert result.records_accepted == 120
    assert result.metrics.calls == 3
    for request in seen:
        assert request.method == "POST"
        assert request.url.path.endswith("/bulkUpload")
        assert request.headers["content-type"] == CONTENT_TYPE
        assert request.headers["authorization"] == "Bearer test-token"
    delivery = result.outcomes[0].accepted[0]
    assert delivery.request_id
    assert delivery.request_id.startswith("req-")
    sent_ids = {r.headers["client-request-id"] for r in seen}
    assert {o.accepted[0].client_request_id for o in result.outcomes} == sent_ids
    assert delivery.accepted_at == datetime(2026, 1, 1, tzinfo=UTC)


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
    result = run_upload(make_client(handler, clock=clock), items)  # type: ignore[arg-type]
    assert result.records_accepted == 650
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

    result = run_upload(make_client(handler, clock=clock), payloads(50))
    assert result.records_accepted == 50
    assert result.metrics.throttles == 2
    assert [s for s in clock.slept if s > 0][:2] == [7.0, 12.0]


def test_429_without_retry_after_backs_off_exponentially_then_gives_up() -> None:
    clock = FakeClock()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429)

    policy = RetryPolicy(max_attempts=4, backoff_base=2.0)
    result = run_upload(
        make_client(handler, clock=clock, retry=policy, max_in_flight=1), payloads(100)
    )
    waits = [s for s in clock.slept if s > 0]
    assert len(waits) == 3
    for attempt, wait in enumerate(waits, start=1):
        ceiling = 2.0 * 2 ** (attempt - 1)
        assert ceiling / 2 <= wait <= ceiling
    assert result.stopped is DeferReason.ERROR
    assert "still throttled" in str(result.error)
    assert result.records_deferred == 100
    assert result.metrics.throttles == 4


def test_long_retry_after_defers_as_quota() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": "3600"})

    result = run_upload(make_client(handler), payloads(150))
    assert result.stopped is DeferReason.QUOTA
    assert result.batches_remaining == 3
    assert result.metrics.calls == 1


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
    assert parse_retry_after(header, datetime(2026, 1, 1, tzinfo=UTC)) == expected


def test_bucket_full_stops_and_defers_the_rest() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls >= 2:
            return graph_error(500, BUCKET_FULL_MESSAGE, "InternalServerError")
        return accepted(request)

    items = payloads(250)
    client_clock = make_client(handler, max_in_flight=1)
    result = run_upload(client_clock, items)
    assert result.stopped is DeferReason.BUCKET_FULL
    assert result.records_accepted == 50
    assert result.batches_remaining == 4
    assert [p.bulk_ids for p in result.remaining] == [p.bulk_ids for p in items[1:]]
    assert result.metrics.bucket_full == 1
    assert calls == 2  # no retry storm against a full queue
    assert "4 batches remain" in result.summary()
    assert_every_record_once(result, items)


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
    result = run_upload(
        make_client(handler, clock=clock, retry=policy), payloads(50), stop_on_backpressure=False
    )
    assert result.records_accepted == 50
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

    result = run_upload(make_client(handler), payloads(50))
    assert result.records_accepted == 50
    assert result.metrics.retries == 3
    assert result.metrics.transport_errors == 2
    assert result.metrics.server_errors == 1
    assert result.metrics.records_resent == 150
    assert result.outcomes[0].accepted[0].attempts == 4


@pytest.mark.parametrize(
    ("failure", "error_type"),
    [
        (lambda r: (_ for _ in ()).throw(httpx.ConnectError("down", request=r)), TransportError),
        (lambda r: graph_error(502, "bad gateway"), ServiceError),
    ],
)
def test_retries_are_bounded(failure, error_type) -> None:  # type: ignore[no-untyped-def]
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return failure(request)  # type: ignore[no-any-return]

    policy = RetryPolicy(max_attempts=3)
    result = run_upload(make_client(handler, retry=policy, max_in_flight=1), payloads(100))
    assert calls == 3
    assert isinstance(result.error, error_type)
    assert result.records_deferred == 100
    with pytest.raises(error_type):
        result.raise_for_error()


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

    result = run_upload(make_client(handler, tokens=tokens), payloads(150))
    assert result.records_accepted == 150
    assert tokens.refreshes == 1  # three concurrent 401s, one refresh
    assert result.metrics.token_refreshes == 1

    def always_401(request: httpx.Request) -> httpx.Response:
        return graph_error(401, "Access token has expired", "InvalidAuthenticationToken")

    result = run_upload(make_client(always_401, tokens=Tokens()), payloads(100))
    assert isinstance(result.error, AuthenticationError)
    assert result.error.code == "InvalidAuthenticationToken"
    assert result.metrics.calls == 2
    assert result.records_deferred == 100


def test_403_names_the_permission_and_404_the_job() -> None:
    result = run_upload(
        make_client(lambda r: graph_error(403, "Forbidden", "Authorization_RequestDenied")),
        payloads(50),
    )
    assert isinstance(result.error, PermissionDeniedError)
    assert "SynchronizationData-User.Upload" in str(result.error)
    assert result.metrics.calls == 1

    result = run_upload(make_client(lambda r: graph_error(404, "not found")), payloads(50))
    assert isinstance(result.error, NotFoundError)
    assert "API2AAD." in str(result.error)


def test_daily_budget_stops_cleanly_and_resumes_next_run() -> None:
    clock = FakeClock()
    store = InMemoryCallBudgetStore()
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.extend(external_ids(request))
        return accepted(request)

    items = payloads(250)
    budget = DailyBudget(3, store, clock=clock)
    first = run_upload(make_client(handler, clock=clock, budget=budget), items)
    assert first.stopped is DeferReason.QUOTA
    assert first.records_accepted == 150
    assert first.batches_remaining == 2
    assert "daily call budget" in str(first.error)
    assert_every_record_once(first, items)

    clock.advance(25 * 3600)
    budget = DailyBudget(3, store, clock=clock)
    second = run_upload(make_client(handler, clock=clock, budget=budget), first.remaining)
    assert second.stopped is None
    assert second.records_accepted == 100
    assert sorted(sent) == sorted(b for p in items for b in p.bulk_ids)  # each exactly once


def _refuse_bad(bad: set[str]):  # type: ignore[no-untyped-def]
    calls: list[list[str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        ids = external_ids(request)
        calls.append(ids)
        body = orjson.loads(request.content)
        assert body["schemas"] == [BULK_REQUEST_SCHEMA]
        assert "failOnErrors" in body
        hit = sorted(set(ids) & bad)
        if hit:
            return graph_error(400, f"invalid value in {hit[0]}", "BadRequest")
        return accepted(request)

    return handler, calls


@pytest.mark.parametrize("bad", [{"E00017"}, {"E00000", "E00049"}, {"E00010", "E00011", "E00030"}])
def test_400_isolation_finds_exactly_the_bad_records(bad: set[str]) -> None:
    handler, calls = _refuse_bad(bad)
    items = payloads(100)
    result = run_upload(make_client(handler, max_in_flight=1), items)
    rejected = {r.external_id for r in result.rejected}
    assert rejected == bad
    assert all(r.isolated for r in result.rejected)
    assert result.records_accepted == 100 - len(bad)
    assert_every_record_once(result, items)
    # Each refused record is found in about log2(50) extra calls.
    assert result.metrics.isolation_calls <= 2 * 6 * len(bad)
    accepted_sent = [i for c in calls for i in c if not (set(c) & bad)]
    assert len(accepted_sent) == len(set(accepted_sent)) == 100 - len(bad)
    bad_outcome = next(o for o in result.outcomes if o.rejected)
    assert bad_outcome.status is BatchStatus.PARTIAL
    assert result.rejected[0].message.startswith("invalid value in")
    assert result.rejected[0].code == "BadRequest"


def test_400_isolation_is_bounded() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return graph_error(400, "Invalid Data Format")

    policy = RetryPolicy(max_isolation_calls_per_batch=5, max_isolation_calls=7)
    items = payloads(100)
    result = run_upload(make_client(handler, retry=policy, max_in_flight=1), items)
    assert calls == 2 + 7
    assert result.metrics.isolation_calls == 7
    assert result.records_rejected == 100
    assert any(not r.isolated for r in result.rejected)
    assert result.stopped is None
    assert_every_record_once(result, items)


def test_isolation_interrupted_by_quota_defers_the_undecided_records() -> None:
    clock = FakeClock()
    handler, _ = _refuse_bad({"E00003"})
    items = payloads(50)
    budget = DailyBudget(3, InMemoryCallBudgetStore(), clock=clock)
    result = run_upload(make_client(handler, clock=clock, budget=budget), items)
    assert result.stopped is DeferReason.QUOTA
    assert result.records_rejected == 0
    assert result.records_deferred > 0
    assert_every_record_once(result, items)
    # Deferred parts are valid, smaller requests that the next run can send as they are.
    for part in result.remaining:
        assert [op["bulkId"] for op in orjson.loads(part.body)["Operations"]] == list(part.bulk_ids)


def test_split_payload_keeps_root_members_and_order() -> None:
    payload = payloads(6)[0]
    left, right = split_payload(payload, [[0, 2], [5]])
    assert left.bulk_ids == ("E00000", "E00002")
    assert right.external_ids == ("E00005",)
    root = orjson.loads(left.body)
    assert root["schemas"] == [BULK_REQUEST_SCHEMA]
    assert root["failOnErrors"] is None
    with pytest.raises(ValueError, match="does not match"):
        split_payload(BulkPayload(body=payload.body, bulk_ids=("x",), external_ids=("x",)), [[0]])
