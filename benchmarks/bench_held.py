"""Peak memory of a held run's view: whom a mass change would disable, what it changes.

A state holding N records already sent (a first load acknowledged: the record index,
the last payloads and the plan of the run that sent them, built in a separate process
and not measured), then the next extract with a large share of changes: 30 % movers
(new title and department, half of them a new cost centre too: 2–3 changed attributes
each) and 5 % leavers (half marked ``Inactive`` with a leave date, half removed from the
file; managers are never removed). The real engine (``build_engine`` over a local
state store) ingests it: reads and maps the file, plans the delta, and then

- ``held``: the source's default guard thresholds hold the run; the engine writes the
  held run's reports (report.json, failures.csv, report.html with its held section) and
  ``held.csv`` (every disabled record and every changed attribute of the movers);
- ``not held`` (the baseline, in the same run): the guard's limits raised; the run
  starts, its first bulk call is answered as a spent daily budget (the run waits) and
  the engine writes the same reports for a run that is not held (no held section, no
  ``held.csv``).

Each measurement is a fresh interpreter; peak RSS is the whole process's ``ru_maxrss``,
read when the reports start (planning: the plan's cost) and at the end (the whole run).
Then the run's reports are written again in another fresh interpreter (``reports
again``): the report phase's own peak, held view and ``held.csv`` included, without
planning's.
The growth per changed record is the held run's peak minus the baseline's, over the
records it changes; and between sizes, the held run's peak growth over the growth of
changed records.

Run: ``.venv/bin/python benchmarks/bench_held.py [--sizes 100000,300000,1000000]``
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import platform
import random
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

# a sibling benchmark: the same state, source mapping and target
from bench_plan_memory import (
    MAPPING,
    SP,
    CountingTarget,
    _rss_mb,
    run_child,
    run_child_state,
)

JOB = "API2AAD.5f2b9f0c1e2d4a3b8c7d6e5f4a3b2c1d.7b0e4d2a-9c8b-4a1f-8e3d-2c1b0a9f8e7d"
MOVERS = 0.30
LEAVERS = 0.05


def _config(held: bool) -> Any:
    """The benchmark's source: default guard thresholds (``held``), or limits raised."""
    from connector.config import parse_sources

    limits = (
        ""
        if held
        else """
    thresholds: {max_changes: 100000000, max_changes_percent: 100000,
                 max_leavers: 100000000, max_leavers_percent: 100}"""
    )
    return parse_sources(
        f"""
daily_call_budget: 1000000
sources:
  - name: employees
    match: employees
    mapping: {MAPPING}
    service_principal_id: {SP}
    job_id: {JOB}{limits}
"""
    )


def changed_extract(previous: Path, out: Path, seed: int = 7) -> dict[str, int]:
    """The next day's file: ``MOVERS`` of the rows move, ``LEAVERS`` leave (half marked
    inactive, half removed; a manager is only ever marked inactive)."""
    from connector.sample import DEPARTMENTS, TITLES

    rng = random.Random(f"held:{seed}")
    counts = {"movers": 0, "inactive": 0, "removed": 0}
    with previous.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        cols = next(reader)
        mgr = cols.index("ManagerId")
        managers = {row[mgr] for row in reader if row[mgr]}
    at = {c: cols.index(c) for c in ("Status", "LeaveDate", "JobTitle", "Department")}
    cc = cols.index("CostCenter")
    with (
        previous.open(encoding="utf-8", newline="") as f,
        out.open("w", encoding="utf-8", newline="") as o,
    ):
        reader, writer = csv.reader(f), csv.writer(o, lineterminator="\n")
        writer.writerow(next(reader))
        for row in reader:
            r = rng.random()
            if r < LEAVERS and row[at["Status"]] != "Inactive":
                if r < LEAVERS / 2 and row[0] not in managers:
                    counts["removed"] += 1
                    continue
                row[at["Status"]], row[at["LeaveDate"]] = "Inactive", "2026-01-06"
                counts["inactive"] += 1
            elif r < LEAVERS + MOVERS:
                title = [t for t in TITLES if t != row[at["JobTitle"]]]
                depts = [d for d in DEPARTMENTS if d[0] != row[at["Department"]]]
                dept, _, cost = rng.choice(depts)
                row[at["JobTitle"]], row[at["Department"]] = rng.choice(title), dept
                if rng.random() < 0.5:
                    row[cc] = cost
                counts["movers"] += 1
            writer.writerow(row)
    return counts


def _lines(path: str) -> tuple[int, int]:
    """Rows (without the header) and bytes of a CSV file."""
    n = size = 0
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            n += block.count(b"\r\n")
            size += len(block)
    return max(0, n - 1), size


def child(scenario: str, extract: Path, state: Path) -> dict[str, Any]:
    from connector.clock import SystemClock
    from connector.state.local import LocalStateStore
    from connector.sync.reporting import Reporter
    from connector.sync.run_keys import HELD_NAME
    from connector.sync.wiring import build_engine

    before_reports: list[float] = []
    write = Reporter.write

    def write_noting_peak(self: Reporter, journal: Any) -> dict[str, str]:
        if not before_reports:
            before_reports.append(_rss_mb())  # the peak of planning (and, not held, sending)
        return write(self, journal)

    Reporter.write = write_noting_peak  # type: ignore[method-assign]
    clock = SystemClock()
    store = LocalStateStore(state, clock=clock)
    target = CountingTarget(0)
    config = _config(held=scenario == "held")
    engine = build_engine(config, store, lambda s: target, clock)  # type: ignore[arg-type,return-value]
    started = time.perf_counter()
    summary = asyncio.run(engine.ingest("employees", extract.name, extract))
    seconds = time.perf_counter() - started
    rss = _rss_mb()
    journal = engine.runs.require("employees", summary.run_id)
    held_csv = engine.runs.report_location(journal, HELD_NAME)
    rows, size = _lines(held_csv) if held_csv and os.path.exists(held_csv) else (0, 0)
    return {
        "state": summary.state,
        "planned": summary.planned,
        "held_csv_rows": rows,
        "held_csv_bytes": size,
        "seconds": seconds,
        "rss_mb": rss,
        "before_reports_mb": before_reports[0] if before_reports else None,
    }


def rewrite_child(extract: Path, state: Path) -> dict[str, Any]:
    """The reports of the run of ``extract`` written again in a fresh process: the
    report phase's own peak (the held view, held.csv), without planning's."""
    from connector.clock import SystemClock
    from connector.state.local import LocalStateStore
    from connector.sync.wiring import build_engine

    clock = SystemClock()
    store = LocalStateStore(state, clock=clock)
    engine = build_engine(_config(held=True), store, lambda s: CountingTarget(0), clock)  # type: ignore[arg-type,return-value]
    journal = next(j for j in engine.runs.runs("employees") if j.file == extract.name)
    base = _rss_mb()
    started = time.perf_counter()
    engine.reporter.write(journal)
    return {"seconds": time.perf_counter() - started, "rss_mb": _rss_mb(), "base_mb": base}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100000,300000,1000000")
    parser.add_argument("--child", nargs=3, metavar=("SCENARIO", "EXTRACT", "STATE"))
    args = parser.parse_args()
    if args.child:
        scenario, extract, state = args.child
        run = rewrite_child if scenario == "rewrite" else partial(child, scenario)
        print(orjson.dumps(run(Path(extract), Path(state))).decode())
        return
    print(f"python {platform.python_version()}, nproc {os.cpu_count()}")
    print(
        "| records | scenario | state | changed | held.csv rows | held.csv MB | sync s |"
        " peak RSS before reports | **peak RSS, whole sync** | reports again: s |"
        " reports again: peak RSS |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for n in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory(prefix="bench-held-") as tmp:
            measure(n, Path(tmp))


def measure(n: int, base: Path) -> None:
    """Both scenarios at ``n`` records (their rows of the table), then the growth of the
    held one over the baseline per changed record."""
    from connector.sample import generate_extract

    day1 = base / "employees_20260105.csv"
    generate_extract(day1, n, seed=7)
    day2 = base / "employees_20260106.csv"
    changed_extract(day1, day2)
    peaks: dict[str, tuple[float, float]] = {}
    changed = 0
    for scenario in ("not held", "held"):
        state = base / f"state-{scenario.replace(' ', '-')}"
        run_child_state(day1, state)
        r = run_child(scenario, str(day2), str(state), script=__file__)
        again = run_child("rewrite", str(day2), str(state), script=__file__)
        planned = r["planned"]
        changed = sum(planned.get(k, 0) for k in ("joiners", "movers", "leavers"))
        peaks[scenario] = (r["rss_mb"], again["rss_mb"])
        print(
            f"| {n:,} | {scenario} | {r['state']} | {changed:,} |"
            f" {r['held_csv_rows']:,} | {r['held_csv_bytes'] / 1e6:.1f} |"
            f" {r['seconds']:.1f} | {r['before_reports_mb']:.0f} MB |"
            f" **{r['rss_mb']:.0f} MB** | {again['seconds']:.1f} | {again['rss_mb']:.0f} MB |",
            flush=True,
        )
    if changed:
        pairs = zip(peaks["held"], peaks["not held"], strict=True)
        per = [(h - b) * 1024 * 1024 / changed for h, b in pairs]
        print(
            f"| {n:,} | held − not held, per changed record | | | | | |"
            f" | **{per[0]:+.0f} bytes** | | **{per[1]:+.0f} bytes** |",
            flush=True,
        )


if __name__ == "__main__":
    main()
