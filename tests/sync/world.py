"""A world for engine tests: the engine over an in-memory provisioning service and the
local state store, on a fake clock."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from connector.clock import FakeClock
from connector.state.local import LocalStateStore
from connector.sync.engine import Engine
from connector.sync.summary import RunSummary
from connector.sync.wiring import build_engine
from tests.sync.fakes import FakeService, config, csv_reader, write_extract

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


class World:
    def __init__(self, tmp: Path, **thresholds: object) -> None:
        self.tmp = tmp
        self.clock = FakeClock(T0)
        self.service = FakeService(self.clock)
        self.store = LocalStateStore(tmp / "state", clock=self.clock, heartbeat=False)
        self.config = config(**thresholds)
        self.engine = self.new_engine()

    def new_engine(self, **kw: Any) -> Engine:
        return build_engine(
            self.config, self.store, self.service.target, self.clock, records=csv_reader, **kw
        )

    def sync(self, name: str, rows: list[tuple[str, ...]], **kw: object) -> RunSummary:
        path = write_extract(self.tmp / name, rows)
        return asyncio.run(self.engine.ingest("employees", name, path, **kw))  # type: ignore[arg-type]

    def reconcile(self, after: timedelta = timedelta(minutes=15)) -> list[RunSummary]:
        self.clock.advance(after.total_seconds())
        return asyncio.run(self.engine.reconcile_open_runs())
