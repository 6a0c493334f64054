"""An engine with one pulled source, wired to the emulator over loopback (FakeClock)."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import hashlib
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connector.clock import FakeClock
from connector.config import SourcesConfig, parse_sources
from connector.emulator.config import EmulatorConfig, JobConfig
from connector.emulator.server import RunningEmulator, run_emulator
from connector.graph.auth import StaticTokenProvider
from connector.state.local import LocalStateStore
from connector.sync.engine import Engine
from connector.sync.pulling import PullResult
from connector.sync.targets import graph_targets
from connector.sync.wiring import build_engine

ROOT = Path(__file__).resolve().parents[2]
EXTRACT = ROOT / "samples" / "hr-extract.csv"
MAPPING = ROOT / "samples" / "mappings" / "default.yaml"
SP = "6a1c3f0e-1d2b-4c5d-8e9f-0a1b2c3d4e5f"
JOB = "API2AAD.5f2b9f0c1e2d4a3b8c7d6e5f4a3b2c1d.7b0e4d2a-9c8b-4a1f-8e3d-2c1b0a9f8e7d"
T0 = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)


def sample_rows() -> tuple[list[str], list[list[str]]]:
    with EXTRACT.open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def sqlite_staging(path: Path, *, updated: bool = False) -> str:
    """The sample extract as a SQLite staging table ``employees`` (optionally with an
    ``UpdatedAt`` integer column: 1, 2, 3, … in row order); returns its SQLAlchemy URL."""
    header, body = sample_rows()
    extra = ', "UpdatedAt" INTEGER' if updated else ""
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        cols = ", ".join(f'"{c}" TEXT' for c in header)
        conn.execute(f"CREATE TABLE employees ({cols}{extra})")
        marks = ", ".join("?" for _ in range(len(header) + (1 if updated else 0)))
        conn.executemany(
            f"INSERT INTO employees VALUES ({marks})",
            [[v or None for v in r] + ([n] if updated else []) for n, r in enumerate(body, 1)],
        )
    return f"sqlite:///{path}"


def sqlite_exec(path: Path, sql: str, *args: Any) -> None:
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(sql, args)


def config_for(sql_block: str, *, mode: str = "full", thresholds: str = "{}") -> SourcesConfig:
    return parse_sources(
        f"""
sources:
  - name: hr-sql
    kind: sql
    sql: {sql_block}
    schedule: "0 0 2 * * *"
    mapping: {MAPPING}
    service_principal_id: {SP}
    job_id: {JOB}
    mode: {mode}
    thresholds: {thresholds}
"""
    )


def tree_digest(root: Path) -> dict[str, str]:
    """Every stored file under ``root`` and its content hash (locks aside)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "locks" not in p.parts
    }


class PullWorld:
    def __init__(self, emu: RunningEmulator, clock: FakeClock, state: Path, config: SourcesConfig):
        self.emu = emu
        self.clock = clock
        self.state = state
        self.config = config
        self.store = LocalStateStore(state, clock=clock, heartbeat=False)
        targets = graph_targets(
            config,
            self.store,
            StaticTokenProvider(emu.token),
            clock,
            allow_loopback=True,
            endpoint_for=lambda src: emu.endpoint_url,
        )
        self.engine: Engine = build_engine(config, self.store, targets, clock)

    def pull(self, source: str = "hr-sql", **kw: Any) -> PullResult:
        out = asyncio.run(self.engine.pull(source, **kw))
        self.emu.wait_idle()
        return out

    def reconcile(self, minutes: int = 15) -> list[Any]:
        self.clock.advance(minutes * 60)
        return list(asyncio.run(self.engine.reconcile_open_runs()))


@contextlib.contextmanager
def pull_world(tmp_path: Path, config: SourcesConfig) -> Iterator[PullWorld]:
    clock = FakeClock(T0)
    cfg = EmulatorConfig(
        jobs=[JobConfig(service_principal_id=SP, job_id=JOB)], log_delay_seconds=360
    )
    with run_emulator(cfg, clock=clock) as emu:
        yield PullWorld(emu, clock, tmp_path / "state", config)
