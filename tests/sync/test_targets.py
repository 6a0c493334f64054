"""Graph targets: the retry policy bounds how long a send may wait."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from connector.clock import FakeClock
from connector.graph.auth import StaticTokenProvider
from connector.graph.client import RetryPolicy
from connector.state.local import LocalStateStore
from connector.sync.targets import graph_targets
from connector.sync.waiting import WaitingReason
from connector.sync.wiring import build_engine
from tests.sync.fakes import config, people
from tests.sync.world import T0


def test_graph_targets_retry_policy_bounds_the_waiting(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    store = LocalStateStore(tmp_path / "state", clock=clock, heartbeat=False)
    cfg = config()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":  # the job read before sending: an active job
            return httpx.Response(200, json={"id": "j", "status": {"code": "Active"}})
        return httpx.Response(429, headers={"Retry-After": "20"}, json={"error": {}})

    short = RetryPolicy(max_attempts=2, max_retry_after=30)
    targets = graph_targets(
        cfg,
        store,
        StaticTokenProvider("t"),
        clock,
        transport=httpx.MockTransport(handler),
        retry=short,
    )
    engine = build_engine(cfg, store, targets, clock, window=1)
    from tests.sync.fakes import write_extract

    path = write_extract(tmp_path / "hr_20260302.csv", people(60))
    from tests.sync.fakes import csv_reader

    engine.records = csv_reader
    run = asyncio.run(engine.ingest("employees", path.name, path))
    assert run.state == "uploading"
    assert run.waiting_reason is WaitingReason.THROTTLED
    assert sum(clock.slept) <= 20 + 1  # one Retry-After wait, then the run waits
