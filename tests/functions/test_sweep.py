"""The timer's sweep of files left in ``incoming``: retried with back-off, one at a time."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest

from connector.functions import sweep
from connector.functions.dropzone import SWEEP_BLOB

from .conftest import extract_bytes

pytestmark = pytest.mark.azurite


def test_a_failing_file_does_not_block_the_sweep_and_is_retried_later(
    make_world: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sweep, "SWEEP_MAX_FILES", 1)
    with make_world() as w:
        w.drop("employees/a_broken.csv", extract_bytes(tmp_path, 10, seed=27))
        w.clock.advance(60)
        w.drop("employees/b_good.csv", extract_bytes(tmp_path, 10, seed=28))
        real_ingest = w.runtime.engine.ingest
        calls: list[str] = []

        async def ingest(source: str, name: str, *args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            if name.endswith("a_broken.csv"):
                raise RuntimeError("storage hiccup that never goes away")
            return await real_ingest(source, name, *args, **kwargs)

        w.runtime.engine.ingest = ingest  # type: ignore[method-assign]
        w.tick(minutes=15)  # the oldest file fails
        assert calls == ["employees/a_broken.csv"]
        record = orjson.loads(w.read(*SWEEP_BLOB))["failures"]["employees/a_broken.csv"]
        assert record["failures"] == 1
        assert record["error"] == "RuntimeError"

        w.tick(minutes=1)  # it is left alone for a while: the next file gets its turn
        assert calls[-1] == "employees/b_good.csv"
        assert w.names("incoming") == {"employees/a_broken.csv"}

        w.tick(minutes=15)  # 15 min after its failure it is tried again
        assert calls[-1] == "employees/a_broken.csv"
        record = orjson.loads(w.read(*SWEEP_BLOB))["failures"]["employees/a_broken.csv"]
        assert record["failures"] == 2

        w.runtime.engine.ingest = real_ingest  # type: ignore[method-assign]
        w.tick(minutes=31)  # the 2nd failure waits 30 min; then it goes through
        assert w.names("incoming") == set()
        assert orjson.loads(w.read(*SWEEP_BLOB))["failures"] == {}


def test_sweep_downloads_one_file_at_a_time_within_its_time_budget(
    make_world: Any, tmp_path: Path
) -> None:
    with make_world() as w:
        for i in range(4):
            w.drop(f"employees/f{i}.csv", extract_bytes(tmp_path, 5, seed=30 + i))
        w.clock.advance(15 * 60)
        downloads: list[str] = []
        real_download = w.runtime.zone.download_incoming

        def download_incoming(name: str, folder: Path) -> Any:
            downloads.append(name)
            w.clock.advance(sweep.SWEEP_BUDGET_SECONDS / 2)  # a slow file
            return real_download(name, folder)

        w.runtime.zone.download_incoming = download_incoming  # type: ignore[method-assign]
        swept = asyncio.run(w.runtime.sweep_incoming())
        assert [o.blob for o in swept] == ["employees/f0.csv", "employees/f1.csv"]
        assert downloads == ["employees/f0.csv", "employees/f1.csv"]
        assert len(w.names("incoming")) == 2  # the rest waits for the next pass
