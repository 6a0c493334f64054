"""Sync engine upload throughput against the emulator: a window of batches vs one at a time.

The whole engine (plan → journal → upload with per-batch acknowledgements → record
index), not just the Graph client: an extract of N joiners is ingested into a local
state store and uploaded to the emulator over real loopback HTTP, with the real limits
(40 calls in any 5 s), 300 ms added to every call and 4 % transient faults (2 % answered
500/503, 1 % dropped before being queued, 1 % dropped after being queued). Real time.

Figures: achieved useful calls/s (bulk requests acknowledged per second of upload) as a
ratio of the 8 calls/s ceiling; records lost (not in the emulated directory); records
sent more than once (queued twice: a 202 lost with a dropped connection, re-sent);
the same engine with ``window=1`` in the same run (a smaller extract, same conditions).

Run: ``.venv/bin/python benchmarks/bench_sync_upload.py [--records 10000] [--baseline 3000]``
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.emuworld import JOB, MAPPING, SP  # noqa: E402
from connector.clock import SystemClock  # noqa: E402
from connector.config import parse_sources  # noqa: E402
from connector.emulator.config import EmulatorConfig, JobConfig  # noqa: E402
from connector.emulator.server import run_emulator  # noqa: E402
from connector.graph.auth import StaticTokenProvider  # noqa: E402
from connector.sample import generate_extract  # noqa: E402
from connector.state.local import LocalStateStore  # noqa: E402
from connector.sync.targets import graph_targets  # noqa: E402
from connector.sync.wiring import build_engine  # noqa: E402

CEILING = 40 / 5.0


def sources(budget: int) -> Any:
    return parse_sources(
        f"""
daily_call_budget: {budget}
sources:
  - name: employees
    match: employees/
    mapping: {MAPPING}
    service_principal_id: {SP}
    job_id: {JOB}
    thresholds: {{max_changes_percent: 100000, max_changes: 10000000}}
"""
    )


def faulty_emulator(latency_ms: float, faults: float, seed: int, **extra: Any) -> EmulatorConfig:
    """The benchmarks' emulator: the job, no daily quota, ``latency_ms`` on every call and
    ``faults`` split as half 5xx answers, a quarter dropped before and after acceptance."""
    return EmulatorConfig(
        jobs=[JobConfig(service_principal_id=SP, job_id=JOB)],
        latency_ms=latency_ms,
        fault_rate=faults / 2,
        drop_before_rate=faults / 4,
        drop_after_rate=faults / 4,
        seed=seed,
        daily_quota=None,
        **extra,
    )


def run_once(
    records: int, window: int, latency_ms: float, faults: float, seed: int
) -> dict[str, Any]:
    emu_cfg = faulty_emulator(latency_ms, faults, seed)
    with tempfile.TemporaryDirectory(prefix="bench-sync-") as tmp, run_emulator(emu_cfg) as emu:
        extract = Path(tmp) / "employees_20260105.csv"
        generate_extract(extract, records, seed=seed)
        clock = SystemClock()
        store = LocalStateStore(Path(tmp) / "state", clock=clock)
        config = sources(budget=100_000)
        targets = graph_targets(
            config,
            store,
            StaticTokenProvider(emu.token),
            clock,
            allow_loopback=True,
            endpoint_for=lambda src: emu.endpoint_url,
            max_in_flight=max(window, 1),
        )
        engine = build_engine(config, store, targets, clock, window=window)
        marks: list[float] = []

        def progress(done: int, total: int) -> None:
            marks.append(time.perf_counter())

        started = time.perf_counter()
        summary = asyncio.run(engine.ingest("employees", extract.name, extract, progress=progress))
        elapsed = time.perf_counter() - started
        # upload span: from the first progress call (plan done) to the last acknowledgement
        upload_span = marks[-1] - marks[0] if len(marks) > 1 else elapsed
        emu.wait_idle(timeout=180)
        users = set(emu.users())
        queued = Counter(e["sourceIdentity"]["id"] for e in emu.logs())
        planned = summary.planned.get("joiners", 0)
        lost = planned - len(users)
        twice = sum(1 for n in queued.values() if n > 1)
        calls = list(emu.calls())
        return {
            "window": window,
            "records": planned,
            "state": summary.state,
            "batches": summary.batches_total,
            "elapsed": elapsed,
            "upload_span": upload_span,
            "calls_per_s": summary.batches_total / upload_span,
            "http_calls": len(calls),
            "statuses": Counter(c.status for c in calls),
            "lost": lost,
            "twice": twice,
        }


def show(label: str, r: dict[str, Any]) -> None:
    ratio = r["calls_per_s"] / CEILING
    print(f"{label} (window {r['window']}):")
    print(f"  records {r['records']} in {r['batches']} batches, state {r['state']}")
    print(f"  upload {r['upload_span']:.1f} s (whole ingest {r['elapsed']:.1f} s)")
    print(f"  useful calls/s {r['calls_per_s']:.2f} = {ratio:.3f} of the 8/s ceiling")
    print(f"  HTTP calls seen by the emulator {r['http_calls']}: {dict(r['statuses'])}")
    print(f"  records lost {r['lost']}, records queued twice {r['twice']}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--baseline", type=int, default=3_000)
    parser.add_argument("--window", type=int, default=8)
    parser.add_argument("--latency-ms", type=float, default=300.0)
    parser.add_argument("--faults", type=float, default=0.04)
    args = parser.parse_args()
    print(f"python {platform.python_version()}, latency {args.latency_ms:.0f} ms,")
    print(f"faults {args.faults:.0%}, limit 40 calls / 5 s")
    windowed = run_once(args.records, args.window, args.latency_ms, args.faults, seed=7)
    show("engine", windowed)
    single = run_once(args.baseline, 1, args.latency_ms, args.faults, seed=8)
    show("same engine, one batch in flight", single)
    print(
        f"speed-up {windowed['calls_per_s'] / single['calls_per_s']:.2f}x;"
        f" ratio {windowed['calls_per_s'] / CEILING:.3f} vs {single['calls_per_s'] / CEILING:.3f}"
    )


if __name__ == "__main__":
    main()
