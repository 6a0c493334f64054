"""A run's journal saved off the event loop during the send window: in order, the newest
journal winning, every error raised to a caller, nothing left running."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connector.errors import LockLostError, StateError
from connector.sync.acks import AckedBatch, SealedChunk
from connector.sync.journal import Journal, RunState
from connector.sync.journal_writer import JournalWriter
from tests.sync.fakes import people, write_extract
from tests.sync.world import World

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
SAFETY = 10.0
"""Seconds a blocked fake write waits at most (only so a broken writer cannot hang)."""


class FakeJournals:
    """The four steps of a save, recorded; a write may be held until the test lets it go."""

    def __init__(self, chunk: int = 100) -> None:
        self.chunk = chunk
        self.written: list[list[int]] = []
        """The acknowledged batch indices of each journal document written, in order."""
        self.chunks: list[str] = []
        self.events: list[str] = []
        self.fail: Exception | None = None
        self.hold = threading.Event()
        self.hold.set()
        self.started = threading.Event()
        self.active = 0
        self.most_active = 0
        self.threads: set[str] = set()

    def chunks_to_seal(self, journal: Journal) -> list[SealedChunk]:
        return journal.batches.to_seal(self.chunk)

    def write_chunk(self, journal: Journal, chunk: SealedChunk) -> None:
        self.events.append(f"chunk {chunk.number}")
        self.chunks.append(chunk.name)

    def journal_doc(self, journal: Journal) -> dict[str, Any]:
        return {"acked": [b.index for b in journal.batches[-len(journal.batches.tail) :]]}

    def write_journal(self, journal: Journal, doc: dict[str, Any]) -> str:
        self.active += 1
        self.most_active = max(self.most_active, self.active)
        self.threads.add(threading.current_thread().name)
        try:
            self.started.set()
            assert self.hold.wait(SAFETY), "a held write was never let go"
            if self.fail is not None:
                raise self.fail
            self.written.append(list(doc["acked"]))
            self.events.append(f"journal {len(self.written)}")
            return f"etag-{len(self.written)}"
        finally:
            self.active -= 1


def _journal() -> Journal:
    return Journal(run_id="employees-1", source="employees", state=RunState.UPLOADING)


def _ack(journal: Journal, index: int) -> None:
    journal.batches.append(AckedBatch(index=index, size=50, sent_at=T0, request_id=f"r{index}"))


async def _until(flag: threading.Event) -> None:
    while not flag.is_set():
        await asyncio.sleep(0.001)


def _writer(chunk: int = 100) -> tuple[FakeJournals, Journal, JournalWriter]:
    runs, journal = FakeJournals(chunk), _journal()
    return runs, journal, JournalWriter(runs, journal)  # type: ignore[arg-type]


async def _held_save(runs: FakeJournals, journal: Journal, writer: JournalWriter) -> Any:
    """Batch 0 acknowledged and its save under way, its write held in the thread."""
    runs.hold.clear()
    _ack(journal, 0)
    task = writer.save()
    await _until(runs.started)
    return task


def test_saves_asked_during_a_write_are_served_by_one_write_of_the_newest_journal() -> None:
    runs, journal, writer = _writer()

    async def scenario() -> None:
        first = await _held_save(runs, journal, writer)
        later = []
        for i in (1, 2, 3):
            _ack(journal, i)
            later.append(writer.save())
        await asyncio.sleep(0)
        runs.hold.set()
        await asyncio.gather(first, *later)

    asyncio.run(scenario())
    assert runs.written == [[0], [0, 1, 2, 3]]
    assert writer.writes == 2
    assert journal.etag == "etag-2"


def test_writes_are_made_one_at_a_time_in_the_order_asked_and_off_the_event_loop() -> None:
    runs, journal, writer = _writer()

    async def scenario() -> None:
        for i in range(20):
            _ack(journal, i)
            await writer.save()
            assert runs.written[-1][-1] == i  # returned once its acknowledgement is written

    asyncio.run(scenario())
    assert runs.most_active == 1
    assert [w[-1] for w in runs.written] == list(range(20))
    assert threading.main_thread().name not in runs.threads


def test_chunks_are_written_and_sealed_before_the_journal_that_names_them() -> None:
    runs, journal, writer = _writer(chunk=2)

    async def scenario() -> None:
        for i in range(5):
            _ack(journal, i)
            await writer.save()

    asyncio.run(scenario())
    assert runs.events == [
        "journal 1",
        "chunk 0",
        "journal 2",
        "journal 3",
        "chunk 1",
        "journal 4",
        "journal 5",
    ]
    assert journal.batches.sealed_count == 4
    assert runs.written[-1] == [4]


def test_a_write_error_is_raised_to_every_save_the_write_served() -> None:
    runs, journal, writer = _writer()
    runs.fail = StateError("the state store is unreachable")

    async def scenario() -> list[BaseException | None]:
        _ack(journal, 0)
        _ack(journal, 1)
        return await asyncio.gather(writer.save(), writer.save(), return_exceptions=True)

    results = asyncio.run(scenario())
    assert [type(r) for r in results] == [StateError, StateError]
    assert journal.etag is None


def test_an_error_no_save_received_is_raised_by_drain_at_the_end() -> None:
    runs, journal, writer = _writer()
    runs.fail = StateError("the state store is unreachable")

    async def scenario() -> None:
        waiting = await _held_save(runs, journal, writer)
        waiting.cancel()  # its caller is gone (the window was torn down)
        runs.hold.set()
        with pytest.raises(StateError):
            await writer.drain()
        await writer.drain()  # reported once

    asyncio.run(scenario())


def test_drain_waits_for_the_write_in_flight() -> None:
    runs, journal, writer = _writer()

    async def scenario() -> None:
        waiting = await _held_save(runs, journal, writer)
        waiting.cancel()
        asyncio.get_running_loop().call_later(0.01, runs.hold.set)
        await writer.drain()
        assert runs.written == [[0]]  # written before drain returned
        assert journal.etag == "etag-1"

    asyncio.run(scenario())


class _LostLock:
    lost = True


def test_a_lost_lock_stops_the_write_before_it_is_made() -> None:
    runs, journal, writer = _writer()
    journal.lock = _LostLock()  # type: ignore[assignment]
    _ack(journal, 0)

    async def scenario() -> None:
        await writer.save()

    with pytest.raises(LockLostError):
        asyncio.run(scenario())
    assert runs.written == []


def test_a_journal_write_during_the_window_does_not_hold_the_event_loop(tmp_path: Path) -> None:
    """Regression: the journal was saved on the event loop after each acknowledgement, so
    every paced call due meanwhile went late. Here one journal write waits until the event
    loop has run other work; made on the loop it would wait in vain."""
    w = World(tmp_path)
    put = w.store.put_document
    ticks = 0
    saw: list[bool] = []

    def slow_put(key: str, doc: Any, **kw: Any) -> str:
        if key.startswith("runs/") and doc.get("batches") and not saw:
            start = ticks
            for _ in range(int(SAFETY * 1000)):
                if ticks >= start + 5:
                    break
                time.sleep(0.001)
            saw.append(ticks >= start + 5)
        return put(key, doc, **kw)

    w.store.put_document = slow_put  # type: ignore[method-assign]

    async def scenario() -> str:
        nonlocal ticks
        path = tmp_path / "hr_20260302.csv"
        write_extract(path, people(320))
        run = asyncio.create_task(w.engine.ingest("employees", path.name, path))
        while not run.done():
            ticks += 1
            await asyncio.sleep(0)
        return (await run).state

    assert asyncio.run(scenario()) == "uploaded"
    assert saw == [True]
