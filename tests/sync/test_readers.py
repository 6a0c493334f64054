"""Reading an extract: errors name the dropped file."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

from connector.sync.wiring import build_engine
from tests.sync.world import World


def test_reader_errors_name_the_dropped_file_not_a_spool_file(tmp_path: Path) -> None:
    from benchmarks.emuworld import sources_config

    w = World(tmp_path)
    data = b"\xff\xfe\x00garbage without a header\n"
    w.engine = build_engine(sources_config(), w.store, w.service.target, w.clock)
    run = asyncio.run(w.engine.ingest("employees", "incoming/hr_20260302.csv", io.BytesIO(data)))
    assert run.state == "failed"
    assert run.failed_reason is not None
    assert "hr_20260302.csv" in run.failed_reason
    assert "connector-extract" not in run.failed_reason
