"""A multi-day first load, end to end, with a newer full extract superseding its remainder.

**End to end** (default): a first load of N records (``connector.sample.generate_extract``,
default 100,000 = 2,000 calls) is dropped on day 1 and sent to the emulator (in this
process, on a loopback port; its daily quota = the connector's ``daily_call_budget``,
default 200 calls, so the load takes ~10 days; the 40-per-5-s limit on, latency 0; one
``FakeClock`` shared by the engine and the emulator). The engine is driven day by day as
the Functions app drives it: the timer pass (``connector.functions.timer.TimerPass``:
waiting runs resumed, open runs reconciled, the status written) and ``/api/health``
(``connector.functions.health.health_document``, the same functions the app calls; the
status kept in memory instead of a blob). On ``--newer-day`` (default 3), after that day's
budget is spent, a newer full extract of the same source arrives (``churn_extract``:
``--churn`` of the rows changed, leavers added, some rows removed, hires) and supersedes
the unsent remainder. Each day prints the calls the emulator accepted, the records they
carried and the progress line; at the end, against the emulator's own state (its log and
directory, not the connector's journals):

- day 1 is in priority order: every inactive record of the file was processed on day 1,
  with the managers the priority order sends before them, before any other record but
  those packed into the batch where the groups meet (the emulator's log, in processing
  order);
- every record of the newer file is in the directory with its newer values, its leavers
  disabled, rows removed from it disabled if they had been sent (never created if not);
- no acknowledged record is sent again unless the newer file changed it (log entries per
  externalId), and the calls accepted against the minimum worked out from the two files
  and the directory at the time the newer file arrived.

**Superseding alone** (``--supersede N``): a waiting first load of N records (default
1,000,000) that sent one day's ``--calls`` (default 2,000) to an in-process target, then a
newer N-record file (``--churn``); the newer file's ingest (plan, the guard asked again
over the remainder, superseding, the priority order, reports) is measured in a fresh
process (time, peak RSS of the whole process and where the peak was reached), against a
baseline measured in the same run: the same newer file ingested into the same state
without a waiting run (the older run discarded beforehand: the file is planned and held
by the guard). The state is built in a separate process, not measured.

Run: ``.venv/bin/python benchmarks/bench_multiday.py [--records 100000] [--budget 200]
[--newer-day 3] [--churn 0.03]`` and ``.venv/bin/python benchmarks/bench_multiday.py
--supersede 1000000 [--calls 2000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.emuworld import (  # noqa: E402
    ACTIVE_STATUSES,
    EmuWorld,
    actual_directory,
    emu_world,
    expected_directory,
    first_group,
    local_store,
    log_order,
    read_rows,
    sources_config,
)

DAY = 25 * 3600  # past the rolling 24 hours of the hour the budget was spent in
SETTLE = 15 * 60  # a timer interval: the log delay has passed, the pass reconciles
THRESHOLDS = {"max_leavers": "null"}  # the rest as shipped (10 % leavers, 25 % changes)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# -- end to end ---------------------------------------------------------------------------


class StatusZone:
    """The drop zone's status blob, in memory: what ``TimerPass`` writes and
    ``health_document`` reads (the rest of the drop zone is not used here)."""

    def __init__(self) -> None:
        self.docs: dict[tuple[str, str], Any] = {}

    def probe(self) -> bool:
        return True

    def write_json(self, container: str, blob_name: str, doc: Any) -> None:
        self.docs[(container, blob_name)] = orjson.loads(orjson.dumps(doc))

    def read_json(self, container: str, blob_name: str) -> Any | None:
        return self.docs.get((container, blob_name))


class PassHost:
    """What ``TimerPass`` runs against: the world's engine; no approvals, pulls or sweep."""

    def __init__(self, w: EmuWorld) -> None:
        from connector.functions.telemetry import Telemetry

        self.engine = w.engine
        self.telemetry = Telemetry()
        self.zone = StatusZone()
        self.clock = w.clock
        self.config = w.config

    async def process_approvals(self, busy: set[str] | None = None) -> list[Any]:
        return []

    async def check_jobs(self) -> dict[str, dict[str, Any]]:
        return {}

    async def sweep_incoming(self) -> list[Any]:
        return []

    async def pull_sources(self) -> list[Any]:
        return []


class Drive:
    """The world driven as the Functions app drives it, with the emulator's counters."""

    def __init__(self, w: EmuWorld) -> None:
        self.w = w
        self.host = PassHost(w)
        self.seen_calls = 0

    def new_loop(self) -> None:
        """A new engine (and Graph targets) for the next event loop: a target's pacing
        lock belongs to one loop, as each Functions invocation or CLI command builds its
        own (``connector.functions.wiring``)."""
        self.w.engine = self.host.engine = self.w.new_engine()

    def timer_pass(self) -> Any:
        from connector.functions.timer import TimerPass

        self.new_loop()
        out = asyncio.run(TimerPass(self.host).run())  # type: ignore[arg-type]
        self.w.emu.wait_idle(timeout=600)
        if out.errors:
            print(f"  timer pass errors: {out.errors}")
        return out

    def health(self) -> dict[str, Any]:
        from connector.functions.health import health_document

        doc: dict[str, Any] = health_document(
            self.host.zone,  # type: ignore[arg-type]
            self.w.config,
            self.w.clock,
            timedelta(hours=1),
        )
        return doc

    def calls_since_last(self) -> tuple[int, int, Counter[int]]:
        """Calls the emulator accepted since the last look, the operations they carried,
        and every answer's status."""
        calls = self.w.emu.calls()[self.seen_calls :]
        self.seen_calls += len(calls)
        ok = [c for c in calls if c.status == 202]
        return len(ok), sum(c.operations for c in ok), Counter(c.status for c in calls)


def inactive_first(rows: dict[str, dict[str, str]], logged: list[tuple[str, str]]) -> str:
    """Where the emulator processed the inactive records of day 1 (with their managers,
    which go first) against the other records."""
    inactive, managers = first_group(rows)
    group = inactive | managers
    order = [ext for ext, _ in logged]
    last = max((k for k, e in enumerate(order) if e in inactive), default=-1)
    first_other = next((k for k, e in enumerate(order) if e not in group), len(order))
    overtaking = sum(1 for e in order[: last + 1] if e not in group)
    done = sum(1 for e in set(order) if e in inactive)
    return (
        f"{len(inactive):,} inactive records (+{len(managers):,} active managers sent with"
        f" them), {done:,} processed on day 1 ({len(order):,} entries); the first other"
        f" record is entry {first_other + 1:,}, the last inactive entry {last + 1:,};"
        f" {overtaking:,} other records processed before the last inactive one"
    )


def write_newer(day1: Path, newer: Path, churn: float) -> dict[str, int]:
    from connector.sample import churn_extract

    return churn_extract(day1, newer, churn=churn, seed=11)


def end_to_end(args: argparse.Namespace) -> None:
    from connector.sample import generate_extract

    logging.getLogger("connector").setLevel(logging.ERROR)  # a waiting run logs each day
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-multiday-") as tmp:
        base = Path(tmp)
        day1 = base / "hr_20260105.csv"
        generate_extract(day1, args.records, seed=7)
        newer = base / "hr_20260107.csv"
        churn = write_newer(day1, newer, args.churn)
        emulator = {"daily_quota": args.budget}
        print(
            f"records {args.records:,}, budget {args.budget} calls/day (emulator daily quota"
            f" {args.budget}, 40 calls / 5 s on, latency 0), newer file on day"
            f" {args.newer_day}: {churn}"
        )
        with emu_world(
            local_store(base),
            emulator=emulator,
            daily_call_budget=args.budget,
            **THRESHOLDS,
        ) as w:
            result = drive_days(w, day1, newer, args)
            driven = time.perf_counter() - started
            rss = _rss_mb()
            verify(w, day1, newer, result)
    wall = time.perf_counter() - started
    print(
        f"whole run: wall {driven:.1f} s to the last reconciliation ({wall:.1f} s with the"
        f" checks); peak RSS {rss:.0f} MB to the last reconciliation, {_rss_mb():.0f} MB"
        " with the checks (the emulator, its directory and log in this process)"
    )


def drive_days(w: EmuWorld, day1: Path, newer: Path, args: argparse.Namespace) -> dict[str, Any]:
    d = Drive(w)
    print("| day | calls accepted | records sent | other answers | runs | progress (/api/health) |")
    print("|---|---|---|---|---|---|")
    result: dict[str, Any] = {}
    first = w.sync(day1)
    w.emu.wait_idle(timeout=600)
    result["send_order"] = first.send_order
    result["day1_progress"] = (first.progress or {}).get("text")
    result["priority"] = inactive_first(read_rows(day1), log_order(w.emu))
    day = 1
    while True:
        if day > 1:
            w.clock.advance(DAY - SETTLE)
            d.timer_pass()
        if day == args.newer_day:
            result["before_newer"] = _snapshot(w)
            d.new_loop()
            superseding = w.sync(newer)
            result["newer_run"] = superseding.run_id
            result["newer_state"] = superseding.state
            result["newer_planned"] = superseding.planned
            result["newer_held"] = superseding.held_reason
            w.emu.wait_idle(timeout=600)
        w.clock.advance(SETTLE)
        d.timer_pass()
        calls, ops, answers = d.calls_since_last()
        health = d.health()
        runs = ", ".join(
            f"{r.run_id[-6:]} {r.state}{' (' + r.waiting_reason + ')' if r.waiting_reason else ''}"
            for r in w.engine.list_runs()
            if r.state not in ("done", "superseded")
        )
        other = ", ".join(f"{k}: {v}" for k, v in sorted(answers.items()) if k != 202) or "-"
        line = "; ".join(health["multiDayRuns"]) or "-"
        print(f"| {day} | {calls:,} | {ops:,} | {other} | {runs or '-'} | {line} |", flush=True)
        if health["status"] != "ok":
            print(f"  health: {health['status']}: {health['problems']}")
        if not [r for r in w.engine.list_runs() if r.state in ("uploading", "held")]:
            break
        day += 1
        if day > args.max_days:
            raise SystemExit(f"not finished after {args.max_days} days")
    result["days"] = day
    for _ in range(12):  # reconciliation passes until every run is done
        if all(r.state in ("done", "superseded", "discarded") for r in w.engine.list_runs()):
            break
        w.clock.advance(3600)
        d.timer_pass()
    calls, ops, answers = d.calls_since_last()
    result["late_calls"] = calls
    return result


def _snapshot(w: EmuWorld) -> dict[str, Any]:
    """The directory and the calls accepted when the newer file arrives."""
    accepted = sum(1 for c in w.emu.calls() if c.status == 202)
    return {"users": actual_directory(w.emu), "calls": accepted}


def verify(w: EmuWorld, day1: Path, newer: Path, result: dict[str, Any]) -> None:
    old_rows, new_rows = read_rows(day1), read_rows(newer)
    before = result["before_newer"]
    acked: dict[str, dict[str, Any]] = before["users"]
    actual = actual_directory(w.emu)
    expected = expected_directory([day1, newer])
    missing = [e for e in new_rows if e not in actual]
    wrong = [e for e in new_rows if e in actual and actual[e] != expected[e]]
    removed = set(old_rows) - set(new_rows)
    removed_enabled = [e for e in removed if e in actual and actual[e]["accountEnabled"]]
    removed_created_late = [e for e in removed if e in actual and e not in acked]
    leavers = [e for e, r in new_rows.items() if r["Status"] not in ACTIVE_STATUSES]
    leavers_enabled = [e for e in leavers if actual.get(e, {}).get("accountEnabled")]
    entries = Counter(ext for ext, _ in log_order(w.emu))
    unchanged_acked = [e for e in acked if e in new_rows and old_rows.get(e) == new_rows[e]]
    resent = [e for e in unchanged_acked if entries[e] > 1]
    changed = {e for e in new_rows if e not in acked or old_rows.get(e) != new_rows[e]}
    disable = {e for e in removed if e in acked and acked[e]["accountEnabled"]}
    accepted = sum(1 for c in w.emu.calls() if c.status == 202)
    minimum = before["calls"] + math.ceil((len(changed) + len(disable)) / 50)
    runs = w.engine.list_runs()
    refs = [r for r in runs if r.run_id.split("-")[-1].startswith("refs")]
    print(f"order on day 1: {result['send_order']}")
    print(f"  emulator's log: {result['priority']}")
    print(f"progress on day 1 (run summary): {result['day1_progress']}")
    print(
        f"newer file, run {result['newer_run']}: {result['newer_state']},"
        f" planned {result['newer_planned']}"
        + (f", held: {result['newer_held']}" if result["newer_held"] else "")
    )
    for r in runs:
        print(f"  run {r.run_id}: {r.state}, {r.batches_done:,} batches, outcomes {r.outcomes}")
    for r in runs:
        j = w.engine.get_run(r.run_id)
        for e in j.timeline:
            if "guard asked again" in e.detail or "superseded" in e.detail:
                print(f"  {r.run_id[-6:]}: {e.detail}")
    print(
        f"directory: {len(new_rows):,} records of the newer file, {len(missing):,} missing,"
        f" {len(wrong):,} with other values; {len(leavers):,} leavers, {len(leavers_enabled):,}"
        f" still enabled; {len(removed):,} rows removed, {len(removed_enabled):,} still"
        f" enabled, {len(removed_created_late):,} created after the newer file arrived"
    )
    print(
        f"re-sent: {len(resent):,} of {len(unchanged_acked):,} records acknowledged before"
        f" the newer file and unchanged by it; reference re-send runs: {len(refs)}"
        f" ({sum(r.batches_done for r in refs)} calls)"
    )
    print(
        f"calls accepted: {accepted:,} (after the last send day: {result['late_calls']});"
        f" minimum {minimum:,} = {before['calls']:,} before the newer file +"
        f" ceil(({len(changed):,} new or changed + {len(disable):,} to disable) / 50);"
        f" days {result['days']}"
    )


# -- superseding alone --------------------------------------------------------------------


def _engine(state: Path, budget: int, calls: int) -> Any:
    """The engine over a local state store; ``budget``: the daily call budget; ``calls``:
    the calls the in-process target accepts before it answers as a spent quota does."""
    from bench_plan_memory import CountingTarget

    from connector.clock import SystemClock
    from connector.state.local import LocalStateStore
    from connector.sync.wiring import build_engine

    config = sources_config(daily_call_budget=budget, **THRESHOLDS)
    clock = SystemClock()
    store = LocalStateStore(state, clock=clock)
    target = CountingTarget(calls)
    return build_engine(config, store, lambda s: target, clock), target  # type: ignore[arg-type,return-value]


def child_setup(extract: Path, state: Path, calls: int) -> dict[str, Any]:
    engine, target = _engine(state, calls, calls)
    started = time.perf_counter()
    s = asyncio.run(engine.ingest("employees", extract.name, extract))
    return {
        "run": s.run_id,
        "state": s.state,
        "waiting": s.waiting_reason,
        "batches": s.batches_total,
        "done": s.batches_done,
        "calls": target.made,
        "seconds": time.perf_counter() - started,
        "rss_mb": _rss_mb(),
    }


def child_discard(state: Path, budget: int, run_id: str) -> dict[str, Any]:
    engine, _ = _engine(state, budget, 0)
    s = engine.discard(run_id, reason="baseline: no waiting run")
    return {"state": s.state}


def child_ingest(extract: Path, state: Path, budget: int) -> dict[str, Any]:
    """The newer file's ingest, with the peak RSS noted where each step starts and ends."""
    from connector.sync.reporting import Reporter
    from connector.sync.sending import Sender
    from connector.sync.turns import Turns

    phases: dict[str, Any] = {}

    def noting(name: str, fn: Any, is_async: bool = False) -> Any:
        def before() -> float:
            phases.setdefault(f"{name} from", _rss_mb())
            phases.setdefault(f"{name} s", 0.0)
            return time.perf_counter()

        def after(t: float) -> None:
            phases[f"{name} s"] += time.perf_counter() - t
            phases[f"{name} to"] = _rss_mb()

        if is_async:

            async def wrapped_async(*a: Any, **kw: Any) -> Any:
                t = before()
                try:
                    return await fn(*a, **kw)
                finally:
                    after(t)

            return wrapped_async

        def wrapped(*a: Any, **kw: Any) -> Any:
            t = before()
            try:
                return fn(*a, **kw)
            finally:
                after(t)

        return wrapped

    Turns.decide = noting("decide", Turns.decide, True)  # type: ignore[method-assign]
    Turns.guard_over_remainder = noting("remainder guard", Turns.guard_over_remainder)  # type: ignore[method-assign]
    Turns.stop = noting("supersede older", Turns.stop)  # type: ignore[method-assign]
    Sender.upload = noting("upload", Sender.upload, True)  # type: ignore[method-assign]
    Reporter.write = noting("reports", Reporter.write)  # type: ignore[method-assign]
    engine, target = _engine(state, budget, 0)
    started = time.perf_counter()
    s = asyncio.run(engine.ingest("employees", extract.name, extract))
    seconds = time.perf_counter() - started
    timeline = [e.detail for e in engine.get_run(s.run_id).timeline]
    return {
        "state": s.state,
        "waiting": s.waiting_reason,
        "held": (s.held_reason or "")[:120],
        "planned": s.planned,
        "calls": target.made,
        "guard": [t for t in timeline if "guard asked again" in t],
        "seconds": seconds,
        "rss_mb": _rss_mb(),
        "phases": phases,
    }


def run_child(*args: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True)
    if out.returncode:
        raise SystemExit(f"child {args} failed:\n{out.stderr.decode()[-3000:]}")
    result: dict[str, Any] = orjson.loads(out.stdout.splitlines()[-1])
    return result


def supersede(args: argparse.Namespace) -> None:
    from connector.sample import generate_extract

    n = args.supersede
    with tempfile.TemporaryDirectory(prefix="bench-supersede-") as tmp:
        base = Path(tmp)
        day1 = base / "hr_20260105.csv"
        generate_extract(day1, n, seed=7)
        newer = base / "hr_20260107.csv"
        churn = write_newer(day1, newer, args.churn)
        state = base / "state"
        setup = run_child("setup", str(day1), str(state), str(args.calls))
        print(f"waiting first load (setup, not measured): {setup}")
        plain = base / "state-no-waiting-run"
        shutil.copytree(state, plain)
        discarded = run_child("discard", str(plain), str(args.calls), setup["run"])
        print(f"baseline state: older run discarded, {discarded}")
        print(f"newer file: {n:,} rows, {churn}; load {_load()}")
        print("| ingest of the newer file | state | s | peak RSS | where the peak grew |")
        print("|---|---|---|---|---|")
        for name, where in (("baseline: no waiting run", plain), ("superseding", state)):
            r = run_child("ingest", str(newer), str(where), str(args.calls))
            steps = _steps(r["phases"])
            state_text = r["state"] + (f" ({r['waiting']})" if r["waiting"] else "")
            print(
                f"| {name} | {state_text} | {r['seconds']:.1f} | {r['rss_mb']:.0f} MB | {steps} |",
                flush=True,
            )
            print(f"  planned {r['planned']}; calls {r['calls']}; held: {r['held'] or '-'}")
            for g in r["guard"]:
                print(f"  {g}")
        print(f"load {_load()}")


def _steps(phases: dict[str, Any]) -> str:
    names = [k[: -len(" s")] for k in phases if k.endswith(" s")]
    return "; ".join(
        f"{k}: {phases[k + ' from']:.0f}→{phases[k + ' to']:.0f} MB, {phases[k + ' s']:.1f} s"
        for k in names
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--budget", type=int, default=200, help="calls a day")
    parser.add_argument("--newer-day", type=int, default=3)
    parser.add_argument("--churn", type=float, default=0.03)
    parser.add_argument("--max-days", type=int, default=30)
    parser.add_argument("--supersede", type=int, metavar="N", help="superseding alone at N")
    parser.add_argument("--calls", type=int, default=2000, help="calls the older run made")
    parser.add_argument("--child", nargs="+")
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "setup":
            result = child_setup(Path(rest[0]), Path(rest[1]), int(rest[2]))
        elif kind == "discard":
            result = child_discard(Path(rest[0]), int(rest[1]), rest[2])
        else:
            result = child_ingest(Path(rest[0]), Path(rest[1]), int(rest[2]))
        print(orjson.dumps(result).decode())
        return
    print(f"python {platform.python_version()}, nproc {os.cpu_count()}, load {_load()}")
    if args.supersede:
        supersede(args)
    else:
        end_to_end(args)


if __name__ == "__main__":
    main()
