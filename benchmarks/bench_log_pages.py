"""Emulator log pages per second as the log grows, read through the Graph client.

The emulator runs in its own process with every limit off (also the 5-per-10-s log-read
limit; the client's report pacing is off too: what is measured is the cost of a page).
Its log is seeded in that process with N entries of the default job (four per
millisecond, so equal timestamps are common); then
``GraphClient.iter_provisioning_logs(LogQuery(since=...))`` reads every entry
(``jobId eq`` and ``activityDateTime gt`` filters, newest first, ``$top=999``),
following ``@odata.nextLink`` to the end, as a reconcile pass does.

Baseline in the same run: ``--naive`` sizes are also read with the log answered by a
full scan per page (filter every visible entry, sort, drop up to the skiptoken's key,
slice), the way pages were found before the log was kept in order. It lives here only.

Usage: python benchmarks/bench_log_pages.py [sizes...] [--naive N]
       (default sizes 100000 1000000; naive baseline at sizes <= N, default 100000)
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import platform
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection

from bench_emulator import _cpu_model

from connector.emulator import EmulatorConfig, run_emulator
from connector.emulator.log_entry import LogEntry
from connector.emulator.log_store import LogStore
from connector.emulator.odata import Clause
from connector.graph.auth import StaticTokenProvider
from connector.graph.client import GraphClient
from connector.graph.endpoint import ProvisioningEndpoint
from connector.graph.logs import LogQuery
from connector.pacing import SlidingWindowLimiter


class _NaiveLogStore(LogStore):
    """The baseline: every page filters and sorts the whole visible log."""

    def page(
        self,
        clauses: Sequence[Clause],
        *,
        descending: bool,
        top: int,
        after: tuple[datetime, int] | None,
        cutoff: datetime,
    ) -> tuple[list[LogEntry], bool]:
        rows = [e for e in self.visible(cutoff) if all(c.matches(e.value) for c in clauses)]
        rows.sort(key=lambda e: (e.activity, e.seq), reverse=descending)
        if after is not None:
            rows = [
                e
                for e in rows
                if ((e.activity, e.seq) < after if descending else (e.activity, e.seq) > after)
            ]
        return rows[:top], len(rows) > top


def _seed(store: LogStore, count: int, start: datetime, job_id: str, sp: str, tenant: str) -> None:
    stamp = start
    for seq in range(1, count + 1):
        if seq % 4 == 1:
            stamp = start + timedelta(milliseconds=seq // 4)
        tail = f"{seq:012x}"
        store.append(
            LogEntry(
                seq=seq,
                id=f"00000000-0000-0000-0000-{tail}",
                activity=stamp,
                job_id=job_id,
                cycle_id="c0000000-0000-0000-0000-000000000000",
                change_id=f"11111111-0000-0000-0000-{tail}",
                action="create",
                status="success",
                error=None,
                modified=[],
                source_id=f"E{seq:07d}",
                source_display=None,
                target_id=f"22222222-0000-0000-0000-{tail}",
                target_display=None,
                service_principal_id=sp,
                tenant_id=tenant,
                duration_ms=1,
            )
        )


def _serve(conn: Connection, count: int, naive: bool, start: datetime) -> None:
    config = EmulatorConfig(
        rate_limit_calls=None,
        daily_quota=None,
        bucket_size=None,
        logs_rate_limit_calls=None,
        gc_freeze=True,
    )
    with run_emulator(config) as emu:
        store = _NaiveLogStore() if naive else LogStore()
        sp, job, tenant = emu.service_principal_id, emu.job_id, config.tenant_id

        async def seed() -> None:
            emu.state.logs = store
            _seed(store, count, start, job, sp, tenant)

        emu.call(seed(), timeout=900)
        conn.send((emu.endpoint_url, emu.token))
        conn.recv()  # wait for "stop"


async def _read_all(endpoint_url: str, token: str, since: datetime) -> tuple[int, int]:
    endpoint = ProvisioningEndpoint.parse(endpoint_url, allow_loopback=True)
    unpaced = SlidingWindowLimiter(10**9, 1.0, margin=0.0)  # the emulator's limit is off too
    async with GraphClient(
        endpoint, StaticTokenProvider(token), reports=unpaced, allow_loopback=True
    ) as client:
        count = 0
        async for _ in client.iter_provisioning_logs(LogQuery(since=since)):
            count += 1
        return count, client.metrics.log_calls


def _measure(count: int, naive: bool) -> tuple[int, int, float]:
    start = datetime.now(UTC) - timedelta(hours=1)
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=_serve, args=(child, count, naive, start), daemon=True)
    server.start()
    try:
        endpoint, token = parent.recv()
        began = time.perf_counter()
        entries, pages = asyncio.run(_read_all(endpoint, token, start - timedelta(seconds=1)))
        wall = time.perf_counter() - began
    finally:
        parent.send("stop")
        server.join(timeout=60)
    if entries != count:
        raise SystemExit(f"expected {count} entries, read {entries}")
    return entries, pages, wall


def main() -> None:
    args = sys.argv[1:]
    naive_max = 100_000
    if "--naive" in args:
        at = args.index("--naive")
        naive_max = int(args[at + 1])
        del args[at : at + 2]
    sizes = [int(a) for a in args] or [100_000, 1_000_000]
    print(f"machine: {_cpu_model()}, nproc={os.cpu_count()}, Python {platform.python_version()}")
    print(f"{'entries':>10} {'path':>8} {'pages':>6} {'wall s':>8} {'pages/s':>8} {'ms/page':>8}")
    for size in sizes:
        for naive in (True, False) if size <= naive_max else (False,):
            entries, pages, wall = _measure(size, naive)
            path = "scan" if naive else "ordered"
            print(
                f"{entries:>10,} {path:>8} {pages:>6} {wall:>8.1f} {pages / wall:>8.1f}"
                f" {1000 * wall / pages:>8.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
