"""Emulator throughput: bulk calls accepted per second and records processed per second.

The emulator runs in its own process (as ``connector emulator`` does) on a loopback port
with every limit disabled; this process drives it with a concurrent httpx client and
then polls ``/_emulator/stats`` until every record is processed. Client and server share
the machine, so the figures are a floor for the emulator alone.

Usage: python benchmarks/bench_emulator.py [calls] [concurrency]
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import platform
import sys
import time
from multiprocessing.connection import Connection
from typing import Any

import httpx
import psutil

from connector.emulator import EmulatorConfig, run_emulator
from connector.scim import (
    CONTENT_TYPE,
    CORE_USER_SCHEMA,
    ENTERPRISE_USER_SCHEMA,
    BulkOperation,
    build_bulk_requests,
)


def _payloads(calls: int) -> list[bytes]:
    ops = []
    for i in range(calls * 50):
        ext = f"{100000 + i}"
        data = {
            "schemas": [CORE_USER_SCHEMA, ENTERPRISE_USER_SCHEMA],
            "externalId": ext,
            "userName": f"user{ext}@contoso.com",
            "active": True,
            "displayName": f"Bench User {ext}",
            "name": {"givenName": "Bench", "familyName": f"User{ext}"},
            "title": "Analyst",
            "emails": [{"value": f"user{ext}@contoso.com", "type": "work", "primary": True}],
            "addresses": [{"type": "work", "locality": "Chicago", "country": "US"}],
            ENTERPRISE_USER_SCHEMA: {
                "department": f"Dept {i % 40}",
                "costCenter": f"CC{i % 100}",
                "manager": {"value": f"{100000 + (i // 50) * 50}"},
            },
        }
        ops.append(BulkOperation(ext, ext, data))
    return [p.body for p in build_bulk_requests(ops)]


def _serve(conn: Connection) -> None:
    # gc_freeze: this process is nothing but the emulator, as under `connector emulator`.
    config = EmulatorConfig(
        rate_limit_calls=None, daily_quota=None, bucket_size=None, gc_freeze=True
    )
    with run_emulator(config) as emu:
        conn.send((emu.base_url, emu.endpoint_url, emu.token))
        conn.recv()  # wait for "stop"


async def _drive(url: str, token: str, bodies: list[bytes], concurrency: int) -> list[int]:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": CONTENT_TYPE}
    statuses: list[int] = []
    pending = list(reversed(bodies))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def worker() -> None:
            while pending:
                response = await client.post(url, content=pending.pop(), headers=headers)
                statuses.append(response.status_code)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return statuses


def _wait_processed(base_url: str, records: int, timeout: float = 600) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    with httpx.Client() as client:
        while time.monotonic() < deadline:
            stats: dict[str, Any] = client.get(base_url + "/_emulator/stats").json()
            if stats["queuedOperations"] == 0 and stats["logEntries"] >= records:
                return stats
            time.sleep(0.01)
    raise TimeoutError("the emulator did not finish processing")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    calls = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    concurrency = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    records = calls * 50
    bodies = _payloads(calls)
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=_serve, args=(child,), daemon=True)
    server.start()
    try:
        base_url, endpoint, token = parent.recv()
        server_proc = psutil.Process(server.pid)
        cpu_before = server_proc.cpu_times()
        load_before = os.getloadavg()[0]
        started = time.perf_counter()
        statuses = asyncio.run(_drive(endpoint, token, bodies, concurrency))
        accepted_at = time.perf_counter()
        stats = _wait_processed(base_url, records)
        done_at = time.perf_counter()
        cpu_after = server_proc.cpu_times()
        load_after = os.getloadavg()[0]
    finally:
        parent.send("stop")
        server.join(timeout=30)
    if statuses.count(202) != calls:
        raise SystemExit(f"expected {calls} answers 202, got {sorted(set(statuses))}")
    if stats["users"] != records:
        raise SystemExit(f"expected {records} users, got {stats['users']}")
    server_cpu = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
    per_call_ms = server_cpu * 1000 / calls
    accept_s = accepted_at - started
    total_s = done_at - started
    print(f"machine: {_cpu_model()}, nproc={os.cpu_count()}, Python {platform.python_version()}")
    print(f"1-min load average before/after: {load_before:.2f}/{load_after:.2f}")
    print(f"load: {calls} bulk calls x 50 records, httpx.AsyncClient concurrency {concurrency}")
    print(f"accepted: {calls / accept_s:,.0f} bulk calls/s ({records / accept_s:,.0f} records/s)")
    print(
        f"accepted and processed: {calls / total_s:,.0f} bulk calls/s"
        f" ({records / total_s:,.0f} records/s; {total_s:.2f} s end to end)"
    )
    print(
        f"emulator CPU per bulk call (accept + process 50 records): {per_call_ms:.2f} ms"
        f" -> {1000 / per_call_ms:,.0f} bulk calls/s ({50_000 / per_call_ms:,.0f} records/s)"
        " per core when the emulator has the core to itself"
    )


if __name__ == "__main__":
    main()
