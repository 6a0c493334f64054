"""The emulator's read limit on /auditLogs/provisioning (Graph throttling limits, identity
and access reports: "Five requests per 10 seconds"), and a paced client that never meets it."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from connector.cli.emulator import build_config
from connector.clock import FakeClock
from connector.emulator import RunningEmulator
from connector.graph.auth import StaticTokenProvider
from connector.graph.client import GraphClient, RetryPolicy
from connector.graph.endpoint import ProvisioningEndpoint
from connector.graph.logs import LogQuery
from connector.pacing import SlidingWindowLimiter

from .helpers import get_logs, record, upload


def test_the_sixth_read_in_ten_seconds_is_429_with_retry_after(emu: RunningEmulator) -> None:
    assert [get_logs(emu).status_code for _ in range(5)] == [200] * 5
    throttled = get_logs(emu)
    assert throttled.status_code == 429
    assert int(throttled.headers["retry-after"]) >= 1
    error = throttled.json()["error"]
    assert error["code"] == "TooManyRequests"
    assert {"request-id", "date"} <= set(error["innerError"])
    emu.advance(10)
    assert get_logs(emu).status_code == 200


def test_bulk_upload_calls_do_not_use_the_log_window(emu: RunningEmulator) -> None:
    for i in range(6):
        upload(emu, record(str(i)))
    assert [get_logs(emu).status_code for _ in range(5)] == [200] * 5


def test_the_log_limit_is_configurable_and_can_be_off(make_emulator: Any) -> None:
    tight = make_emulator(logs_rate_limit_calls=2, logs_rate_limit_window_seconds=4)
    assert [get_logs(tight).status_code for _ in range(3)] == [200, 200, 429]
    tight.advance(4)
    assert get_logs(tight).status_code == 200
    off = make_emulator(logs_rate_limit_calls=None)
    assert {get_logs(off).status_code for _ in range(12)} == {200}


def test_no_limits_turns_the_log_limit_off() -> None:
    assert build_config(None).logs_rate_limit_calls == 5
    assert build_config(None, no_limits=True).logs_rate_limit_calls is None


def _client(emu: RunningEmulator, clock: FakeClock, url: str | None = None) -> GraphClient:
    endpoint = ProvisioningEndpoint.parse(url or emu.endpoint_url, allow_loopback=True)
    return GraphClient(
        endpoint,
        StaticTokenProvider(emu.token),
        clock=clock,
        limiter=SlidingWindowLimiter(clock=clock),
        retry=RetryPolicy(timeout=10.0),
        allow_loopback=True,
        rng=random.Random(1),
    )


def _read(client: GraphClient, query: LogQuery) -> list[str]:
    async def main() -> list[str]:
        async with client:
            return [str(e.external_id) for e in await client.provisioning_logs(query)]

    return asyncio.run(main())


def test_the_clients_queries_are_accepted_on_v1_and_beta(make_emulator: Any) -> None:
    clock = FakeClock()
    emu = make_emulator(clock=clock)
    upload(emu, record("old"))
    clock.advance(60)
    since = clock.now()
    upload(emu, record("ok"), record("bad", upn="x@fabrikam.com"))
    query = LogQuery(since=since, status="failure")
    assert _read(_client(emu, clock), query) == ["bad"]  # v1.0: status filtered locally
    beta = emu.endpoint_url.replace("/v1.0/", "/beta/")
    assert _read(_client(emu, clock, beta), query) == ["bad"]  # beta: sent to the service
    assert sorted(_read(_client(emu, clock), LogQuery(since=since))) == ["bad", "ok"]


def test_a_paced_client_reads_every_page_without_a_429(make_emulator: Any) -> None:
    clock = FakeClock()
    emu = make_emulator(clock=clock, logs_max_top=10)
    for start in range(0, 120, 40):
        upload(emu, *(record(f"{i:04d}") for i in range(start, start + 40)))
    client = _client(emu, clock)
    began = clock.monotonic()
    assert len(_read(client, LogQuery())) == 120
    assert client.metrics.log_calls == 12  # $top=999 clamped to 10 per page
    assert client.metrics.throttles == 0
    assert clock.monotonic() - began >= 20  # 12 reads at 5 per 10 s
