"""bulkUpload utilisation: useful calls against the 40-calls-per-5-s ceiling, client and engine.

Scenario (issue "Graph client", Speed; P2 API utilisation): 20,000 records in 400
bulkUpload calls against the emulator, which enforces 40 calls in any 5 s, adds 300 ms to
every call and fails 5 % of calls transiently (2.5 % answered 500/503, 1.25 % dropped
before being queued, 1.25 % dropped after being queued). Real time, real loopback HTTP.
The emulator runs in a process of its own, so the connector's work never delays the
emulator's clock (and so its count of the window).

Two paths, each with the product's pacing and, in the same run, the previous pacing
(kept here only, as the baseline):

- ``client``: ``GraphClient.post_bulk`` driven by a plain loop, ``--in-flight`` at once;
- ``engine``: the sync engine (``build_engine``: plan, the send window of
  ``connector/sync/upload.py`` with its default width, journaled acknowledgements, the
  daily budget in the state store), ingesting a first load of the same size.

The previous pacing: slots counted from when they were granted (not when the request
went out), a 0.1 s margin, and every retry after a backoff of 0.5–1 s.

Figures: useful calls (the 400 batches; retries not counted) per second as a share of the
8 calls/s ceiling, i.e. against the ideal ``40 / 5 s × duration``; calls made; the
emulator's 429s and the most calls it counted in any 5 s; records lost; records queued
twice (a 202 lost with a dropped connection, re-sent: harmless, bulkUpload upserts).
``--csv2scim`` adds the CSV2SCIM way (sequential, no pacing, no retry).

Run: ``.venv/bin/python benchmarks/bench_graph.py [--records 20000] [--paths client,engine]``
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import platform
import random
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
from bench_sync_upload import faulty_emulator, sources

from connector.clock import Clock, SystemClock
from connector.emulator.config import EmulatorConfig
from connector.emulator.server import run_emulator
from connector.errors import ConnectorError
from connector.graph.auth import StaticTokenProvider
from connector.graph.client import GraphClient, RetryPolicy
from connector.graph.endpoint import ProvisioningEndpoint
from connector.pacing import DEFAULT_MARGIN_SECONDS, DailyBudget, SlidingWindowLimiter, Slot
from connector.sample import generate_extract
from connector.scim import (
    CONTENT_TYPE,
    CORE_USER_SCHEMA,
    ENTERPRISE_USER_SCHEMA,
    BulkOperation,
    BulkPayload,
    build_bulk_requests,
)
from connector.state.local import LocalStateStore
from connector.sync import targets as sync_targets
from connector.sync.wiring import build_engine

CEILING = 40 / 5.0


# ---------------------------------------------------------------- the previous pacing


def current_limiter(margin: float) -> type[SlidingWindowLimiter]:
    """The product's limiter, with another margin when ``--margin`` asks for one."""

    class Limiter(SlidingWindowLimiter):
        def __init__(self, clock: Clock | None = None) -> None:
            super().__init__(margin=margin, clock=clock)

    return Limiter


class PreviousLimiter(SlidingWindowLimiter):
    """The limiter before this change: a call counts from when its slot was granted."""

    def __init__(self, clock: Clock | None = None, margin: float = 0.1) -> None:
        super().__init__(margin=margin, clock=clock)

    async def acquire(self) -> Slot:
        slot = await super().acquire()
        slot.sent()  # fixed at the grant: a stall before the write narrows the window
        return slot


@dataclass(frozen=True, slots=True)
class PreviousRetry(RetryPolicy):
    """Every retry after a 5xx or a dropped connection waited a backoff first."""

    def transient_wait(self, attempt: int, rng: random.Random) -> float:
        return self.backoff(attempt, rng)


# ---------------------------------------------------------------- the emulator, apart


def _serve(conn: Connection, config: EmulatorConfig) -> None:
    with run_emulator(config) as emu:
        conn.send((emu.endpoint_url, emu.token))
        while True:
            message = conn.recv()
            if message == "stop":
                return
            conn.send(_view(emu, message))


def _view(emu: Any, expected: set[str]) -> dict[str, Any]:
    emu.wait_idle(timeout=300)
    calls = emu.calls()
    # The calls the emulator's window counted: past fault injection and the limit check.
    times = sorted(
        c.monotonic for c in calls if c.status == 202 or (c.status == 0 and c.operations)
    )
    worst, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - 5.0:
            j += 1
        worst = max(worst, i - j + 1)
    queued = Counter(entry["sourceIdentity"]["id"] for entry in emu.logs())
    present = set(emu.users())
    statuses = Counter(c.status for c in calls)
    return {
        "server_calls": len(calls),
        "statuses": dict(statuses),
        "server_429": statuses.get(429, 0),
        "max_in_5s": worst,
        "min_gap": min((times[i + 40] - times[i] for i in range(len(times) - 40)), default=0.0),
        "records_lost": len(expected - present),
        "records_sent_twice": sum(1 for n in queued.values() if n > 1),
    }


@dataclass
class Emulator:
    endpoint_url: str
    token: str
    conn: Connection

    def view(self, expected: set[str]) -> dict[str, Any]:
        self.conn.send(expected)
        got: dict[str, Any] = self.conn.recv()
        return got


@contextmanager
def emulator(latency_ms: float, faults: float, seed: int) -> Iterator[Emulator]:
    config = faulty_emulator(latency_ms, faults, seed, gc_freeze=True)
    ctx = multiprocessing.get_context("spawn")
    ours, theirs = ctx.Pipe()
    child = ctx.Process(target=_serve, args=(theirs, config), daemon=True)
    child.start()
    try:
        url, token = ours.recv()
        yield Emulator(url, token, ours)
    finally:
        ours.send("stop")
        child.join(timeout=30)


# ---------------------------------------------------------------- the two paths


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


async def _post_all(client: GraphClient, items: list[BulkPayload], in_flight: int) -> int:
    """Post every payload, ``in_flight`` at a time; the records accepted."""
    cursor = iter(items)
    accepted = 0

    async def worker() -> None:
        nonlocal accepted
        while (payload := next(cursor, None)) is not None:
            delivery = await client.post_bulk(payload)
            accepted += len(delivery.bulk_ids)

    await asyncio.gather(*(worker() for _ in range(min(in_flight, len(items)))))
    return accepted


def client_path(
    emu: Emulator, records: int, limiter: type[SlidingWindowLimiter], previous: bool, in_flight: int
) -> dict[str, Any]:
    items = make_payloads(records)
    clock = SystemClock()
    client = GraphClient(
        ProvisioningEndpoint.parse(emu.endpoint_url, allow_loopback=True),
        StaticTokenProvider(emu.token),
        clock=clock,
        limiter=limiter(clock=clock),
        budget=DailyBudget(100_000, clock=clock),
        retry=(PreviousRetry if previous else RetryPolicy)(timeout=30.0),
        allow_loopback=True,
        max_in_flight=in_flight,
    )

    async def run() -> tuple[float, int]:
        async with client:
            start = time.perf_counter()
            accepted = await _post_all(client, items, in_flight)
            return time.perf_counter() - start, accepted

    elapsed, accepted = asyncio.run(run())
    expected = {b for p in items for b in p.external_ids}
    return {
        "elapsed": elapsed,
        "useful": len(items),
        "calls": client.metrics.calls,
        "records": accepted,
        **emu.view(expected),
    }


def engine_path(
    emu: Emulator, records: int, limiter: type[SlidingWindowLimiter], previous: bool, seed: int
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-graph-") as tmp:
        extract = Path(tmp) / "employees_20260105.csv"
        generate_extract(extract, records, seed=seed)
        expected = {line.split(",", 1)[0] for line in extract.read_text().splitlines()[1:]}
        clock = SystemClock()
        store = LocalStateStore(Path(tmp) / "state", clock=clock)
        config = sources(budget=100_000)
        names = vars(sync_targets)
        names["SlidingWindowLimiter"] = limiter  # graph_targets builds one per source
        try:
            targets = sync_targets.graph_targets(
                config,
                store,
                StaticTokenProvider(emu.token),
                clock,
                allow_loopback=True,
                endpoint_for=lambda src: emu.endpoint_url,
                retry=(PreviousRetry if previous else RetryPolicy)(timeout=30.0),
            )
            engine = build_engine(config, store, targets, clock)
            marks: list[float] = []

            def progress(done: int, total: int) -> None:
                marks.append(time.perf_counter())

            summary = asyncio.run(
                engine.ingest("employees", extract.name, extract, progress=progress)
            )
        finally:
            names["SlidingWindowLimiter"] = SlidingWindowLimiter
        # From the start of the upload (the first progress call) to the last acknowledgement.
        elapsed = marks[-1] - marks[0]
        return {
            "elapsed": elapsed,
            "useful": summary.batches_total,
            "calls": None,
            "records": summary.planned.get("joiners", 0),
            "state": summary.state,
            **emu.view(expected),
        }


def csv2scim_path(emu: Emulator, records: int) -> dict[str, Any]:
    """CSV2SCIM's loop: POST each batch in turn, no pacing, no retry, errors only logged."""
    items = make_payloads(records)

    async def run() -> tuple[float, int]:
        accepted = 0
        start = time.perf_counter()
        async with httpx.AsyncClient(timeout=30.0) as http:
            for payload in items:
                try:
                    response = await http.post(
                        emu.endpoint_url,
                        content=payload.body,
                        headers={
                            "Authorization": f"Bearer {emu.token}",
                            "Content-Type": CONTENT_TYPE,
                        },
                    )
                except httpx.HTTPError:
                    continue
                if response.status_code == 202:
                    accepted += len(payload)
        return time.perf_counter() - start, accepted

    elapsed, accepted = asyncio.run(run())
    expected = {b for p in items for b in p.external_ids}
    return {
        "elapsed": elapsed,
        "useful": len(items),
        "calls": len(items),
        "records": accepted,
        **emu.view(expected),
    }


def show(name: str, r: dict[str, Any]) -> float:
    ideal = CEILING * float(r["elapsed"])
    share = float(r["useful"]) / ideal
    print(f"\n[{name}]")
    print(f"  duration                     {r['elapsed']:.2f} s")
    print(f"  ideal (40 / 5 s x duration)  {ideal:.1f} calls")
    print(f"  useful calls                 {r['useful']} = {share:.3f} of the ceiling")
    print(f"  HTTP calls (emulator)        {r['server_calls']} {r['statuses']}")
    print(f"  emulator: 429 answered       {r['server_429']}")
    print(f"  emulator: most calls in 5 s  {r['max_in_5s']}")
    print(f"  emulator: least time for 41  {r['min_gap']:.3f} s (a call and the 40th after it)")
    print(f"  records lost                 {r['records_lost']}")
    print(f"  records queued twice         {r['records_sent_twice']}")
    return share


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--latency-ms", type=float, default=300.0)
    parser.add_argument("--faults", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--in-flight", type=int, default=10, help="client path: calls at once")
    parser.add_argument("--paths", default="client,engine")
    parser.add_argument(
        "--margin", type=float, default=DEFAULT_MARGIN_SECONDS, help="current pacing's margin"
    )
    parser.add_argument("--no-previous", action="store_true", help="skip the previous pacing")
    parser.add_argument("--csv2scim", action="store_true", help="add the CSV2SCIM baseline")
    args = parser.parse_args()
    print(
        f"{args.records} records in {-(-args.records // 50)} calls; latency {args.latency_ms:g} ms,"
        f" {args.faults:.0%} transient faults, 40 calls / 5 s enforced by the emulator"
    )
    print(
        f"python {platform.python_version()}; emulator in its own process; margin {args.margin:g} s"
    )
    pacings = [False] if args.no_previous else [False, True]
    shares: dict[str, float] = {}
    for path in args.paths.split(","):
        for previous in pacings:
            label = f"{path}, {'previous' if previous else 'current'} pacing"
            limiter = PreviousLimiter if previous else current_limiter(args.margin)
            with emulator(args.latency_ms, args.faults, args.seed) as emu:
                try:
                    if path == "client":
                        r = client_path(emu, args.records, limiter, previous, args.in_flight)
                    else:
                        r = engine_path(emu, args.records, limiter, previous, args.seed)
                except ConnectorError as exc:
                    print(f"\n[{label}] stopped: {type(exc).__name__}: {exc}")
                    continue
            shares[label] = show(label, r)
    if args.csv2scim:
        with emulator(args.latency_ms, args.faults, args.seed) as emu:
            show("CSV2SCIM-style baseline", csv2scim_path(emu, args.records))
    print("\nuseful calls / ceiling:")
    for label, share in shares.items():
        print(f"  {label:<32} {share:.3f}")


if __name__ == "__main__":
    main()
