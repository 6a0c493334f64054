"""Peak RSS of reconciling a first load of N records, each size in a fresh process.

For each size the emulator starts in its own process on a loopback port with every limit
off (bulkUpload rate, daily quota, bucket, and the log-read limit: seeding and paging are
not what is measured). A sync process (the engine, a local state store) sends a first
load of N joiners to it; once every record is processed and logged, a **fresh process**
builds the engine on the same state and runs one reconciliation pass
(``Engine.reconcile_open_runs``: the log read, matching, outcomes, record index, and the
reports of the runs it finishes), with the client's log-read pacing off.

Printed per size, all from that process: peak RSS (``VmHWM``) after imports and loading
the run's journal (the baseline), the peak of the reconciliation up to the reports (the
peak is reset before ``Reporter.write`` through ``/proc/self/clear_refs``), the peak of
the report writing and its time (``Reporter.write``), the whole process's ``ru_maxrss``,
wall time and the outcomes.
``--old REV`` also reconciles a copy of the same state with the code of git revision REV
(the same-run baseline of the code before the change).

Usage: python benchmarks/bench_reconcile_memory.py [sizes ...] [--old REV] [--seeded]
       (default sizes: 100000 300000 1000000)
       ``--seeded``: the pass reads log entries generated in-process, one
       ``create``/``success`` per record of each acknowledged batch, newest first: the
       entries without the emulator's paging, whose cost per page grows with its log
       (the emulator still takes the uploads; the pass does not wait for its processing)
       python benchmarks/bench_reconcile_memory.py --reconcile STATE --seeded -
       (that pass alone, on a synced STATE)
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SP = "6a1c3f0e-1d2b-4c5d-8e9f-0a1b2c3d4e5f"
JOB = "API2AAD.5f2b9f0c1e2d4a3b8c7d6e5f4a3b2c1d.7b0e4d2a-9c8b-4a1f-8e3d-2c1b0a9f8e7d"


def _vm_hwm_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def _reset_peak() -> None:
    """Reset VmHWM to the current RSS (Linux ≥ 4.0: ``5`` to ``/proc/self/clear_refs``)."""
    Path("/proc/self/clear_refs").write_text("5")


def _engine(state: Path, endpoint: str, token: str) -> Any:
    from connector.clock import SystemClock
    from connector.config import parse_sources
    from connector.graph.auth import StaticTokenProvider
    from connector.graph.client import GraphClient
    from connector.graph.endpoint import ProvisioningEndpoint
    from connector.pacing import SlidingWindowLimiter
    from connector.state.local import LocalStateStore
    from connector.sync.targets import GraphTarget
    from connector.sync.wiring import build_engine

    config = parse_sources(
        f"daily_call_budget: 100000000\nsources:\n  - name: employees\n"
        f"    match: employees/\n    mapping: {ROOT / 'samples/mappings/default.yaml'}\n"
        f"    service_principal_id: {SP}\n    job_id: {JOB}\n"
        "    thresholds: {max_changes_percent: 100, max_leavers_percent: 100}\n"
    )
    clock = SystemClock()
    store = LocalStateStore(state, clock=clock, heartbeat=False)
    unpaced = SlidingWindowLimiter(10**9, 1.0, margin=0.0, clock=clock)

    def targets(src: object) -> GraphTarget:
        client = GraphClient(
            ProvisioningEndpoint.parse(endpoint, allow_loopback=True),
            StaticTokenProvider(token),
            clock=clock,
            limiter=unpaced,
            reports=unpaced,
            allow_loopback=True,
            max_in_flight=16,
        )
        return GraphTarget(client)

    return build_engine(config, store, targets, clock)


def _sync(records: int, work: Path, endpoint: str, token: str) -> None:
    """The first load: N joiners generated and sent (a process of its own)."""
    from connector.sample import generate_extract

    extract = work / "employees_20260301.csv"
    generate_extract(extract, records, seed=1)
    engine = _engine(work / "state", endpoint, token)
    started = time.perf_counter()
    summary = asyncio.run(engine.ingest("employees", extract.name, extract))
    print(
        json.dumps({"sync_s": time.perf_counter() - started, "state": str(summary.state)}),
        flush=True,
    )


def _reconcile(state: Path, endpoint: str, token: str) -> None:
    """One reconciliation pass in this (fresh) process; figures as one JSON line."""
    engine = _engine(state, endpoint, token)
    seeded = endpoint == "--seeded"
    if seeded:
        engine.targets = lambda src: _Logged(engine)
    runs = engine.list_runs()
    base = _vm_hwm_kb()
    stages: dict[str, int] = {}
    write = engine.reporter.write

    report_s = [0.0]

    def measured_write(journal: Any) -> Any:
        stages.setdefault("reconcile_kb", _vm_hwm_kb())
        _reset_peak()
        t0 = time.perf_counter()
        try:
            return write(journal)
        finally:
            report_s[0] += time.perf_counter() - t0
            stages["report_kb"] = max(stages.get("report_kb", 0), _vm_hwm_kb())

    engine.reporter.write = measured_write
    started = time.perf_counter()
    result = asyncio.run(engine.reconcile_open_runs())
    wall = time.perf_counter() - started
    stages.setdefault("reconcile_kb", _vm_hwm_kb())
    out = {
        "runs": len(runs),
        "baseline_kb": base,
        **stages,
        "ru_maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "wall_s": wall,
        "report_s": report_s[0],
        "outcomes": [dict(s.outcomes) for s in result],
        "states": [str(s.state) for s in result],
    }
    print(json.dumps(out), flush=True)


class _Logged:
    """A target whose log holds the entry a processed upload gets for every record of
    every acknowledged batch (``create``/``success``, 30 s after the send, GUID-shaped
    ids), served newest first in pages of 999 as Graph orders them: the emulator's
    entries without its paging (``--seeded``)."""

    job_id = JOB

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    async def iter_logs(self, since: datetime) -> Any:
        from datetime import timedelta

        from connector.reconcile import LogEntry

        runs = self.engine.runs
        n = 0
        for journal in runs.runs("employees"):
            members = runs.batch_members(journal)
            for batch in sorted(journal.batches, key=lambda b: b.sent_at, reverse=True):
                when = batch.sent_at + timedelta(seconds=30)
                for ext in reversed(members[batch.index]):
                    n += 1
                    yield LogEntry(
                        f"0000aaaa-bbbb-4ccc-8ddd-{n:012x}",
                        when,
                        ext,
                        "create",
                        "success",
                        job_id=JOB,
                    )

    async def get_job(self) -> dict[str, Any]:
        return {"id": JOB, "status": {"code": "Active"}}

    async def aclose(self) -> None:
        return None


def _child(args: list[str], pythonpath: str | None = None) -> dict[str, Any]:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    done = subprocess.run(
        [sys.executable, __file__, *args], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{args[0]} failed:\n{done.stderr[-3000:]}")
    got: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return got


def _wait_idle(base_url: str, timeout: float = 3600) -> int:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stats = httpx.get(base_url + "/_emulator/stats").json()
        if stats["queuedOperations"] == 0:
            return int(stats["logEntries"])
        time.sleep(0.2)
    raise TimeoutError("the emulator did not finish processing")


def _old_tree(rev: str, into: Path) -> str:
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "connector"], capture_output=True, check=True
    )
    into.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return str(into)


def _mb(kb: int) -> str:
    return f"{kb / 1024:,.0f} MB"


def _one(records: int, old: str | None, tmp: Path, *, seeded: bool = False) -> None:
    from bench_reconcile import _serve  # the emulator; not imported by the measured process

    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=_serve, args=(child, False), daemon=True)
    server.start()
    work = tmp / f"n{records}"
    work.mkdir()
    try:
        base_url, endpoint, token, _ = parent.recv()
        t = time.perf_counter()
        synced = _child(["--sync", str(records), str(work), endpoint, token])
        entries = (
            "entries generated in-process" if seeded else f"{_wait_idle(base_url):,} log entries"
        )
        print(
            f"\n{records:,} records: first load sent in {time.perf_counter() - t:.0f} s"
            f" (sync {synced['sync_s']:.0f} s, run {synced['state']}); {entries}"
        )
        read = ["--seeded", "-"] if seeded else [endpoint, token]
        if old is not None:
            shutil.copytree(work / "state", work / "state-old")
            before = _child(["--reconcile", str(work / "state-old"), *read], old)
            _print("code before (same state)", before)
            shutil.rmtree(work / "state-old", ignore_errors=True)
        _print("this code", _child(["--reconcile", str(work / "state"), *read]))
    finally:
        parent.send("stop")
        server.join(timeout=60)
        shutil.rmtree(work, ignore_errors=True)


def _print(label: str, got: dict[str, Any]) -> None:
    print(
        f"  {label}: baseline (imports + journals) {_mb(got['baseline_kb'])};"
        f" reconcile up to the reports {_mb(got['reconcile_kb'])};"
        f" report writing {_mb(got.get('report_kb', 0))} in {got['report_s']:.1f} s;"
        f" whole process ru_maxrss {_mb(got['ru_maxrss_kb'])}; wall {got['wall_s']:.0f} s;"
        f" {got['states']} {got['outcomes']}"
    )


def main() -> None:
    args = sys.argv[1:]
    if args and args[0] == "--sync":
        _sync(int(args[1]), Path(args[2]), args[3], args[4])
        return
    if args and args[0] == "--reconcile":
        _reconcile(Path(args[1]), args[2], args[3])
        return
    old_rev = None
    if "--old" in args:
        at = args.index("--old")
        old_rev = args[at + 1]
        del args[at : at + 2]
    seeded = "--seeded" in args
    if seeded:
        args.remove("--seeded")
    sizes = [int(a) for a in args] or [100_000, 300_000, 1_000_000]
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next(
        (ln.split(":", 1)[1].strip() for ln in lscpu.splitlines() if "Model name" in ln), "?"
    )
    print(
        f"machine: {model}, nproc={os.cpu_count()}, Python {platform.python_version()},"
        f" {datetime.now(UTC):%Y-%m-%d}"
    )
    tmp = Path(tempfile.mkdtemp(prefix="bench-reconcile-memory-"))
    try:
        old = _old_tree(old_rev, tmp / "old") if old_rev is not None else None
        for records in sizes:
            # The code before runs below 1,000,000 only (it grows with the records).
            _one(records, old if records < 1_000_000 else None, tmp, seeded=seeded)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
