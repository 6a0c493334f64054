"""Graph client throughput against the emulator with real limits, latency and faults.

Scenario (issue "Graph client", Speed): 20,000 records in 400 bulkUpload calls; the
emulator enforces 40 calls in any 5 s and the daily quota, adds 300 ms to every call
and fails 5 % of calls transiently (2.5 % answered 500/503, 1.25 % dropped before
being queued, 1.25 % dropped after being queued). Real time, real loopback HTTP.

Figures printed:
- achieved calls/s as a ratio of the 8 calls/s ceiling (40 per 5 s), for every call
  made (retries included) and for useful calls (the 400 batches);
- window efficiency: the shortest span the window allows for the calls made, divided by
  the span the emulator actually saw (1.0 = the ceiling exactly);
- the emulator's view: 429s answered and the most calls it counted in any 5 s;
- records lost (not in the emulated directory after processing) and records sent more
  than once (queued twice because a 202 was lost with a dropped connection);
- the same upload done the CSV2SCIM way (sequential, no pacing, no retry) as baseline.

The connector side is ``GraphClient.post_bulk`` (pacing, budget, retries) driven by the
plain bounded-concurrency loop below (``--in-flight`` calls at once): the benchmark's
driver, measuring the client. ``bench_sync_upload.py`` measures the engine's own window.

Run: ``.venv/bin/python benchmarks/bench_graph.py [--records 20000] [--latency-ms 300]``
"""

from __future__ import annotations

import argparse
import asyncio
import math
import platform
import time
from collections import Counter
from typing import Any

import httpx

from connector.emulator.config import EmulatorConfig
from connector.emulator.server import RunningEmulator, run_emulator
from connector.errors import ConnectorError
from connector.graph.auth import StaticTokenProvider
from connector.graph.client import GraphClient, RetryPolicy
from connector.graph.endpoint import ProvisioningEndpoint
from connector.pacing import DailyBudget, SlidingWindowLimiter
from connector.scim import (
    CONTENT_TYPE,
    CORE_USER_SCHEMA,
    ENTERPRISE_USER_SCHEMA,
    BulkOperation,
    BulkPayload,
    build_bulk_requests,
)

CEILING = 40 / 5.0


def make_payloads(records: int) -> list[BulkPayload]:
    ops = (
        BulkOperation(
            bulk_id=f"B{i:06d}",
            external_id=f"B{i:06d}",
            data={
                "schemas": [CORE_USER_SCHEMA, ENTERPRISE_USER_SCHEMA],
                "externalId": f"B{i:06d}",
                "userName": f"b{i:06d}@contoso.com",
                "active": True,
                "title": "Engineer",
                ENTERPRISE_USER_SCHEMA: {"department": f"D{i % 40}"},
            },
        )
        for i in range(records)
    )
    return list(build_bulk_requests(ops))


def config(latency_ms: float, fault_share: float, seed: int) -> EmulatorConfig:
    return EmulatorConfig(
        latency_ms=latency_ms,
        fault_rate=fault_share / 2,
        drop_before_rate=fault_share / 4,
        drop_after_rate=fault_share / 4,
        seed=seed,
    )


def emulator_view(emu: RunningEmulator, expected: set[str]) -> dict[str, Any]:
    emu.wait_idle(timeout=120)
    calls = emu.calls()
    # Calls the emulator's window counted: those that got past fault injection and the
    # limit check (accepted, or dropped after being queued).
    times = sorted(
        c.monotonic for c in calls if c.status == 202 or (c.status == 0 and c.operations)
    )
    worst, j = 0, 0
    for i, t in enumerate(times):  # most calls the emulator counted in any 5 s
        while times[j] <= t - 5.0:
            j += 1
        worst = max(worst, i - j + 1)
    statuses = Counter(c.status for c in calls)
    queued = Counter(entry["sourceIdentity"]["id"] for entry in emu.logs())
    present = set(emu.users())
    return {
        "server_calls": len(calls),
        "server_429": statuses.get(429, 0),
        "server_faults": statuses.get(500, 0) + statuses.get(503, 0) + statuses.get(0, 0),
        "max_in_5s": worst,
        "span": (times[-1] - times[0]) if times else 0.0,
        "records_lost": len(expected - present),
        "records_sent_twice": sum(1 for n in queued.values() if n > 1),
        "operations_processed": sum(queued.values()),
    }


async def paced_upload(
    emu: RunningEmulator, items: list[BulkPayload], margin: float, in_flight: int
) -> dict[str, Any]:
    client = GraphClient(
        ProvisioningEndpoint.parse(emu.endpoint_url, allow_loopback=True),
        StaticTokenProvider(emu.token),
        limiter=SlidingWindowLimiter(40, 5.0, margin=margin),
        budget=DailyBudget(2000),
        retry=RetryPolicy(timeout=30.0),
        allow_loopback=True,
        max_in_flight=in_flight,
    )
    start = time.perf_counter()
    async with client:
        accepted, stopped = await send_all(client, items, in_flight)
    elapsed = time.perf_counter() - start
    m = client.metrics
    return {
        "elapsed": elapsed,
        "calls": m.calls,
        "useful_calls": len(items),
        "retries": m.retries,
        "throttles": m.throttles,
        "records_accepted": accepted,
        "records_resent_by_client": m.records_resent,
        "stopped": stopped,
    }


async def send_all(
    client: GraphClient, items: list[BulkPayload], in_flight: int
) -> tuple[int, str | None]:
    """Post every payload, ``in_flight`` at a time; the first error stops new sends.

    Returns the records accepted and the error that stopped the loop (None: all sent).
    """
    cursor = iter(items)
    accepted = 0
    stopped: list[str] = []

    async def worker() -> None:
        nonlocal accepted
        while not stopped:
            payload = next(cursor, None)
            if payload is None:
                return
            try:
                delivery = await client.post_bulk(payload)
            except ConnectorError as exc:
                stopped.append(f"{type(exc).__name__}: {exc}")
                return
            accepted += len(delivery.bulk_ids)

    await asyncio.gather(*(worker() for _ in range(min(in_flight, len(items)))))
    return accepted, stopped[0] if stopped else None


async def csv2scim_upload(emu: RunningEmulator, items: list[BulkPayload]) -> dict[str, Any]:
    """CSV2SCIM's loop: POST each batch in turn, no pacing, no retry, errors only logged."""
    accepted = 0
    calls = 0
    failed = Counter[str]()
    start = time.perf_counter()
    async with httpx.AsyncClient(timeout=30.0) as http:
        for payload in items:
            calls += 1
            try:
                response = await http.post(
                    emu.endpoint_url,
                    content=payload.body,
                    headers={
                        "Authorization": f"Bearer {emu.token}",
                        "Content-Type": CONTENT_TYPE,
                    },
                )
            except httpx.HTTPError as exc:
                failed[type(exc).__name__] += 1
                continue
            if response.status_code == 202:
                accepted += len(payload)
            else:
                failed[str(response.status_code)] += 1
    return {
        "elapsed": time.perf_counter() - start,
        "calls": calls,
        "useful_calls": len(items),
        "records_accepted": accepted,
        "failed_calls": dict(failed),
    }


def report(name: str, client: dict[str, Any], server: dict[str, Any]) -> None:
    calls_per_s = client["calls"] / client["elapsed"]
    useful_per_s = client["useful_calls"] / client["elapsed"]
    ideal_span = 5.0 * (math.ceil(server["server_calls"] / 40) - 1)
    efficiency = ideal_span / server["span"] if server["span"] else float("nan")
    print(f"\n[{name}]")
    print(f"  wall time                    {client['elapsed']:.1f} s")
    print(
        f"  calls made                   {client['calls']} ({calls_per_s:.2f}/s ="
        f" {calls_per_s / CEILING:.3f} of the 8/s ceiling)"
    )
    print(
        f"  useful calls (batches)       {client['useful_calls']} ({useful_per_s:.2f}/s ="
        f" {useful_per_s / CEILING:.3f} of the ceiling)"
    )
    print(f"  window efficiency            {efficiency:.3f} (ideal span {ideal_span:.1f} s)")
    print(f"  emulator: 429 answered       {server['server_429']}")
    print(f"  emulator: most calls in 5 s  {server['max_in_5s']}")
    print(f"  emulator: faults injected    {server['server_faults']}")
    print(f"  records lost                 {server['records_lost']}")
    print(f"  records sent more than once  {server['records_sent_twice']}")
    for key in ("retries", "throttles", "records_resent_by_client", "failed_calls", "stopped"):
        if key in client:
            print(f"  {key:<28} {client[key]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--latency-ms", type=float, default=300.0)
    parser.add_argument("--faults", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--margin", type=float, default=0.1, help="limiter safety margin (s)")
    parser.add_argument("--in-flight", type=int, default=10, help="post_bulk calls at once")
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args()
    items = make_payloads(args.records)
    expected = {b for p in items for b in p.external_ids}
    print(
        f"{args.records} records in {len(items)} calls; emulator latency {args.latency_ms:g} ms,"
        f" {args.faults:.0%} transient faults, 40 calls / 5 s enforced"
    )
    print(f"python {platform.python_version()}; limiter margin {args.margin:g} s")
    with run_emulator(config(args.latency_ms, args.faults, args.seed)) as emu:
        paced = asyncio.run(paced_upload(emu, items, args.margin, args.in_flight))
        report("connector (paced, retried)", paced, emulator_view(emu, expected))
    if not args.skip_baseline:
        with run_emulator(config(args.latency_ms, args.faults, args.seed)) as emu:
            base = asyncio.run(csv2scim_upload(emu, items))
            report("CSV2SCIM-style baseline", base, emulator_view(emu, expected))


if __name__ == "__main__":
    main()
