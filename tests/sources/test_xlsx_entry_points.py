""".xlsx extracts through every entry point: a dropped workbook stream synced end to end
against the emulator, and the CLI's validate and preview."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

from benchmarks.emuworld import MAPPING, actual_directory, emu_world, expected_directory
from connector.clock import FakeClock
from connector.state.local import LocalStateStore
from tests.cli.helpers import invoke
from tests.sources.test_xlsx import SAMPLE, _mapping_with, _sample_book


def test_a_dropped_workbook_is_synced_end_to_end_and_twice_is_a_no_op(tmp_path: Path) -> None:
    data = _sample_book(tmp_path / "hr.xlsx").read_bytes()

    def store(clock: FakeClock) -> LocalStateStore:
        return LocalStateStore(tmp_path / "state", clock=clock, heartbeat=False)

    with emu_world(store) as w:
        # As the Functions blob trigger hands it over: a stream and the blob's name.
        first = asyncio.run(
            w.engine.ingest("employees", "employees/hr_20260105.xlsx", io.BytesIO(data))
        )
        w.emu.wait_idle()
        assert first.state == "uploaded"
        assert actual_directory(w.emu) == expected_directory([SAMPLE])
        again = asyncio.run(
            w.engine.ingest("employees", "employees/hr_20260105.xlsx", io.BytesIO(data))
        )
        assert again.duplicate
        assert again.run_id == first.run_id


def test_validate_checks_a_workbook_and_names_it_in_problems(tmp_path: Path) -> None:
    book = _sample_book(tmp_path / "hr.xlsx")
    out = invoke("validate", "--mapping", str(MAPPING), str(book))
    assert "0 error(s)" in out
    assert "60 rows checked" in out
    missing = _mapping_with(tmp_path, sheet="Staff")
    out = invoke("validate", "--mapping", str(missing), str(book), code=1)
    assert f"{book}: error: no sheet named 'Staff' (sheets: 'Workers')" in out


def test_preview_of_a_workbook_writes_the_payloads_of_the_csv(tmp_path: Path) -> None:
    book = _sample_book(tmp_path / "hr.xlsx")
    invoke("preview", "--mapping", str(MAPPING), "--out", str(tmp_path / "x"), str(book))
    invoke("preview", "--mapping", str(MAPPING), "--out", str(tmp_path / "c"), str(SAMPLE))
    from_book = sorted((tmp_path / "x").glob("bulk-*.json"))
    from_csv = sorted((tmp_path / "c").glob("bulk-*.json"))
    assert [p.name for p in from_book] == [p.name for p in from_csv]
    for a, b in zip(from_book, from_csv, strict=True):
        assert json.loads(a.read_bytes()) == json.loads(b.read_bytes())
