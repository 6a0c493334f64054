"""An engine wired to the local emulator over loopback, sharing one FakeClock, and the
directory an applied sequence of full extracts should leave (from the CSV alone).

Shared by the tests (``tests/sync``, ``tests/cli``, ...) and the benchmarks that drive the
engine against the emulator (``bench_multiday``, the fault campaign).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from connector.clock import FakeClock
from connector.config import SourcesConfig, parse_sources
from connector.emulator.config import EmulatorConfig, JobConfig
from connector.emulator.server import RunningEmulator, run_emulator
from connector.graph.auth import StaticTokenProvider
from connector.state.local import LocalStateStore
from connector.state.store import StateStore
from connector.sync.engine import Engine
from connector.sync.summary import RunSummary
from connector.sync.targets import graph_targets
from connector.sync.wiring import build_engine

ROOT = Path(__file__).resolve().parents[1]
MAPPING = ROOT / "samples" / "mappings" / "default.yaml"
SP = "6a1c3f0e-1d2b-4c5d-8e9f-0a1b2c3d4e5f"
JOB = "API2AAD.5f2b9f0c1e2d4a3b8c7d6e5f4a3b2c1d.7b0e4d2a-9c8b-4a1f-8e3d-2c1b0a9f8e7d"
T0 = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)


def sources_config(daily_call_budget: int = 2000, **thresholds: Any) -> SourcesConfig:
    th = "".join(f"\n      {k}: {v}" for k, v in thresholds.items())
    return parse_sources(
        f"""
daily_call_budget: {daily_call_budget}
reconciliation: {{deadline: 2h, skew: 5m}}
sources:
  - name: employees
    match: employees/
    mapping: {MAPPING}
    service_principal_id: {SP}
    job_id: {JOB}
    extract_timestamp: {{pattern: '_(?P<ts>\\d{{8}})\\.csv$', format: '%Y%m%d'}}
    thresholds:{th or " {}"}
"""
    )


def local_store(tmp: Path) -> Callable[[FakeClock], StateStore]:
    """A local state store under ``tmp/state`` on the world's clock (no heartbeat thread)."""
    return lambda clock: LocalStateStore(tmp / "state", clock=clock, heartbeat=False)


class EmuWorld:
    def __init__(
        self, emu: RunningEmulator, clock: FakeClock, store: StateStore, config: SourcesConfig
    ) -> None:
        self.emu = emu
        self.clock = clock
        self.store = store
        self.config = config
        self.engine = self.new_engine()

    def new_engine(self) -> Engine:
        targets = graph_targets(
            self.config,
            self.store,
            StaticTokenProvider(self.emu.token),
            self.clock,
            allow_loopback=True,
            endpoint_for=lambda src: self.emu.endpoint_url,
        )
        return build_engine(self.config, self.store, targets, self.clock)

    def sync(self, path: Path, **kw: Any) -> RunSummary:
        out = asyncio.run(self.engine.ingest("employees", path.name, path, **kw))
        self.emu.wait_idle()
        return out

    def reconcile(self, after: timedelta = timedelta(minutes=15)) -> list[RunSummary]:
        self.clock.advance(after.total_seconds())
        return asyncio.run(self.engine.reconcile_open_runs())


@contextlib.contextmanager
def emu_world(
    store_factory: Any,
    *,
    emulator: dict[str, Any] | None = None,
    daily_call_budget: int = 2000,
    **thresholds: Any,
) -> Iterator[EmuWorld]:
    clock = FakeClock(T0)
    cfg = EmulatorConfig(
        jobs=[JobConfig(service_principal_id=SP, job_id=JOB)],
        log_delay_seconds=360,
        **(emulator or {}),
    )
    with run_emulator(cfg, clock=clock) as emu:
        config = sources_config(daily_call_budget, **thresholds)
        yield EmuWorld(emu, clock, store_factory(clock), config)


ACTIVE_STATUSES = ("Active", "On leave")
"""The sample extract's statuses the default mapping sends as ``active``."""


def log_order(emu: RunningEmulator) -> list[tuple[str, str]]:
    """(externalId, action) of every provisioning log entry, in processing order."""

    async def snap() -> list[tuple[str, str]]:
        return [(e.source_id, e.action) for e in emu.state.logs]

    return emu.call(snap(), timeout=300)


def first_group(rows: dict[str, dict[str, str]]) -> tuple[set[str], set[str]]:
    """The inactive records of a first load, and the active records the priority order
    sends with them: their managers, and those managers' managers (managers first)."""
    inactive = {ext for ext, r in rows.items() if r["Status"] not in ACTIVE_STATUSES}
    managers: set[str] = set()
    frontier = inactive
    while frontier:
        up = {rows[e]["ManagerId"] for e in frontier if rows[e]["ManagerId"] in rows}
        frontier = {m for m in up if m not in inactive and m not in managers}
        managers |= frontier
    return inactive, managers


def read_rows(path: Path) -> dict[str, dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return {r["EmployeeId"]: r for r in csv.DictReader(fh)}


def expected_directory(extracts: list[Path]) -> dict[str, dict[str, Any]]:
    """What Entra should hold after applying full extracts in order, from the CSV alone."""
    out: dict[str, dict[str, Any]] = {}
    for path in extracts:
        rows = read_rows(path)
        for ext, user in out.items():
            if ext not in rows:
                user["accountEnabled"] = False
        for ext, r in rows.items():
            out[ext] = {
                "userPrincipalName": r["WorkEmail"].lower(),
                "jobTitle": r["JobTitle"] or None,
                "department": r["Department"] or None,
                "accountEnabled": r["Status"] in ACTIVE_STATUSES,
                "manager": r["ManagerId"] or None,
            }
    return out


def actual_directory(emu: RunningEmulator) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for ext, u in emu.users().items():
        a = u["attributes"]
        out[ext] = {
            "userPrincipalName": a.get("userPrincipalName"),
            "jobTitle": a.get("jobTitle"),
            "department": a.get("department"),
            "accountEnabled": u["accountEnabled"],
            "manager": u["manager"] or u["pendingManager"],
        }
    return out
