"""The Graph client against the local emulator over real loopback HTTP.

Client and emulator share one FakeClock, so pacing, Retry-After and backoff waits
happen instantly while both sides agree on what time it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from connector.clock import FakeClock
from connector.emulator.config import EmulatorConfig
from connector.emulator.server import RunningEmulator, run_emulator
from connector.errors import (
    AuthenticationError,
    BucketFullError,
    PermissionDeniedError,
    QuotaExhaustedError,
)
from connector.graph.auth import StaticTokenProvider, TokenProvider
from connector.graph.client import GraphClient, RetryPolicy
from connector.graph.endpoint import ProvisioningEndpoint
from connector.graph.logs import LogQuery
from connector.pacing import DailyBudget, InMemoryCallBudgetStore, SlidingWindowLimiter, Slot
from connector.scim import BulkOperation, BulkPayload, build_bulk_requests, split_payload

from .helpers import Sent, operations, payloads, send_all


@contextlib.contextmanager
def emulator(**config: Any) -> Iterator[tuple[RunningEmulator, FakeClock]]:
    clock = FakeClock()
    with run_emulator(EmulatorConfig(**config), clock=clock) as emu:
        yield emu, clock


def client_for(
    emu: RunningEmulator,
    clock: FakeClock,
    *,
    tokens: TokenProvider | None = None,
    budget: DailyBudget | None = None,
    retry: RetryPolicy | None = None,
    max_in_flight: int = 8,
) -> GraphClient:
    endpoint = ProvisioningEndpoint.parse(emu.endpoint_url, allow_loopback=True)
    return GraphClient(
        endpoint,
        tokens or StaticTokenProvider(emu.token),
        clock=clock,
        limiter=SlidingWindowLimiter(clock=clock),
        budget=budget,
        retry=retry or RetryPolicy(timeout=10.0),
        allow_loopback=True,
        max_in_flight=max_in_flight,
        rng=random.Random(3),
    )


def upload(client: GraphClient, items: list[BulkPayload], *, in_flight: int = 8) -> Sent:
    """Post every payload, ``in_flight`` at a time (as many as the client's connections)."""

    async def main() -> Sent:
        async with client:
            return await send_all(client, items, in_flight=in_flight)

    return asyncio.run(main())


class SettlingClock(FakeClock):
    """A FakeClock that lets requests already granted a slot reach the emulator before
    time jumps: real latency is milliseconds, not the seconds a fake sleep skips."""

    def __init__(self) -> None:
        super().__init__()
        self.busy = 0

    async def sleep(self, seconds: float) -> None:
        """Until ``seconds`` from now, as a real sleep is: a stall that moved the clock
        meanwhile shortens it instead of being added to it."""
        until = self.monotonic() + max(0.0, seconds)
        while self.busy:
            await asyncio.sleep(0.0005)
        await super().sleep(max(0.0, until - self.monotonic()))


class CountingLimiter(SlidingWindowLimiter):
    def __init__(self, clock: SettlingClock) -> None:
        super().__init__(clock=clock)
        self.settling = clock

    async def acquire(self) -> Slot:
        slot = await super().acquire()
        self.settling.busy += 1
        return slot


class ReleasingTransport(httpx.AsyncBaseTransport):
    """Real HTTP; ``stall`` holds every ``stall_every``-th request before it is written
    (the event loop busy with a state write, a token refresh), moving the clock on.

    The stall moves the clock only once every request already *written* has been
    answered: in real time a written request crosses loopback in well under a
    millisecond, so a stall in our process cannot land between its write and its
    arrival (requests granted but not yet written are delayed by it, as they would be).
    Without that wait, a busy host could stamp a written request 0.4 s late: a delay of
    the fake clock, not of the client."""

    def __init__(self, clock: SettlingClock, stall: float = 0.0, stall_every: int = 0) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.clock = clock
        self.stall = stall
        self.stall_every = stall_every
        self.requests = 0
        self.in_transit = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        if self.stall_every and self.requests % self.stall_every == 0:
            while self.in_transit:
                await asyncio.sleep(0.0005)
            self.clock.advance(self.stall)
        written = False
        client_trace = request.extensions.get("trace")

        async def trace(event: str, info: dict[str, Any]) -> None:
            nonlocal written
            if event.endswith("send_request_body.complete") and not written:
                written = True
                self.in_transit += 1
            if client_trace is not None:
                await client_trace(event, info)

        request.extensions["trace"] = trace
        try:
            response = await self.inner.handle_async_request(request)
            await response.aread()
            return response
        finally:
            self.in_transit -= written
            self.clock.busy -= 1

    async def aclose(self) -> None:
        await self.inner.aclose()


def settling_client(
    emu: RunningEmulator, clock: SettlingClock, transport: ReleasingTransport
) -> GraphClient:
    """16 requests in flight over real HTTP, the clock moving only when none is."""
    return GraphClient(
        ProvisioningEndpoint.parse(emu.endpoint_url, allow_loopback=True),
        StaticTokenProvider(emu.token),
        transport=transport,
        clock=clock,
        limiter=CountingLimiter(clock),
        allow_loopback=True,
        max_in_flight=16,
    )


def max_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    return max(
        (sum(1 for t in times[i:] if t < s + window) for i, s in enumerate(times)), default=0
    )


def test_no_429_is_self_inflicted_when_requests_stall_before_they_are_written() -> None:
    """Regression: a call counted from its slot, not its write, let a stalled request
    arrive inside the next window's burst: the emulator answered 429 to calls the
    client believed were within the limit."""
    clock = SettlingClock()
    with run_emulator(EmulatorConfig(daily_quota=None), clock=clock) as emu:
        transport = ReleasingTransport(clock, stall=0.4, stall_every=7)
        client = settling_client(emu, clock, transport)
        result = upload(client, payloads(400 * 2, per_batch=2), in_flight=16)
        assert result.records_accepted == 800
        calls = emu.calls()
        assert [c.status for c in calls] == [202] * 400
        assert max_in_window([c.monotonic for c in calls], 5.0) <= 40
        assert client.metrics.throttles == 0


def test_happy_path_delivers_every_record() -> None:
    with emulator() as (emu, clock):
        items = payloads(230)
        client = client_for(emu, clock)
        result = upload(client, items)
        assert result.error is None
        assert len(result.delivered) == 5
        assert all(d.request_id for d in result.delivered)
        emu.wait_idle()
        users = emu.users()
        assert set(users) == {b for p in items for b in p.external_ids}
        assert client.metrics.calls == 5


def test_pacing_never_exceeds_the_window_seen_by_the_emulator() -> None:
    clock = SettlingClock()
    with run_emulator(EmulatorConfig(daily_quota=None), clock=clock) as emu:
        client = settling_client(emu, clock, ReleasingTransport(clock))
        result = upload(client, payloads(130 * 2, per_batch=2), in_flight=16)
        assert result.records_accepted == 260
        calls = emu.calls()
        assert [c.status for c in calls] == [202] * 130  # never throttled
        times = [c.monotonic for c in calls]
        assert max_in_window(times, 5.0) == 40
        # And at full speed: 130 calls in three windows after the first burst.
        assert max(times) - min(times) == pytest.approx(3 * 5.1, abs=0.01)


@pytest.mark.parametrize("retry_after", [True, False])
def test_429_with_and_without_retry_after(retry_after: bool) -> None:
    with emulator(rate_limit_calls=3, retry_after=retry_after) as (emu, clock):
        client = client_for(emu, clock, max_in_flight=4)
        # Our limiter thinks 40/5 s is fine; the service allows 3: it must throttle us.
        items = payloads(8 * 10, per_batch=10)
        result = upload(client, items, in_flight=4)
        assert result.records_accepted == 80
        assert client.metrics.throttles > 0
        statuses = [c.status for c in emu.calls()]
        assert statuses.count(202) == 8
        assert statuses.count(429) == client.metrics.throttles


def test_bucket_full_defers_then_resumes() -> None:
    with emulator(bucket_size=120) as (emu, clock):
        emu.set_job_state("Paused")
        items = payloads(300)
        result = upload(client_for(emu, clock, max_in_flight=1), items, in_flight=1)
        assert isinstance(result.error, BucketFullError)
        assert result.records_accepted == 100
        assert len(result.unsent) == 4
        assert "bucket" in str(result.error)
        emu.set_job_state("Active")
        emu.wait_idle()
        # The next runs send what was not accepted, as far as the queue's room allows.
        rest = result.unsent
        for chunk in (rest[:2], rest[2:]):
            again = upload(client_for(emu, clock), chunk)
            assert again.error is None
            emu.wait_idle()
        assert set(emu.users()) == {b for p in items for b in p.external_ids}


def test_dropped_connections_and_5xx_are_retried_without_loss() -> None:
    with emulator(fault_rate=0.1, drop_before_rate=0.1, drop_after_rate=0.1, seed=11) as (
        emu,
        clock,
    ):
        items = payloads(1000)
        client = client_for(emu, clock)
        result = upload(client, items)
        assert result.error is None
        assert result.records_accepted == 1000
        assert client.metrics.transport_errors > 0
        assert client.metrics.server_errors > 0
        emu.wait_idle()
        assert set(emu.users()) == {b for p in items for b in p.external_ids}
        dropped_after = [c for c in emu.calls() if c.status == 0 and c.operations]
        queued = sum(c.operations for c in emu.calls() if c.status in (0, 202))
        # Every record accepted once, plus the ones whose 202 never reached us.
        assert queued == 1000 + sum(c.operations for c in dropped_after)
        assert client.metrics.records_resent >= sum(c.operations for c in dropped_after)


def test_quota_exhaustion_on_our_budget_then_resume_next_day() -> None:
    with emulator() as (emu, clock):
        store = InMemoryCallBudgetStore()
        items = payloads(400)
        first = upload(client_for(emu, clock, budget=DailyBudget(5, store, clock=clock)), items)
        assert isinstance(first.error, QuotaExhaustedError)
        assert first.records_accepted == 250
        assert len(first.unsent) == 3
        clock.advance(25 * 3600)  # hourly buckets: a rolling day is counted up to 25 h
        second = upload(
            client_for(emu, clock, budget=DailyBudget(5, store, clock=clock)), first.unsent
        )
        assert second.error is None
        emu.wait_idle()
        assert set(emu.users()) == {b for p in items for b in p.external_ids}
        assert sum(c.operations for c in emu.calls() if c.status == 202) == 400


def test_quota_exhaustion_reported_by_the_service_defers() -> None:
    with emulator(daily_quota=2) as (emu, clock):
        client = client_for(emu, clock, max_in_flight=1)
        result = upload(client, payloads(200), in_flight=1)
        assert isinstance(result.error, QuotaExhaustedError)
        assert result.records_accepted == 100
        assert result.records_unsent == 100
        assert client.metrics.calls == 3  # the long Retry-After is not waited for


def test_401_refreshes_the_token_once() -> None:
    class Rotating:
        def __init__(self, first: str, then: str) -> None:
            self.tokens = [first, then]
            self.refreshes = 0

        async def get_token(self, *, rejected: str | None = None) -> str:
            if rejected is not None and rejected == self.current():
                self.refreshes += 1
            return self.current()

        def current(self) -> str:
            return self.tokens[min(self.refreshes, 1)]

    with emulator(expired_tokens=["old"], tokens=["new"]) as (emu, clock):
        tokens = Rotating("old", "new")
        result = upload(client_for(emu, clock, tokens=tokens), payloads(100))
        assert result.records_accepted == 100
        assert tokens.refreshes == 1
    with emulator(expired_tokens=["old"], tokens=["new"]) as (emu, clock):
        client = client_for(emu, clock, tokens=StaticTokenProvider("old"))
        result = upload(client, payloads(50))
        assert isinstance(result.error, AuthenticationError)
        assert client.metrics.calls == 2  # the first try and one after the refresh
        assert client.metrics.token_refreshes == 1


def test_403_names_the_permission() -> None:
    with emulator(tokens=["ok"], tokens_without_upload_role=["weak"]) as (emu, clock):
        result = upload(client_for(emu, clock, tokens=StaticTokenProvider("weak")), payloads(50))
        assert isinstance(result.error, PermissionDeniedError)
        assert "SynchronizationData-User.Upload" in str(result.error)
        assert result.records_unsent == 50


def _with_bad(bad: set[int], count: int = 100) -> list[BulkPayload]:
    ops = operations(count)
    out: list[BulkOperation] = []
    for i, op in enumerate(ops):
        if i in bad:  # a custom namespace not listed in data.schemas: the service refuses it
            data = dict(op.data)
            data["urn:contoso:hr:1.0:User"] = {"grade": "7"}
            op = BulkOperation(op.bulk_id, op.external_id, data)
        out.append(op)
    return list(build_bulk_requests(out))


def test_400_is_about_the_records_that_carry_the_fault() -> None:
    """The service refuses a request for its bad records only, deterministically: the
    requests without them are accepted, and the refused ones split record by record
    refuse exactly the bad records (what the engine's bisection relies on)."""
    bad = {7, 64, 65}
    with emulator() as (emu, clock):
        items = _with_bad(bad)
        client = client_for(emu, clock)
        first = upload(client, items)
        assert first.error is None
        assert [p.bulk_ids for p, _ in first.refused] == [items[0].bulk_ids, items[1].bulk_ids]
        assert all("urn:contoso:hr:1.0:User" in str(e) for _, e in first.refused)
        singles = [
            part
            for p, _ in first.refused
            for part in split_payload(p, [[i] for i in range(len(p))])
        ]
        again = upload(client_for(emu, clock), singles)
        assert {p.external_ids[0] for p, _ in again.refused} == {f"E{i:05d}" for i in bad}
        assert all("urn:contoso:hr:1.0:User" in str(e) for _, e in again.refused)
        assert first.records_accepted + again.records_accepted == 97
        assert client.metrics.calls == len(items)
        emu.wait_idle()
        assert set(emu.users()) == {f"E{i:05d}" for i in range(100) if i not in bad}
        accepted_ops = sum(c.operations for c in emu.calls() if c.status == 202)
        assert accepted_ops == 97  # good records were delivered exactly once


def test_logs_page_to_the_end_and_filter() -> None:
    with emulator(logs_page_size=7) as (emu, clock):
        items = payloads(60)
        client = client_for(emu, clock)

        async def main() -> tuple[list[Any], list[Any], Any]:
            async with client:
                await send_all(client, items)
                await asyncio.to_thread(emu.wait_idle)
                everything = await client.provisioning_logs(LogQuery(top=9))
                one = await client.provisioning_logs(LogQuery(external_id="E00042"))
                job = await client.get_job()
                return everything, one, job

        everything, one, job = asyncio.run(main())
        assert sorted(e.external_id for e in everything) == sorted(
            b for p in items for b in p.external_ids
        )
        assert {e.action for e in everything} == {"create"}
        assert {e.status for e in everything} == {"success"}
        assert [e.external_id for e in one] == ["E00042"]
        assert job.code == "Active"


def test_unknown_enum_values_from_the_service_are_kept() -> None:
    with emulator() as (emu, clock):
        client = client_for(emu, clock)

        async def main() -> list[Any]:
            async with client:
                await send_all(client, payloads(3))
                await asyncio.to_thread(emu.wait_idle)

                async def mutate() -> None:
                    emu.state.logs[0].action = "someFutureAction"
                    emu.state.logs[1].status = "unknownFutureValue"

                emu.call(mutate())
                return await client.provisioning_logs(LogQuery(order_by="activityDateTime asc"))

        entries = asyncio.run(main())
        assert sorted(e.action for e in entries) == ["create", "create", "someFutureAction"]
        assert sorted(e.status for e in entries) == ["success", "success", "unknownFutureValue"]


def test_schema_add_is_idempotent_and_makes_the_attribute_flow() -> None:
    ns = "urn:ietf:params:scim:schemas:extension:contoso:1.0:User"
    with emulator() as (emu, clock):
        client = client_for(emu, clock)

        async def main() -> tuple[Any, Any, dict[str, Any]]:
            async with client:
                first = await client.add_custom_attributes([f"{ns}:HireDate"])
                second = await client.add_custom_attributes([f"{ns}:HireDate"])
                return first, second, await client.get_schema()

        first, second, schema = asyncio.run(main())
        assert first.added == (f"{ns}:HireDate",)
        assert second.added == ()
        assert second.present == (f"{ns}:HireDate",)
        names = [a["name"] for a in schema["directories"][0]["objects"][0]["attributes"]]
        assert names.count(f"{ns}:HireDate") == 1
        assert "externalId" in names  # the rest of the schema survived the full replace
