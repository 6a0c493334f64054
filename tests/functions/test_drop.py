"""Handling a dropped file on Azurite: redelivery, a busy source, refused and repeated files.

A redelivered file whose run stopped mid-upload continues that run; a file the engine
refused is planned again when it arrives again; a file equal to an older extract is
applied as a new day's extract; a file with a repeated id is applied without the rows
that carry it. Ingest runs on a worker thread, never on the host's loop.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import function_app
from tests.sync.fakes import Crash, CrashAfter

from .conftest import extract_bytes, trigger_blob

pytestmark = pytest.mark.azurite


# -- redelivery ----------------------------------------------------------------------------------


def test_a_redelivery_resumes_its_own_run_while_another_source_is_busy(
    make_world: Any, tmp_path: Path
) -> None:
    data = extract_bytes(tmp_path, 160, seed=23)  # 4 batches
    with make_world(second=True) as w:
        inner = w.runtime.engine.targets
        counter = [0]
        w.runtime.engine.targets = lambda src: CrashAfter(inner(src), 2, counter)
        w.drop("employees/hr.csv", data)
        with pytest.raises(Crash):
            w.deliver("employees/hr.csv", data)
        w.runtime.engine.targets = inner
        with w.runtime.store.lock("contractors", owner="another-instance"):
            w.deliver("employees/hr.csv", data)  # the host retries the message
        [run] = w.runs()
        assert run.state == "uploaded"
        assert len(w.emu.users()) == 160
        assert w.names("incoming") == set()


# -- the host's event loop -----------------------------------------------------------------------


def test_an_ingest_on_a_worker_thread_does_not_block_the_event_loop(
    make_world: Any, tmp_path: Path
) -> None:
    """Like the Python worker: the loop stays free while a sync function runs in a thread."""
    data = extract_bytes(tmp_path, 40, seed=26)
    with make_world() as w:
        w.drop("employees/hr.csv", data)
        started = threading.Event()
        release = threading.Event()
        real_ingest = w.runtime.engine.ingest

        async def slow_ingest(*args: Any, **kwargs: Any) -> Any:
            started.set()
            release.wait(10)  # blocking work (planning, sync blob I/O) inside the function
            return await real_ingest(*args, **kwargs)

        w.runtime.engine.ingest = slow_ingest  # type: ignore[method-assign]
        stream = trigger_blob("employees/hr.csv")

        async def host() -> int:
            loop = asyncio.get_running_loop()
            job = loop.run_in_executor(None, function_app.ingest_extract, stream)
            await loop.run_in_executor(None, started.wait, 10)
            ticks = 0
            for _ in range(5):  # the loop keeps serving other work meanwhile
                await asyncio.sleep(0)
                ticks += 1
            release.set()
            await job
            return ticks

        assert asyncio.run(host()) == 5
        w.emu.wait_idle()
        assert w.runs()[0].state == "uploaded"


# -- files seen before ---------------------------------------------------------------------------


def test_re_dropping_a_refused_file_plans_it_again(make_world: Any, tmp_path: Path) -> None:
    """What docs/functions.md says: a run that failed before sending anything is planned
    again when the same bytes arrive again (after the mapping or config was fixed)."""
    data = extract_bytes(tmp_path, 20, seed=29)
    with make_world() as w:
        real_records = w.runtime.engine.records

        def refusing(source: Any, path: Any) -> Any:
            from connector.errors import ExtractError

            raise ExtractError("the mapping does not fit this extract")

        w.runtime.engine.records = refusing
        w.drop_and_deliver("employees/hr.csv", data)
        [failed] = w.runs()
        assert failed.state == "failed"
        assert "employees/hr.csv" in w.names("quarantine")

        w.runtime.engine.records = real_records  # the mapping was fixed
        w.drop_and_deliver("employees/hr.csv", data)
        [run] = w.runs()
        assert run.run_id == failed.run_id
        assert run.state == "uploaded"
        assert len(w.emu.users()) == 20
        assert len(w.names("archive")) == 1


def test_a_file_equal_to_an_older_one_is_applied_not_archived_as_a_duplicate(
    make_world: Any, tmp_path: Path
) -> None:
    from connector.sample import generate_extract

    with make_world() as w:
        day1 = tmp_path / "hr_1.csv"
        generate_extract(day1, 60, seed=5)
        lines = day1.read_text(encoding="utf-8").splitlines(keepends=True)
        w.drop_and_deliver("employees/hr_1.csv", day1.read_bytes())
        w.tick(minutes=15)
        w.clock.advance(86400)
        # A blob's extract time is its creation time, which Azurite stamps to the second:
        # each day's file must be created in a later second to be the newer extract.
        time.sleep(1.1)
        w.drop_and_deliver("employees/hr_2.csv", "".join(lines[:-1]).encode())  # one leaver
        w.tick(minutes=15)
        w.clock.advance(86400)
        calls = len(w.bulk_calls())
        time.sleep(1.1)
        w.drop_and_deliver("employees/hr_3.csv", day1.read_bytes())  # back: day 1's bytes
        runs = w.runs()
        assert len(runs) == 3
        third = next(r for r in runs if r.file_name == "employees/hr_3.csv")
        assert third.state in ("uploaded", "reconciling", "done")
        assert third.planned.get("movers") == 1  # the leaver is enabled again
        assert len(w.bulk_calls()) == calls + 1


# -- a repeated id -------------------------------------------------------------------------------


def test_a_dropped_file_with_a_repeated_id_is_applied_without_any_row_carrying_it(
    make_world: Any, tmp_path: Path
) -> None:
    lines = extract_bytes(tmp_path, 60, seed=27).splitlines(keepends=True)
    data = b"".join([*lines, lines[5]])  # line 6's id again on line 62
    with make_world() as w:
        w.drop_and_deliver("employees/hr.csv", data)
        [run] = w.runs()
        assert run.state == "uploaded"
        assert run.planned["joiners"] == 59
        journal = w.runtime.engine.get_run(run.run_id)
        assert [r.line for r in w.runtime.engine.runs.load_rejected(journal)] == [6, 62]
        assert len(w.emu.users()) == 59
