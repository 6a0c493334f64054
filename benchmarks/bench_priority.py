"""The priority order of a run that needs more than a day's call budget: what it costs.

A first load of N records (5 % inactive, a manager tree of fan-out 6, so 8 manager-chain
levels at a million) is planned managers first, as :func:`connector.sync.plans.order_plan`
stores it. Before the run's first batch the sender works out its batches from the plan (their
bounds, levels and members: the baseline, done for every run); a run that does not fit
into today's budget also puts the plan into priority order and stores it again
(``priority``: the keys read a row at a time, the permutation, the reordered compact
plan, its batches and the encoded plan the store writes, counted, not kept).

``barriers``: what each send of a run in priority order does in addition, every day it
sends: each batch's lowest group (the keys read again) and the barrier between groups
added to the send window's waits (:func:`connector.sync.priority.with_group_barriers`),
timed against the waits alone (``PlanOps.batch_deps``, done for every run) in the same
process, on the plan already in priority order.

Each mode and size runs in a fresh interpreter, so the peak RSS (``ru_maxrss``) is that
of the whole process for that work alone; both modes start from the same generated plan.

Run: ``.venv/bin/python benchmarks/bench_priority.py [--sizes 100000 1000000]``
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from typing import Any

from connector.scim import CORE_USER_SCHEMA, ENTERPRISE_USER_SCHEMA
from connector.sync.op_table import OpTable
from connector.sync.plans import PlanOps, write_plan_to
from connector.sync.priority import (
    PlanKeys,
    group_barriers,
    group_counts,
    priority_order,
    priority_text,
    with_group_barriers,
)

FANOUT = 6


def _level(i: int) -> int:
    level = 0
    while i:
        i = (i - 1) // FANOUT
        level += 1
    return level


def make_plan(n: int) -> PlanOps:
    """A first load, managers first (level order), as the planner stores it: the compact
    plan (columns, payloads spooled to a temporary file)."""
    table = OpTable()
    for i in sorted(range(n), key=_level):
        ext = f"E{i:07}"
        manager = f"E{(i - 1) // FANOUT:07}" if i else None
        data: dict[str, Any] = {
            "schemas": [CORE_USER_SCHEMA, ENTERPRISE_USER_SCHEMA],
            "externalId": ext,
            "userName": f"user{i}@contoso.example",
            "name": {"givenName": f"Given{i}", "familyName": f"Family{i}"},
            "displayName": f"Given{i} Family{i}",
            "title": "Engineer",
            "department": f"Dept {i % 40}",
            "active": i % 20 != 7,
        }
        if manager is not None:
            data[ENTERPRISE_USER_SCHEMA] = {"manager": {"value": manager}}
        fp = i.to_bytes(16, "big")
        level = _level(i)
        table.add(
            "joiner",
            ext,
            i + 2,
            fp,
            bool(data["active"]),
            data,
            level=level,
            manager=manager if level else None,
        )
    return PlanOps(table)


class _Counting:
    """A sink that counts the bytes of the stored plan (what the store would write)."""

    def __init__(self) -> None:
        self.n = 0

    def write(self, b: bytes) -> int:
        self.n += len(b)
        return len(b)

    def flush(self) -> None:
        return None


def run_barriers(n: int) -> dict[str, Any]:
    """The waits of a plan in priority order: alone, then with the barrier between groups."""
    ops = make_plan(n)
    ops = PlanOps(ops.table.take(priority_order(PlanKeys(ops.table))))
    ops.bounds()
    start = time.perf_counter()
    deps = ops.batch_deps()
    waits = time.perf_counter() - start
    start = time.perf_counter()
    lowest = group_barriers(PlanKeys(ops.table), ops.bounds())
    barred = with_group_barriers(deps, lowest)
    barrier = time.perf_counter() - start
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "mode": "barriers",
        "records": n,
        "batches": len(barred),
        "seconds": round(waits + barrier, 2),
        "peak_rss_mb": round(rss_mb),
        "plan_bytes": 0,
        "text": f"waits alone {waits:.2f} s, the barrier {barrier:.2f} s more;"
        f" longest wait list {max(map(len, barred), default=0):,} batches",
    }


def run_one(mode: str, n: int) -> dict[str, Any]:
    if mode == "barriers":
        return run_barriers(n)
    ops = make_plan(n)
    start = time.perf_counter()
    text = ""
    encoded = 0
    if mode == "priority":
        keys = PlanKeys(ops.table)
        order = priority_order(keys)
        text = priority_text(group_counts(keys))
        ops = PlanOps(ops.table.take(order))
        sink = _Counting()
        write_plan_to(sink, ops)  # type: ignore[arg-type]
        encoded = sink.n
    levels = ops.batch_levels()
    members = ops.members()
    seconds = time.perf_counter() - start
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "mode": mode,
        "records": n,
        "batches": len(levels) if len(levels) == len(members) else -1,
        "seconds": round(seconds, 2),
        "peak_rss_mb": round(rss_mb),
        "plan_bytes": encoded,
        "text": text,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--one", nargs=2, metavar=("MODE", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one[0], int(args.one[1]))))
        return
    print(f"python {platform.python_version()}, {platform.machine()}")
    print(f"{'records':>10} {'mode':>9} {'batches':>8} {'seconds':>8} {'peak RSS':>9}")
    for n in args.sizes:
        for mode in ("baseline", "priority", "barriers"):
            out = subprocess.run(
                [sys.executable, __file__, "--one", mode, str(n)],
                check=True,
                capture_output=True,
                text=True,
            )
            r = json.loads(out.stdout)
            print(
                f"{r['records']:>10,} {r['mode']:>9} {r['batches']:>8,} {r['seconds']:>8.2f}"
                f" {r['peak_rss_mb']:>6} MB"
            )
            if r["text"]:
                print(f"{'':>10} {r['text']}")


if __name__ == "__main__":
    main()
