"""Reconciling N sent records through the engine with the documented log-read limit on.

The emulator runs in its own process with the bulkUpload limits off (seeding is not what
is measured) and the log limit on (5 reads of ``/auditLogs/provisioning`` per 10 s,
Graph's "Identity and access reports service limits"). The engine (local state store,
real clock) syncs day 1 (N joiners), then day 2 (1 % churn) a few seconds later, and
reconciles (one pass), then syncs day 3 (1 % churn) and reconciles again. Printed: log
requests and wall time of the first pass (both runs from one read), next to the minimum
from the same run: the pages the entries need at the client's page size, 2 s each; and
of the second pass, which reads only what is new since the stored cursor.

Usage: python benchmarks/bench_reconcile.py [records]   (default 100000)
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import os
import platform
import shutil
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path

from bench_emulator import _cpu_model

from connector.clock import SystemClock
from connector.config import parse_sources
from connector.emulator import EmulatorConfig, run_emulator
from connector.graph.auth import StaticTokenProvider
from connector.graph.logs import LOG_PAGE_SIZE
from connector.sample import churn_extract, generate_extract
from connector.state.local import LocalStateStore
from connector.sync.targets import GraphTarget, ProvisioningTarget, graph_targets
from connector.sync.wiring import build_engine

ROOT = Path(__file__).resolve().parents[1]
SP = "6a1c3f0e-1d2b-4c5d-8e9f-0a1b2c3d4e5f"
JOB = "API2AAD.5f2b9f0c1e2d4a3b8c7d6e5f4a3b2c1d.7b0e4d2a-9c8b-4a1f-8e3d-2c1b0a9f8e7d"


def _serve(conn: Connection, log_limit: bool = True) -> None:
    """The emulator with the bulkUpload limits off (and the log-read limit unless told)."""
    from connector.emulator.config import JobConfig

    config = EmulatorConfig(
        jobs=[JobConfig(service_principal_id=SP, job_id=JOB)],
        rate_limit_calls=None,
        daily_quota=None,
        bucket_size=None,
        gc_freeze=True,
        **({} if log_limit else {"logs_rate_limit_calls": None}),
    )
    with run_emulator(config) as emu:
        conn.send((emu.base_url, emu.endpoint_url, emu.token, config.logs_max_top))
        conn.recv()  # wait for "stop"


def _stats(base_url: str) -> dict[str, int]:
    import httpx

    got: dict[str, int] = httpx.get(base_url + "/_emulator/stats").json()
    return got


def _wait_idle(base_url: str, timeout: float = 1200) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stats = _stats(base_url)
        if stats["queuedOperations"] == 0:
            return int(stats["logEntries"])
        time.sleep(0.05)
    raise TimeoutError("the emulator did not finish processing")


def main() -> None:
    records = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=_serve, args=(child,), daemon=True)
    server.start()
    tmp = Path(tempfile.mkdtemp(prefix="bench-reconcile-"))
    try:
        base_url, endpoint, token, max_top = parent.recv()
        config = parse_sources(
            f"daily_call_budget: 1000000\nsources:\n  - name: employees\n"
            f"    match: employees/\n    mapping: {ROOT / 'samples/mappings/default.yaml'}\n"
            f"    service_principal_id: {SP}\n    job_id: {JOB}\n"
            "    thresholds: {max_changes_percent: 100, max_leavers_percent: 100}\n"
        )
        clock = SystemClock()
        store = LocalStateStore(tmp / "state", clock=clock, heartbeat=False)
        inner = graph_targets(
            config,
            store,
            StaticTokenProvider(token),
            clock,
            allow_loopback=True,
            endpoint_for=lambda src: endpoint,
        )
        made: list[GraphTarget] = []

        def targets(src: object) -> ProvisioningTarget:
            target = inner(src)  # type: ignore[arg-type]
            if isinstance(target, GraphTarget):
                made.append(target)
            return target

        engine = build_engine(config, store, targets, clock)
        day1, day2 = tmp / "day1.csv", tmp / "day2.csv"
        generate_extract(day1, records, seed=1)
        churn_extract(day1, day2, churn=0.01, seed=2)
        t = time.perf_counter()
        for path in (day1, day2):
            asyncio.run(engine.ingest("employees", path.name, path))
        upload = time.perf_counter() - t
        entries = _wait_idle(base_url)

        def one_pass() -> tuple[int, float, list[str]]:
            made.clear()
            started = time.perf_counter()
            result = asyncio.run(engine.reconcile_open_runs())
            wall = time.perf_counter() - started
            calls = sum(m.client.metrics.log_calls for m in made)
            return calls, wall, [f"{s.run_id[-6:]} {s.state} {s.outcomes}" for s in result]

        calls1, wall1, runs1 = one_pass()
        day3 = tmp / "day3.csv"
        churn_extract(day2, day3, churn=0.01, seed=3)
        asyncio.run(engine.ingest("employees", day3.name, day3))
        entries3 = _wait_idle(base_url) - entries
        calls2, wall2, runs2 = one_pass()
    finally:
        parent.send("stop")
        server.join(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)
    page = min(LOG_PAGE_SIZE, max_top)
    pages = math.ceil(entries / page)
    minimum = pages * 2.0
    print(f"machine: {_cpu_model()}, nproc={os.cpu_count()}, Python {platform.python_version()}")
    print(f"records: day 1 {records:,} joiners, day 2 1 % churn; upload {upload:.0f} s")
    print(f"log entries written by the emulator: {entries:,}")
    print(f"page size: $top={LOG_PAGE_SIZE} (emulator clamps to {max_top}) -> {pages} pages")
    print(f"pass 1: {calls1} log requests, {wall1:.1f} s; runs: {runs1}")
    print(f"minimum for pass 1 at 5 reads per 10 s: {pages} pages x 2 s = {minimum:.0f} s")
    print(
        f"pass 2 after day 3 (1 % churn, {entries3:,} new entries): {calls2} log requests,"
        f" {wall2:.1f} s; runs: {runs2}"
    )


if __name__ == "__main__":
    main()
