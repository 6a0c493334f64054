"""bulkUpload utilisation: useful calls against the 40-calls-per-5-s ceiling, client and engine.

Scenario (issue "Graph client", Speed; P2 API utilisation): 20,000 records in 400
bulkUpload calls against the emulator, which enforces 40 calls in any 5 s, adds 300 ms to
every call and fails 5 % of calls transiently (2.5 % answered 500/503, 1.25 % dropped
before being queued, 1.25 % dropped after being queued). Real time, real loopback HTTP.
The emulator runs in a process of its own, so the connector's work never delays the
emulator's clock (and so its count of the window).

Three paths, each with the product's settings and, in the same run, baselines (kept
here only):

- ``client``: ``GraphClient.post_bulk`` driven by a plain loop, ``--in-flight`` at once
  (default: the engine's window width, which is also the client's ``max_in_flight``);
- ``engine``: the sync engine (``build_engine``: plan, the send window of
  ``connector/sync/upload.py`` with its default width, journaled acknowledgements, the
  daily budget in the state store), ingesting a first load of the same size: generated
  employees in seven manager levels, so reports wait for their managers' batches;
- ``flat``: the same engine and records with the manager column left empty (one level:
  no batch waits for another, as in a daily delta).

Baselines: the **previous pacing** (slots counted from when they were granted, not when
the request went out, a 0.1 s margin, and every retry after a backoff of 0.5–1 s); the
**previous width** (10 in flight for the client, a window of 8 for the engine); and the
engine's **level barrier** (the window rule before: a batch holding level-*n* records
waits for every earlier batch holding a lower level, not only for its managers' batches).

And the **writes on the event loop** (the journal saved after each acknowledgement, and
each call's count written, on the event loop as before, instead of in a worker thread:
``asyncio.to_thread`` of ``connector/sync/journal_writer.py`` and
``connector/state/store.py`` replaced by a plain call). Each engine run prints the time
its per-acknowledgement state writes took (journal and chunk writes, call-count writes)
and how many were made on the event loop; ``--write-delay-ms`` adds a fixed time to each
(a slower store: the thread that makes the write is held, as by a blob round trip).

Durations run from the first bulkUpload call the emulator saw (its arrival time; the
monotonic clock is the same across processes on Linux) to the last acknowledgement, so
the engine's readiness check (a job GET, also slowed by the added latency) and its
planning are not counted: the ceiling is about bulkUpload calls.

Figures: useful calls (the 400 batches; retries not counted) per second as a share of the
8 calls/s ceiling, i.e. against the ideal ``40 / 5 s × duration``; calls made; the
emulator's 429s and the most calls it counted in any 5 s; records lost; records queued
twice (a 202 lost with a dropped connection, re-sent: harmless, bulkUpload upserts).
``--csv2scim`` adds the CSV2SCIM way (sequential, no pacing, no retry).

Run: ``.venv/bin/python benchmarks/bench_graph.py [--records 20000] [--paths client,engine,flat]
[--settings "current;..."] [--current-only] [--write-delay-ms 0]``
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import multiprocessing
import platform
import random
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
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
from connector.state import store as state_store
from connector.state.local import LocalStateStore
from connector.state.store import StateStore
from connector.sync import journal_store, journal_writer
from connector.sync import targets as sync_targets
from connector.sync.plans import PlanOps
from connector.sync.targets import DEFAULT_WINDOW
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


def level_barrier_deps(self: PlanOps) -> list[tuple[int, ...]]:
    """The window rule before: a batch waits for every earlier batch holding a lower level
    (the window sends in ascending order, so this is "every such batch still in flight")."""
    levels = self.batch_levels()
    return [tuple(j for j in range(k) if levels[j][0] < top) for k, (_, top) in enumerate(levels)]


@dataclass(frozen=True, slots=True)
class Setting:
    """One measured configuration of a path."""

    label: str
    previous_pacing: bool = False
    width: int = DEFAULT_WINDOW
    level_barrier: bool = False
    writes_on_loop: bool = False


SETTINGS = {
    "client": [
        Setting("current"),
        Setting("10 in flight (before)", width=10),
        Setting("previous pacing", previous_pacing=True),
    ],
    "engine": [
        Setting("current"),
        Setting("width 8, level barrier (before)", width=8, level_barrier=True),
        Setting("level barrier", level_barrier=True),
        Setting("previous pacing", previous_pacing=True),
        Setting("writes on the event loop (before)", writes_on_loop=True),
    ],
    "flat": [
        Setting("current"),
        Setting("width 8 (before)", width=8),
        Setting("writes on the event loop (before)", writes_on_loop=True),
    ],
}


# ---------------------------------------------------------------- writes on the event loop


@dataclass
class WriteTimes:
    """Time the engine spent in its per-acknowledgement state writes (journal documents
    and their chunks, call-count writes), in whichever thread made them."""

    journal_writes: int = 0
    journal_seconds: float = 0.0
    journal_max: float = 0.0
    count_writes: int = 0
    count_seconds: float = 0.0
    count_max: float = 0.0
    on_loop: int = 0
    """Writes made on the event loop's thread (the main thread here)."""

    def add(self, what: str, spent: float) -> None:
        if threading.current_thread() is threading.main_thread():
            self.on_loop += 1
        if what == "count":
            self.count_writes += 1
            self.count_seconds += spent
            self.count_max = max(self.count_max, spent)
        else:
            self.journal_writes += 1
            self.journal_seconds += spent
            self.journal_max = max(self.journal_max, spent)


async def _inline(func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """``asyncio.to_thread`` as it was before: the call made on the event loop."""
    return func(*args, **kwargs)


@contextmanager
def timed_writes(delay_ms: float, inline: bool) -> Iterator[WriteTimes]:
    """Count and time every journal write, chunk write and call-count write while the
    block runs; ``delay_ms`` added to each (a slower store: the thread making the write
    is held, as by a blob round trip); ``inline`` makes them on the event loop again."""
    times = WriteTimes()
    originals = {
        (journal_store.RunJournals, "write_journal"): "journal",
        (journal_store.RunJournals, "write_chunk"): "journal",
        (StateStore, "add_call_counts"): "count",
    }
    saved = {key: getattr(*key) for key in originals}

    def timed(key: tuple[type, str], what: str) -> Callable[..., Any]:
        inner = saved[key]

        def call(*args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                if delay_ms:
                    time.sleep(delay_ms / 1000)
                return inner(*args, **kwargs)
            finally:
                times.add(what, time.perf_counter() - t)

        return call

    for key, what in originals.items():
        setattr(*key, timed(key, what))
    threads = (journal_writer.to_thread, state_store.to_thread)
    if inline:
        journal_writer.to_thread = _inline  # type: ignore[assignment]
        state_store.to_thread = _inline  # type: ignore[assignment]
    try:
        yield times
    finally:
        for key, inner in saved.items():
            setattr(*key, inner)
        journal_writer.to_thread, state_store.to_thread = threads


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
    queued, present = emu.call(_queued_and_present(emu), timeout=600)
    statuses = Counter(c.status for c in calls)
    return {
        "first_call": min((c.monotonic for c in calls), default=0.0),
        **_spacing(sorted(c.monotonic for c in calls)),
        "server_calls": len(calls),
        "statuses": dict(statuses),
        "server_429": statuses.get(429, 0),
        "max_in_5s": worst,
        "min_gap": min((times[i + 40] - times[i] for i in range(len(times) - 40)), default=0.0),
        "records_lost": len(expected - present),
        "records_sent_twice": sum(1 for n in queued.values() if n > 1),
    }


async def _queued_and_present(emu: Any) -> tuple[Counter[str], set[str]]:
    """Log entries per externalId and the users present, read on the emulator's loop
    (without a JSON copy of each: at 100,000 records that outlasts the default timeout)."""
    queued = Counter(entry.source_id for entry in emu.state.logs)
    return queued, set(emu.state.users)


def _spacing(arrivals: list[float], window: float = 5.1) -> dict[str, float]:
    """Where the duration goes, from the emulator's arrival times of every call: call *n*
    can go no earlier than call *n* − 40 plus the paced 5.1 s, so the last call's time is
    the offset of its chain's first call in the first burst, plus 5.1 s per window, plus
    the lateness of each call of that chain (a call that went later than its slot
    allowed: the sender was not ready, or its event loop was held)."""
    n = len(arrivals)
    if n <= 40:
        return {"head": 0.0, "late_chain": 0.0, "late_mean": 0.0}
    t0 = arrivals[0]
    late = [arrivals[i] - arrivals[i - 40] - window for i in range(40, n)]
    last = n - 1
    chain = [arrivals[i] - arrivals[i - 40] - window for i in range(last, 39, -40)]
    return {
        "head": arrivals[last % 40] - t0,
        "late_chain": sum(chain),
        "late_mean": sum(late) / len(late),
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


async def _post_all(
    client: GraphClient, items: list[BulkPayload], in_flight: int
) -> tuple[int, float]:
    """Post every payload, ``in_flight`` at a time; the records accepted and the
    monotonic time of the last acknowledgement."""
    cursor = iter(items)
    accepted = 0
    last = 0.0

    async def worker() -> None:
        nonlocal accepted, last
        while (payload := next(cursor, None)) is not None:
            delivery = await client.post_bulk(payload)
            accepted += len(delivery.bulk_ids)
            last = max(last, time.monotonic())

    await asyncio.gather(*(worker() for _ in range(min(in_flight, len(items)))))
    return accepted, last


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

    async def run() -> tuple[int, float, float]:
        async with client:
            start = time.monotonic()
            accepted, last = await _post_all(client, items, in_flight)
            return accepted, start, last

    accepted, start, last = asyncio.run(run())
    expected = {b for p in items for b in p.external_ids}
    view = emu.view(expected)
    return {
        "elapsed": last - view["first_call"],
        "from_start": last - start,
        "useful": len(items),
        "calls": client.metrics.calls,
        "records": accepted,
        **view,
    }


def _flatten(extract: Path) -> None:
    """The same records with no manager: a plan of one level."""
    with extract.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    column = rows[0].index("ManagerId")
    for row in rows[1:]:
        row[column] = ""
    with extract.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)


def engine_path(
    emu: Emulator,
    records: int,
    limiter: type[SlidingWindowLimiter],
    setting: Setting,
    seed: int,
    *,
    flat: bool,
    write_delay_ms: float = 0.0,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-graph-") as tmp:
        extract = Path(tmp) / "employees_20260105.csv"
        generate_extract(extract, records, seed=seed)
        if flat:
            _flatten(extract)
        expected = {line.split(",", 1)[0] for line in extract.read_text().splitlines()[1:]}
        clock = SystemClock()
        store = LocalStateStore(Path(tmp) / "state", clock=clock)
        config = sources(budget=100_000)
        names = vars(sync_targets)
        names["SlidingWindowLimiter"] = limiter  # graph_targets builds one per source
        product_deps = PlanOps.batch_deps
        if setting.level_barrier:
            PlanOps.batch_deps = level_barrier_deps  # type: ignore[method-assign]
        try:
            targets = sync_targets.graph_targets(
                config,
                store,
                StaticTokenProvider(emu.token),
                clock,
                allow_loopback=True,
                endpoint_for=lambda src: emu.endpoint_url,
                retry=(PreviousRetry if setting.previous_pacing else RetryPolicy)(timeout=30.0),
                max_in_flight=setting.width,
            )
            engine = build_engine(config, store, targets, clock, window=setting.width)
            marks: list[float] = []

            def progress(done: int, total: int) -> None:
                marks.append(time.monotonic())

            with timed_writes(write_delay_ms, setting.writes_on_loop) as writes:
                summary = asyncio.run(
                    engine.ingest("employees", extract.name, extract, progress=progress)
                )
        finally:
            names["SlidingWindowLimiter"] = SlidingWindowLimiter
            PlanOps.batch_deps = product_deps  # type: ignore[method-assign]
        view = emu.view(expected)
        # From the first bulkUpload call the emulator saw to the last acknowledgement.
        return {
            "elapsed": marks[-1] - view["first_call"],
            "from_start": marks[-1] - marks[0],
            "useful": summary.batches_total,
            "calls": None,
            "records": summary.planned.get("joiners", 0),
            "state": summary.state,
            "writes": writes,
            **view,
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
    print(f"  duration                     {r['elapsed']:.2f} s (first bulkUpload to last ack)")
    if "from_start" in r:
        print(f"  from the start               {r['from_start']:.2f} s (first post/progress call)")
    print(f"  ideal (40 / 5 s x duration)  {ideal:.1f} calls")
    print(f"  useful calls                 {r['useful']} = {share:.3f} of the ceiling")
    print(
        f"  where it goes (emulator)     chain head +{r['head']:.2f} s in the first burst,"
        f" lateness along the last call's chain {r['late_chain']:.2f} s,"
        f" mean lateness per call {r['late_mean'] * 1000:.0f} ms"
    )
    print(f"  HTTP calls (emulator)        {r['server_calls']} {r['statuses']}")
    print(f"  emulator: 429 answered       {r['server_429']}")
    print(f"  emulator: most calls in 5 s  {r['max_in_5s']}")
    print(f"  emulator: least time for 41  {r['min_gap']:.3f} s (a call and the 40th after it)")
    if (w := r.get("writes")) is not None:
        print(
            f"  state writes                 {w.journal_writes} journal/chunk writes"
            f" {w.journal_seconds:.2f} s (max {w.journal_max * 1000:.1f} ms),"
            f" {w.count_writes} call-count writes {w.count_seconds:.2f} s"
            f" (max {w.count_max * 1000:.1f} ms); {w.on_loop} made on the event loop"
        )
    print(f"  records lost                 {r['records_lost']}")
    print(f"  records queued twice         {r['records_sent_twice']}")
    return share


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--latency-ms", type=float, default=300.0)
    parser.add_argument("--faults", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--in-flight", type=int, default=DEFAULT_WINDOW, help="client path, current: calls at once"
    )
    parser.add_argument("--paths", default="client,engine,flat")
    parser.add_argument(
        "--margin", type=float, default=DEFAULT_MARGIN_SECONDS, help="current pacing's margin"
    )
    parser.add_argument("--no-previous", action="store_true", help="skip the previous pacing")
    parser.add_argument("--current-only", action="store_true", help="skip every baseline")
    parser.add_argument("--csv2scim", action="store_true", help="add the CSV2SCIM baseline")
    parser.add_argument(
        "--write-delay-ms",
        type=float,
        default=0.0,
        help="engine paths: add this to every journal, chunk and call-count write",
    )
    parser.add_argument(
        "--settings", default="", help="only these settings (labels, separated by ;)"
    )
    args = parser.parse_args()
    print(
        f"{args.records} records in {-(-args.records // 50)} calls; latency {args.latency_ms:g} ms,"
        f" {args.faults:.0%} transient faults, 40 calls / 5 s enforced by the emulator"
    )
    print(
        f"python {platform.python_version()}; emulator in its own process; margin {args.margin:g} s"
    )
    shares: dict[str, float] = {}
    for path in args.paths.split(","):
        for setting in SETTINGS[path]:
            if args.current_only and setting.label != "current":
                continue
            if args.no_previous and setting.previous_pacing:
                continue
            if args.settings and setting.label not in args.settings.split(";"):
                continue
            label = f"{path}, {setting.label}"
            previous = setting.previous_pacing
            limiter = PreviousLimiter if previous else current_limiter(args.margin)
            with emulator(args.latency_ms, args.faults, args.seed) as emu:
                try:
                    if path == "client":
                        width = args.in_flight if setting.label == "current" else setting.width
                        r = client_path(emu, args.records, limiter, previous, width)
                    else:
                        r = engine_path(
                            emu,
                            args.records,
                            limiter,
                            setting,
                            args.seed,
                            flat=path == "flat",
                            write_delay_ms=args.write_delay_ms,
                        )
                except ConnectorError as exc:
                    print(f"\n[{label}] stopped: {type(exc).__name__}: {exc}")
                    continue
            shares[label] = show(label, r)
    if args.csv2scim:
        with emulator(args.latency_ms, args.faults, args.seed) as emu:
            show("CSV2SCIM-style baseline", csv2scim_path(emu, args.records))
    print("\nuseful calls / ceiling:")
    for label, share in shares.items():
        print(f"  {label:<40} {share:.3f}")


if __name__ == "__main__":
    main()
