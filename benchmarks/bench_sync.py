"""Sync benchmark: a 1,000,000-row full extract with 1 % churn against existing state.

Two phases, each in a fresh process so each peak RSS is its own:

1. ``setup``: build the existing state (index + payload file) for N records in a
   ``LocalStateStore``, streaming the payloads.
2. ``run``: load the index, plan the new extract (streamed: mapped records are
   generated on the fly as the extract reader would yield them), run the guard, fetch
   the leavers' last payloads, build the bulk requests, then save the index and the
   changed payloads. Prints each step's time, the peak RSS, and the number of bulkUpload
   calls against a full re-send.

Churn (1 % of N): 0.6 % movers (title change), 0.2 % joiners, 0.2 % leavers.

    .venv/bin/python benchmarks/bench_sync.py            # N = 1,000,000
    .venv/bin/python benchmarks/bench_sync.py --rows 100000
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connector.config_source import Thresholds
from connector.scim import (
    CORE_USER_SCHEMA,
    ENTERPRISE_USER_SCHEMA,
    MAX_OPERATIONS_PER_REQUEST,
    BulkOperation,
    build_bulk_requests,
    make_bulk_id,
)
from connector.state.base import RecordEntry, RecordIndex
from connector.state.local import LocalStateStore
from connector.sync.delta import attach_leaver_payloads, fingerprint, plan_delta
from connector.sync.guard import check_guard

SOURCE = "employees"
DEPARTMENTS = ["Finance", "R&D", "Sales", "Support", "Operations", "Legal", "HR", "IT"]
TITLES = ["Engineer", "Analyst", "Consultant", "Manager", "Specialist", "Technician"]


@dataclass(frozen=True, slots=True)
class Rec:
    line: int
    external_id: str
    data: dict[str, Any]


def user(i: int, *, title_shift: int = 0) -> dict[str, Any]:
    """A realistic mapped SCIM user (about 700 bytes as JSON)."""
    ext = f"E{i:07d}"
    given, family = f"Given{i % 5000}", f"Family{i % 7919}"
    return {
        "schemas": [CORE_USER_SCHEMA, ENTERPRISE_USER_SCHEMA],
        "externalId": ext,
        "userName": f"{given}.{family}.{i}@contoso.example".lower(),
        "active": True,
        "displayName": f"{given} {family}",
        "name": {"givenName": given, "familyName": family},
        "title": TITLES[(i + title_shift) % len(TITLES)],
        "userType": "Employee",
        "preferredLanguage": "en-US",
        "emails": [{"type": "work", "value": f"{given}.{family}.{i}@contoso.example".lower()}],
        "phoneNumbers": [{"type": "work", "value": f"+1 555 {i % 10000:04d}"}],
        "addresses": [{"type": "work", "locality": "Seattle", "country": "US"}],
        ENTERPRISE_USER_SCHEMA: {
            "employeeNumber": ext,
            "department": DEPARTMENTS[i % len(DEPARTMENTS)],
            "costCenter": f"CC{i % 300:03d}",
            "organization": "Contoso",
            "manager": {"value": f"E{max(0, i // 10):07d}"},
        },
    }


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def phase_setup(root: Path, rows: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    store = LocalStateStore(root)
    index = RecordIndex(source=SOURCE)

    def stream() -> Iterator[tuple[str, dict[str, Any]]]:
        for i in range(rows):
            data = user(i)
            ext = data["externalId"]
            index.entries[ext] = RecordEntry(
                fingerprint(data), True, "created", None, 1_760_000_000, "run-setup"
            )
            yield ext, data

    store.save_records(index, payloads=stream())
    return {"setup_s": time.perf_counter() - t0, "setup_peak_rss_mb": _rss_mb()}


def churn(rows: int) -> tuple[set[int], set[int], int]:
    """(movers, leavers, joiners) for 1 % churn spread over the population: per 1,000
    records, 6 movers and 2 leavers; plus 2 joiners per 1,000."""
    movers = {i for i in range(rows) if i % 1000 < 6}
    leavers = {i for i in range(rows) if i % 1000 in (500, 501)}
    return movers, leavers, rows * 2 // 1000


def phase_run(root: Path, rows: int) -> dict[str, Any]:
    store = LocalStateStore(root)
    out: dict[str, Any] = {}
    movers, leavers, n_joiners = churn(rows)

    def extract() -> Iterator[Rec]:
        line = 1
        for i in range(rows):
            if i in leavers:
                continue
            line += 1
            yield Rec(line, f"E{i:07d}", user(i, title_shift=1 if i in movers else 0))
        for j in range(n_joiners):
            line += 1
            i = rows + j
            yield Rec(line, f"E{i:07d}", user(i))

    # What generating the mapped records alone costs (the extract reader and mapping
    # would cost this and more in a real run); the plan time below includes it.
    tg = time.perf_counter()
    for _ in extract():
        pass
    out["generate_s"] = time.perf_counter() - tg

    t0 = time.perf_counter()
    index = store.load_records(SOURCE)
    t1 = time.perf_counter()
    out["load_s"] = t1 - t0
    out["rss_after_load_mb"] = _rss_mb()

    plan = plan_delta(extract(), index, mode="full", leaver_policy="disable")
    t2 = time.perf_counter()
    out["plan_s"] = t2 - t1

    hold = check_guard(plan, index.active_count(), plan.rows, Thresholds())
    out["guard"] = hold.message if hold else "passed"

    payloads = store.get_payloads(SOURCE, plan.leaver_ids)
    plan = attach_leaver_payloads(plan, payloads)
    t3 = time.perf_counter()
    out["leaver_payloads_s"] = t3 - t2

    def ops(changes: list[Any]) -> Iterator[BulkOperation]:
        for c in changes:
            yield BulkOperation(make_bulk_id(c.external_id, c.line), c.external_id, c.data)

    change_calls = sum(1 for _ in build_bulk_requests(ops(plan.changes)))
    leaver_calls = sum(1 for _ in build_bulk_requests(ops(plan.leavers)))
    t4 = time.perf_counter()
    out["build_requests_s"] = t4 - t3

    # Every sent record accepted: advance the index and store the new payloads.
    sent = {}
    for c in plan.to_send:
        index.entries[c.external_id] = RecordEntry(
            c.fingerprint, c.active, "sent", None, 1_760_086_400, "run-bench"
        )
        sent[c.external_id] = c.data
    store.save_records(index, payloads=sent)
    t5 = time.perf_counter()
    out["save_s"] = t5 - t4
    out["total_s"] = t5 - t0
    out["peak_rss_mb"] = _rss_mb()

    changed = plan.joiners + plan.movers
    n_leavers = len(plan.leavers)
    expected = math.ceil(changed / MAX_OPERATIONS_PER_REQUEST) + math.ceil(
        n_leavers / MAX_OPERATIONS_PER_REQUEST
    )
    full = math.ceil(plan.rows / MAX_OPERATIONS_PER_REQUEST)
    out.update(
        rows_in_file=plan.rows,
        joiners=plan.joiners,
        movers=plan.movers,
        leavers=n_leavers,
        unchanged=plan.unchanged,
        bulk_calls=change_calls + leaver_calls,
        expected_calls=expected,
        full_resend_calls=full,
        ratio=full / max(1, change_calls + leaver_calls),
    )
    if change_calls + leaver_calls != expected:
        raise SystemExit(f"call count {change_calls + leaver_calls} != expected {expected}")
    return out


def _child(phase: str, root: Path, rows: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--phase", phase, "--root", str(root), "--rows", str(rows)]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--phase", choices=["setup", "run"])
    parser.add_argument("--root", type=Path)
    args = parser.parse_args()
    if args.phase == "setup":
        print(json.dumps(phase_setup(args.root, args.rows)))
        return
    if args.phase == "run":
        print(json.dumps(phase_run(args.root, args.rows)))
        return

    with tempfile.TemporaryDirectory(prefix="bench-sync-") as tmp:
        root = Path(tmp)
        setup = _child("setup", root, args.rows)
        files = sorted((root / "records" / SOURCE).glob("*.gz"))
        sizes = {f.name.split("-")[0]: f.stat().st_size / 2**20 for f in files}
        run = _child("run", root, args.rows)

    print(f"rows in existing state    {args.rows:>12,}")
    print(
        f"setup (build state)       {setup['setup_s']:>11.2f} s"
        f"   peak RSS {setup['setup_peak_rss_mb']:,.0f} MB"
    )
    print(
        f"state on disk             index {sizes.get('index', 0):.1f} MB,"
        f" payloads {sizes.get('payloads', 0):.1f} MB (gzip)"
    )
    print(f"rows in new extract       {run['rows_in_file']:>12,}")
    print(
        f"joiners / movers / leavers / unchanged  {run['joiners']:,} / {run['movers']:,} /"
        f" {run['leavers']:,} / {run['unchanged']:,}"
    )
    print(
        f"load index                {run['load_s']:>11.2f} s"
        f"   RSS after load {run['rss_after_load_mb']:,.0f} MB"
    )
    print(
        f"plan (fingerprint + diff) {run['plan_s']:>11.2f} s"
        f"   of which generating the mapped records {run['generate_s']:.2f} s"
    )
    print(f"leavers' payloads         {run['leaver_payloads_s']:>11.2f} s")
    print(f"build bulk requests       {run['build_requests_s']:>11.2f} s")
    print(f"save index + payloads     {run['save_s']:>11.2f} s")
    print(f"load + plan + save total  {run['total_s']:>11.2f} s")
    print(f"peak RSS (run)            {run['peak_rss_mb']:>11,.0f} MB")
    print(f"guard                     {run['guard']}")
    print(
        f"bulk calls (delta)        {run['bulk_calls']:>12,}"
        f"   = ceil(changed/50) + ceil(leavers/50) = {run['expected_calls']:,}"
    )
    print(f"bulk calls (full resend)  {run['full_resend_calls']:>12,}")
    print(f"ratio full / delta        {run['ratio']:>11.1f} x")
    if run["peak_rss_mb"] >= 1024:
        raise SystemExit("peak RSS is over 1 GB")


if __name__ == "__main__":
    main()
