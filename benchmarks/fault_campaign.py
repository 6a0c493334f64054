"""Fault campaign on the Functions path: crashes, duplicate events, two instances, lost
leases and an Azurite restart, each checked against the directory.

    .venv/bin/python -m benchmarks.fault_campaign --rounds 3 --seed 1 [--rows 300]
        [--scenarios crash_ingest,lease_broken] [--duration 600]

Every scenario starts from an empty tenant and empty storage, drops two or three HR
extracts (a first load, then the next days' churn) into ``incoming/employees/`` and
drives the Functions host's function bodies (``ingest_extract``, ``reconcile`` in
``function_app.py``) in worker processes (:mod:`benchmarks.fault_campaign_worker`)
against Azurite and the emulator while faults are injected. Then timer passes run until
every run is finished, and the verdict compares:

- the emulator's directory with the extracts applied in order: **lost** counts every
  record of the last extract whose user is missing or differs (attributes, account
  state, manager), and every other record that still has an enabled account;
- the emulator's request log with the run journals: **double-applied** counts a batch
  journaled twice, a record in two acknowledged calls of one run, and any write that set
  a record back to older data; **re-sent** counts operations accepted in calls no journal
  acknowledged (in flight at a crash, or sent by a holder whose lease was gone: the
  engine sends them again, the same data, so the second copy changes nothing);
- **stuck**: runs not done/superseded/discarded after the timer passes, leases still
  held, files left in ``incoming``.

Seeded: the same seed gives the same kill points and the same extracts. Prints one row
per scenario and a total; exits 1 if anything was lost, double-applied or stuck.
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.fault_campaign_world import Verdict, Worker, WorkerResult, World  # noqa: E402

__all__ = ["SCENARIOS", "Outcome", "main", "run_campaign", "run_scenario"]


@dataclass
class Outcome:
    """One scenario in one round: faults injected and the verdict."""

    scenario: str
    round: int
    crashes: int = 0
    faults: int = 0
    seconds: float = 0.0
    verdict: Verdict = field(default_factory=Verdict)
    notes: list[str] = field(default_factory=list)


class Days:
    """A scenario's extracts: a first load, then each next day's churn (seeded)."""

    def __init__(self, workdir: Path, rows: int, seed: int) -> None:
        self.workdir, self.rows, self.seed = workdir, rows, seed
        self.made: list[Path] = []

    def next(self) -> str:
        from connector.sample import churn_extract, generate_extract

        day = FIRST_DAY + timedelta(days=len(self.made))
        path = self.workdir / f"hr_{day:%Y%m%d}.csv"  # dated, as HR exports are named
        if not self.made:
            generate_extract(path, self.rows, seed=self.seed)
        else:
            churn_extract(self.made[-1], path, churn=0.05, seed=self.seed + len(self.made))
        self.made.append(path)
        return path.name


FIRST_DAY = date(2026, 1, 5)
SLOW_MS = 1500.0
"""bulkUpload latency while a lease is broken or expires, or Azurite restarts: the holder
is still sending when the fault hits it."""

Scenario = Callable[[World, Days, random.Random, Outcome], None]


def _note(out: Outcome, what: str, result: WorkerResult) -> None:
    if result.killed:
        out.crashes += 1
    out.notes.append(f"{what}: {result.describe()}")


def _drop_next(w: World, days: Days) -> str:
    """HR drops the next day's extract."""
    name = days.next()
    w.drop(name, days.made[-1])
    return name


def _crash_then_retry(w: World, out: Outcome, name: str, kill: dict[str, int | str]) -> None:
    """A delivery killed at ``kill``; the host's retry while the dead worker's lease is
    still there; the lease lapses; the retry after that."""
    _note(out, f"deliver {name} kill={kill}", w.deliver(name, kill=kill))
    _note(out, "host retry at once", w.deliver(name))
    w.lapse_leases()
    _note(out, "host retry after the lease lapsed", w.deliver(name))


def crash_ingest(w: World, days: Days, rng: random.Random, out: Outcome) -> None:
    """SIGKILL while planning (before the first bulkUpload), then the host's retries."""
    for _ in range(2):
        name = _drop_next(w, days)
        _crash_then_retry(w, out, name, {"phase": "start", "writes": rng.randint(1, 5)})


def crash_upload(w: World, days: Days, rng: random.Random, out: Outcome) -> None:
    """SIGKILL mid-upload: after a 202 before it is journaled, or at a journal/index
    write; the blob trigger redelivered (first file), the timer (second file)."""
    batches = max(1, days.rows // 50)
    name = _drop_next(w, days)
    _crash_then_retry(w, out, name, {"phase": "send", "acks": rng.randint(1, batches)})
    name = _drop_next(w, days)
    kill = {"phase": "send", "writes": rng.randint(1, 3)}
    _note(out, f"deliver {name} kill={kill}", w.deliver(name, kill=kill))
    w.lapse_leases()
    _note(out, "timer after the lease lapsed", w.tick())


def crash_reconcile(w: World, days: Days, rng: random.Random, out: Outcome) -> None:
    """SIGKILL while the timer reconciles, then the timer firing again."""
    for _ in range(2):
        name = _drop_next(w, days)
        _note(out, f"deliver {name}", w.deliver(name))
        w.emu.wait_idle(30)
        kill = {"phase": "reconcile", "writes": rng.randint(1, 4)}
        _note(out, f"timer kill={kill}", w.tick(kill=kill))
        w.lapse_leases()
        _note(out, "timer again", w.tick())


def duplicate_event(w: World, days: Days, rng: random.Random, out: Outcome) -> None:
    """The same BlobCreated event delivered twice at once, then again after it finished."""
    for _ in range(2):
        name = _drop_next(w, days)
        first, second = w.start("ingest", name), w.start("ingest", name)
        out.faults += 1
        _note(out, f"deliver {name} (1 of 2 at once)", first.wait())
        _note(out, f"deliver {name} (2 of 2 at once)", second.wait())
        out.faults += 1
        _note(out, f"deliver {name} again", w.deliver(name))


def two_instances(w: World, days: Days, rng: random.Random, out: Outcome) -> None:
    """Two instances: two files of one source delivered at once, then two timers at once."""
    name = _drop_next(w, days)
    _note(out, f"deliver {name}", w.deliver(name))
    names = [days.next(), days.next()]
    for n, path in zip(names, days.made[-2:], strict=True):
        w.drop(n, path)
    workers = [w.start("ingest", n) for n in names]
    out.faults += 1
    for n, worker in zip(names, workers, strict=True):
        _note(out, f"deliver {n} (two instances)", worker.wait())
    w.advance(15 * 60)
    timers = [w.start("timer"), w.start("timer")]
    out.faults += 1
    for i, worker in enumerate(timers, 1):
        _note(out, f"timer on instance {i}", worker.wait())


@contextmanager
def _sending(w: World, name: str) -> Iterator[Worker]:
    """The delivery of ``name`` in a worker, once its first batch was accepted: the
    service is slow, so the holder is still sending when the fault hits it."""
    with w.slow_service(SLOW_MS):
        before = len(w.log.uploads)
        holder = w.start("ingest", name)
        w.wait_uploads(before + 1)
        yield holder


def lease_broken(w: World, days: Days, rng: random.Random, out: Outcome) -> None:
    """The holder's lease is broken while it uploads; the redelivery takes the source."""
    name = _drop_next(w, days)
    with _sending(w, name) as holder:
        out.faults += w.lapse_leases()
        taker = w.start("ingest", name)
        _note(out, "redelivery after the lease was broken", taker.wait())
        _note(out, "the holder whose lease was broken", holder.wait())


def lease_expired(w: World, days: Days, rng: random.Random, out: Outcome) -> None:
    """The holder is paused (SIGSTOP) past its lease; the timer takes the source and
    finishes the run; the holder is resumed (SIGCONT)."""
    name = _drop_next(w, days)
    with _sending(w, name) as holder:
        holder.signal(signal.SIGSTOP)
        out.faults += 1
        time.sleep(w.lease_seconds + 1.5)
    _note(out, "timer while the holder is paused", w.tick())
    sent = len(w.log.uploads)
    holder.signal(signal.SIGCONT)
    _note(out, "the paused holder, resumed", holder.wait())
    out.notes.append(f"uploads by the resumed holder: {len(w.log.uploads) - sent}")


def azurite_restart(w: World, days: Days, rng: random.Random, out: Outcome) -> None:
    """Azurite restarts (same port, same data) while a file uploads, and between a
    delivery and the timer."""
    name = _drop_next(w, days)
    with _sending(w, name) as holder:
        w.azurite.restart(down_seconds=rng.uniform(0.5, 2.0))
        out.faults += 1
        result = holder.wait()
    _note(out, "delivery across the restart", result)
    if not result.ok or "deferred" in result.describe():
        _note(out, "host retry", w.deliver(name))
    name = _drop_next(w, days)
    _note(out, f"deliver {name}", w.deliver(name))
    w.azurite.restart(down_seconds=rng.uniform(0.5, 2.0))
    out.faults += 1


SCENARIOS: dict[str, Scenario] = {
    "crash_ingest": crash_ingest,
    "crash_upload": crash_upload,
    "crash_reconcile": crash_reconcile,
    "duplicate_event": duplicate_event,
    "two_instances": two_instances,
    "lease_broken": lease_broken,
    "lease_expired": lease_expired,
    "azurite_restart": azurite_restart,
}


def run_scenario(w: World, name: str, round_: int, seed: int, rows: int) -> Outcome:
    """Reset, run the scenario, let the timer finish everything, judge."""
    out = Outcome(name, round_)
    w.reset()
    started = time.monotonic()
    rng = random.Random(f"{seed}:{round_}:{name}")
    days = Days(w.workdir, rows, rng.randint(1, 10_000))
    SCENARIOS[name](w, days, rng, out)
    out.notes.append(f"timer passes to finish: {w.settle()}")
    out.verdict = w.verdict()
    out.seconds = time.monotonic() - started
    return out


def run_campaign(
    workdir: Path,
    *,
    rounds: int,
    seed: int,
    rows: int,
    scenarios: list[str],
    duration: float | None = None,
    report: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """``rounds`` rounds of every scenario (fewer when ``duration`` seconds run out)."""
    outcomes: list[Outcome] = []
    started = time.monotonic()
    with World(workdir).running() as w:
        for r in range(1, rounds + 1):
            for name in scenarios:
                outcomes.append(run_scenario(w, name, r, seed, rows))
                if report is not None:
                    report(outcomes[-1])
            if duration is not None and time.monotonic() - started > duration:
                break
    return outcomes


HEADER = (
    f"{'scenario':<16} {'rounds':>6} {'crashes':>7} {'faults':>6} {'lost':>5}"
    f" {'double':>6} {'re-sent':>7} {'stuck':>5} {'seconds':>8}"
)


def table(outcomes: list[Outcome]) -> str:
    """One row per scenario (summed over rounds) and a total."""
    rows = [HEADER]
    groups: dict[str, list[Outcome]] = {}
    for o in outcomes:
        groups.setdefault(o.scenario, []).append(o)
    groups["total"] = outcomes
    for name, group in groups.items():
        v = [o.verdict for o in group]
        rounds = len({(o.scenario, o.round) for o in group})
        stuck = sum(x.stuck + x.leases_held + x.incoming_left for x in v)
        rows.append(
            f"{name:<16} {rounds:>6} {sum(o.crashes for o in group):>7}"
            f" {sum(o.faults for o in group):>6} {sum(x.lost for x in v):>5}"
            f" {sum(x.double_applied + x.stale for x in v):>6} {sum(x.resent for x in v):>7}"
            f" {stuck:>5} {sum(o.seconds for o in group):>8.1f}"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rows", type=int, default=300)
    parser.add_argument("--duration", type=float, help="stop after the round that passes it")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--verbose", action="store_true", help="print what each step did")
    args = parser.parse_args(argv)
    names = [s for s in args.scenarios.split(",") if s]
    unknown = [s for s in names if s not in SCENARIOS]
    if unknown:
        choose = ", ".join(SCENARIOS)
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; choose from {choose}")

    def report(o: Outcome) -> None:
        v = o.verdict
        print(
            f"round {o.round} {o.scenario}: crashes={o.crashes} faults={o.faults} lost={v.lost}"
            f" double={v.double_applied + v.stale} re-sent={v.resent} stuck={v.stuck}"
            f" leases={v.leases_held} incoming={v.incoming_left} {o.seconds:.1f}s",
            flush=True,
        )
        if args.verbose or not v.clean:
            for line in o.notes + v.problems + [f"{k}: {s}" for k, s in v.runs.items()]:
                print(f"    {line}", flush=True)

    # Stopped with SIGTERM: unwind, so Azurite and the spare worker are stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="fault-campaign-") as tmp:
        outcomes = run_campaign(
            Path(tmp),
            rounds=args.rounds,
            seed=args.seed,
            rows=args.rows,
            scenarios=names,
            duration=args.duration,
            report=report,
        )
    print()
    print(table(outcomes))
    print(f"\nwall time {time.monotonic() - started:.1f} s, seed {args.seed}, rows {args.rows}")
    return 0 if all(o.verdict.clean for o in outcomes) else 1


if __name__ == "__main__":
    raise SystemExit(main())
