"""Reading the provisioning logs of N sent records with the documented read limit on.

The emulator runs in its own process with the bulkUpload limits off (seeding is not what
is measured) and the log limit on (5 reads per 10 s, Graph's "Identity and access reports
service limits"). The Graph client, on the real clock, reads every entry of the job since
the first send, as a reconcile pass does. Printed: log requests sent, 429s received, wall
time, next to the minimum: the pages needed at the largest page size, 2 s each (5 per
10 s).

Usage: python benchmarks/bench_logs.py [records]   (a multiple of 50; default 100000)
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import os
import platform
import sys
import time
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection

from bench_emulator import _cpu_model, _drive, _payloads, _wait_processed

from connector.emulator import EmulatorConfig, run_emulator
from connector.graph.auth import StaticTokenProvider
from connector.graph.client import GraphClient
from connector.graph.endpoint import ProvisioningEndpoint
from connector.graph.logs import LOG_PAGE_SIZE, LogQuery


def _serve(conn: Connection) -> None:
    config = EmulatorConfig(
        rate_limit_calls=None, daily_quota=None, bucket_size=None, gc_freeze=True
    )
    with run_emulator(config) as emu:
        conn.send((emu.base_url, emu.endpoint_url, emu.token, config.logs_max_top))
        conn.recv()  # wait for "stop"


async def _read_all(endpoint_url: str, token: str, since: datetime) -> tuple[int, int, int]:
    endpoint = ProvisioningEndpoint.parse(endpoint_url, allow_loopback=True)
    async with GraphClient(endpoint, StaticTokenProvider(token), allow_loopback=True) as client:
        count = 0
        async for _ in client.iter_provisioning_logs(LogQuery(since=since)):
            count += 1
        return count, client.metrics.log_calls, client.metrics.throttles


def main() -> None:
    records = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    calls = records // 50
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=_serve, args=(child,), daemon=True)
    server.start()
    try:
        base_url, endpoint, token, max_top = parent.recv()
        since = datetime.now(UTC) - timedelta(seconds=5)
        statuses = asyncio.run(_drive(endpoint, token, _payloads(calls), 8))
        if statuses.count(202) != calls:
            raise SystemExit(f"seeding: expected {calls} answers 202, got {sorted(set(statuses))}")
        _wait_processed(base_url, records)
        started = time.perf_counter()
        entries, requests, throttled = asyncio.run(_read_all(endpoint, token, since))
        wall = time.perf_counter() - started
    finally:
        parent.send("stop")
        server.join(timeout=30)
    page = min(LOG_PAGE_SIZE, max_top)
    pages = math.ceil(records / page)
    minimum = pages * 2.0
    print(f"machine: {_cpu_model()}, nproc={os.cpu_count()}, Python {platform.python_version()}")
    print(f"records sent and logged: {records:,}; entries read: {entries:,}")
    print(f"page size: $top={LOG_PAGE_SIZE} (emulator clamps to {max_top}) -> {pages} pages")
    print(f"log requests: {requests} (429 received: {throttled})")
    print(f"wall time: {wall:.1f} s; minimum at 5 reads per 10 s: {pages} x 2 s = {minimum:.0f} s")
    print(f"(the first 5 reads of an idle window are free: bound {max(0, pages - 5) * 2} s)")
    print(
        f"same read at $top=100 (Microsoft's web client): {math.ceil(records / 100)} requests,"
        f" at least {math.ceil(records / 100) * 2:,} s"
    )
    if entries != records:
        raise SystemExit(f"expected {records} entries, read {entries}")


if __name__ == "__main__":
    main()
