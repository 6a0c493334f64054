"""Peak memory of the sync engine's plan: first load, full re-send and a 1 % churn day.

Each measurement runs in a fresh interpreter, so its peak RSS (``ru_maxrss`` of the whole
process) is its own. The engine is the real one (``build_engine`` over a local state
store): ``Engine.ingest`` reads and maps the extract, plans the delta against the record
index, stores the plan and its batches, sends through the window to an in-process target
that accepts every request (no HTTP, no pacing) until a day's calls are spent (then it
answers as a spent daily budget does and the run waits), folds the acknowledged batches
into the record index and writes the run's reports. Two figures per run: the peak RSS
when the reports start (planning, sending and indexing) and the peak of the whole run
(reports included: they hold one row per planned record).

Scenarios (``N`` records):

- ``first``: an empty state, an extract of N joiners;
- ``resend``: a state holding the N records, the same extract again with ``full_resend``;
- ``churn``: a state holding the N records, the next day's extract with 1 % churn.

Baseline, measured in the same run: ``input`` reads and maps the same extract through
the engine's record reader and does nothing else (the floor of any sync of the file).
The state for ``resend`` and ``churn`` (record index, last payloads and the plan of the run
that sent them) is built in a separate process (not measured).

``--reads``: planning alone (``Planner.compute`` of a first load: read, map, delta) of the
extract as generated, the same fully quoted, and with one id repeated, each with the
engine's one read (ids counted in the data pass, the file read again only on a repeat)
and, as the baseline in the same run, the id column read first (the earlier reader, kept
selectable here only), in turns; CPU time and peak RSS per fresh process.

Run: ``.venv/bin/python benchmarks/bench_plan_memory.py [--sizes 100000,300000,1000000]
[--scenarios first,resend,churn] [--calls 6000] [--reads [--rounds 3]]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
MAPPING = ROOT / "samples" / "mappings" / "default.yaml"
SP = "6a1c3f0e-1d2b-4c5d-8e9f-0a1b2c3d4e5f"
SEED_RUN = "employees-seed"
JOB = "API2AAD.5f2b9f0c1e2d4a3b8c7d6e5f4a3b2c1d.7b0e4d2a-9c8b-4a1f-8e3d-2c1b0a9f8e7d"


def _config(budget: int = 1_000_000) -> Any:
    """The benchmark's source; ``budget``: the daily call budget (a run needing more is
    sent in priority order, as a real multi-day first load is)."""
    from connector.config import parse_sources

    return parse_sources(
        f"""
daily_call_budget: {budget}
sources:
  - name: employees
    match: employees
    mapping: {MAPPING}
    service_principal_id: {SP}
    job_id: {JOB}
    thresholds: {{max_changes: 100000000, max_changes_percent: 100000,
                  max_leavers: 100000000, max_leavers_percent: 100}}
"""
    )


class CountingTarget:
    """Accepts every bulk request until ``calls`` were made, then answers as a spent daily
    budget does (the run waits for the next day)."""

    def __init__(self, calls: int) -> None:
        self.calls = calls
        self.made = 0
        self.records = 0

    @property
    def job_id(self) -> str | None:
        return JOB

    async def send(self, payload: Any) -> Any:
        from connector.errors import QuotaExhaustedError
        from connector.sync.targets import BatchReceipt

        if self.made >= self.calls:
            raise QuotaExhaustedError("daily call budget spent (benchmark)")
        self.made += 1
        self.records += len(payload)
        return BatchReceipt(request_id=f"req-{self.made}")

    async def iter_logs(self, since: datetime) -> AsyncIterator[dict[str, Any]]:
        return
        yield {}

    async def get_job(self) -> dict[str, Any]:
        return {"id": JOB, "status": {"code": "Active"}}

    async def aclose(self) -> None:
        return None


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(scenario: str, extract: Path, state: Path, calls: int) -> dict[str, Any]:
    from connector.clock import SystemClock
    from connector.state.local import LocalStateStore
    from connector.sync.readers import read_mapped_records
    from connector.sync.reporting import Reporter
    from connector.sync.wiring import build_engine

    config = _config(calls)
    src = config.sources[0]
    started = time.perf_counter()
    if scenario == "input":
        n = sum(1 for _ in read_mapped_records(src, extract))
        return {"records": n, "seconds": time.perf_counter() - started, "rss_mb": _rss_mb()}
    before_reports: list[float] = []
    write = Reporter.write

    def write_noting_peak(self: Reporter, journal: Any) -> dict[str, str]:
        if not before_reports:
            before_reports.append(_rss_mb())  # the peak of planning, sending, indexing
        return write(self, journal)

    Reporter.write = write_noting_peak  # type: ignore[method-assign]
    clock = SystemClock()
    store = LocalStateStore(state, clock=clock)
    target = CountingTarget(calls)
    engine = build_engine(config, store, lambda s: target, clock)  # type: ignore[arg-type,return-value]
    summary = asyncio.run(
        engine.ingest("employees", extract.name, extract, full_resend=scenario == "resend")
    )
    return {
        "state": summary.state,
        "planned": summary.planned,
        "batches": summary.batches_total,
        "priority_order": _sent_in_priority_order(engine, summary.run_id),
        "calls": target.made,
        "sent": target.records,
        "seconds": time.perf_counter() - started,
        "rss_mb": _rss_mb(),
        "before_reports_mb": before_reports[0] if before_reports else None,
    }


def plan_child(read: str, extract: Path, state: Path) -> dict[str, Any]:
    """``Planner.compute`` of ``extract`` against an empty state; ``read``: ``once`` (the
    engine's reader) or ``id-column-first`` (every row's id read before the data pass)."""
    from connector.clock import SystemClock
    from connector.mapping import load_mapping
    from connector.records import iter_records
    from connector.state.local import LocalStateStore
    from connector.sync.readers import MappedExtract
    from connector.sync.wiring import build_engine

    config = _config()
    src = config.sources[0]
    clock = SystemClock()
    store = LocalStateStore(state, clock=clock)
    engine = build_engine(config, store, lambda s: CountingTarget(0), clock)  # type: ignore[arg-type,return-value]
    if read == "id-column-first":
        mapping = load_mapping(MAPPING)
        engine.records = lambda s, path: MappedExtract(
            lambda _: iter_records(path, mapping, label=path.name)
        )
    started, cpu = time.perf_counter(), time.process_time()
    plan, rows, rejected, _ = engine.planner.compute(src, extract, full_resend=False)
    return {
        "rows": rows,
        "joiners": plan.joiners,
        "rejected": len(rejected),
        "cpu": time.process_time() - cpu,
        "seconds": time.perf_counter() - started,
        "rss_mb": _rss_mb(),
    }


def _variants(day1: Path) -> dict[str, Path]:
    """The extract as generated, fully quoted, and with its first row repeated at the end."""
    import csv

    quoted = day1.with_name("employees_quoted.csv")
    with day1.open(newline="", encoding="utf-8") as fh, quoted.open("w", newline="") as out:
        csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(csv.reader(fh))
    repeated = day1.with_name("employees_repeat.csv")
    with day1.open("rb") as fh, repeated.open("wb") as out:
        out.write(fh.readline())
        first = fh.readline()
        out.write(first)
        out.write(fh.read())
        out.write(first)
    return {"default": day1, "fully quoted": quoted, "one id repeated": repeated}


def compare_reads(sizes: list[int], rounds: int) -> None:
    """Each extract planned with either read in turns (A B A B ...), ``rounds`` times; the
    median CPU and wall time, and the largest peak RSS, per extract and read."""
    print(f"medians of {rounds} rounds, the two reads in turns")
    print("| extract | rows | read | joiners | rejected | CPU s | wall s | peak RSS |")
    print("|---|---|---|---|---|---|---|---|")
    from connector.sample import generate_extract

    reads = ("id-column-first", "once")
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="bench-plan-reads-") as tmp:
            day1 = Path(tmp) / "employees_20260105.csv"
            generate_extract(day1, n, seed=7)
            for name, extract in _variants(day1).items():
                runs: dict[str, list[dict[str, Any]]] = {read: [] for read in reads}
                for _ in range(rounds):
                    for read in reads:
                        state = str(Path(tmp) / f"s-{read}")
                        runs[read].append(run_child("plan", read, str(extract), state))
                for read in reads:
                    r = runs[read][0]
                    cpu = statistics.median(x["cpu"] for x in runs[read])
                    wall = statistics.median(x["seconds"] for x in runs[read])
                    rss = max(x["rss_mb"] for x in runs[read])
                    print(
                        f"| {name} | {n:,} | {read} | {r['joiners']:,} | {r['rejected']} |"
                        f" {cpu:.2f} | {wall:.2f} | {rss:.0f} MB |",
                        flush=True,
                    )


def _sent_in_priority_order(engine: Any, run_id: str) -> bool:
    journal = engine.runs.load("employees", run_id)
    return journal is not None and bool(journal.send_order)


def build_state(extract: Path, state: Path) -> None:
    """The state a previous run that sent every record of ``extract`` leaves: the record
    index, the last payloads and that run's plan (where reports find previous payloads)."""
    from connector.clock import SystemClock
    from connector.state.base import RecordEntry, RecordIndex
    from connector.state.local import LocalStateStore
    from connector.sync.delta import fingerprint
    from connector.sync.op_table import OpTable
    from connector.sync.plans import PlanOps, write_plan_to
    from connector.sync.readers import read_mapped_records

    config = _config()
    src = config.sources[0]
    store = LocalStateStore(state, clock=SystemClock())
    index = RecordIndex(source="employees")
    sent_at = int(time.time()) - 86_400
    seed = OpTable()

    def pairs() -> Any:
        for rec in read_mapped_records(src, extract):
            fp = fingerprint(rec.data, src.ignore_attributes)
            active = rec.data.get("active") is not False
            index.entries[rec.external_id] = RecordEntry(
                fp, active, "created", None, sent_at, SEED_RUN
            )
            seed.add("joiner", rec.external_id, rec.line, fp, active, rec.data)
            yield rec.external_id, rec.data

    store.save_records(index, payloads=pairs())
    with store.artifact_writer(f"employees/{SEED_RUN}/plan.jsonl.gz") as out:
        write_plan_to(out, PlanOps(seed))


def run_child(*args: str, script: str = __file__) -> dict[str, Any]:
    """``script --child ARGS`` in a fresh interpreter; the JSON of its last line."""
    out = subprocess.run(
        [sys.executable, script, "--child", *args], check=True, capture_output=True
    )
    result: dict[str, Any] = orjson.loads(out.stdout.splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100000,300000,1000000")
    parser.add_argument("--scenarios", default="first,resend,churn")
    parser.add_argument("--calls", type=int, default=6000, help="bulk calls of the day")
    parser.add_argument("--child", nargs=4, metavar=("SCENARIO", "EXTRACT", "STATE", "CALLS"))
    parser.add_argument("--build-state", nargs=2, metavar=("EXTRACT", "STATE"))
    parser.add_argument("--reads", action="store_true", help="one read vs id column first")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of --reads")
    args = parser.parse_args()
    if args.child:
        scenario, extract, state, calls = args.child
        if scenario == "plan":  # --child plan READ EXTRACT STATE
            result = plan_child(extract, Path(state), Path(calls))
        else:
            result = child(scenario, Path(extract), Path(state), int(calls))
        print(orjson.dumps(result).decode())
        return
    if args.build_state:
        build_state(Path(args.build_state[0]), Path(args.build_state[1]))
        print("{}")
        return
    from connector.sample import churn_extract, generate_extract

    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"python {platform.python_version()}, nproc {os.cpu_count()}")
    if args.reads:
        compare_reads(sizes, args.rounds)
        return
    scenarios = args.scenarios.split(",")
    print(f"calls/day {args.calls}")
    print(
        "| scenario | records | to send | calls | records sent | state | priority order | s |"
        " peak RSS before reports | peak RSS (whole run) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="bench-plan-") as tmp:
            base = Path(tmp)
            day1 = base / "employees_20260105.csv"
            generate_extract(day1, n, seed=7)
            day2 = base / "employees_20260106.csv"
            if "churn" in scenarios:
                churn_extract(day1, day2, churn=0.01, seed=7)
            rows = [("input", day1, None)]
            rows += [(s, day1 if s != "churn" else day2, s) for s in scenarios]
            for scenario, extract, _ in rows:
                state = base / f"state-{scenario}"
                if scenario in ("resend", "churn"):
                    run_child_state(day1, state)
                r = run_child(scenario, str(extract), str(state), str(args.calls))
                planned = r.get("planned") or {}
                to_send = sum(
                    planned.get(k, 0) for k in ("joiners", "movers", "resends", "leavers")
                )
                before = r.get("before_reports_mb")
                print(
                    f"| {scenario} | {n:,} | {to_send:,} | {r.get('calls', 0):,} |"
                    f" {r.get('sent', r.get('records', 0)):,} | {r.get('state', '-')} |"
                    f" {'yes' if r.get('priority_order') else '-'} |"
                    f" {r['seconds']:.1f} | {'-' if before is None else f'{before:.0f} MB'} |"
                    f" {r['rss_mb']:.0f} MB |",
                    flush=True,
                )


def run_child_state(extract: Path, state: Path) -> None:
    subprocess.run(
        [sys.executable, __file__, "--build-state", str(extract), str(state)],
        check=True,
        capture_output=True,
    )


if __name__ == "__main__":
    main()
