"""A reconciliation pass reads only the log entries that are new (issue 13, item 3)."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from connector.errors import StateError
from connector.reconcile import LogEntry
from connector.sync.log_book import LogBook
from tests.sync.fakes import FakeTarget, config, people
from tests.sync.world import T0, World


class Recording(FakeTarget):
    reads: list[datetime]

    async def iter_logs(self, since: datetime) -> AsyncIterator[dict[str, Any]]:
        self.service.reads.append(since)  # type: ignore[attr-defined]
        async for e in super().iter_logs(since):
            yield e


def world(tmp_path: Path) -> World:
    w = World(tmp_path)
    w.service.reads = []  # type: ignore[attr-defined]
    w.service.target = lambda src: Recording(w.service)  # type: ignore[method-assign]
    w.config = config(max_changes_percent=100000, max_leavers_percent=100)
    w.engine = w.new_engine()
    return w


def test_entries_read_while_a_run_was_still_sending_are_matched_when_it_is_sent(
    tmp_path: Path,
) -> None:
    w = world(tmp_path)
    w.service.silent.update({"E0002", "E0100"})  # keep both runs open
    first = w.sync("hr_20260302.csv", people(3))
    w.reconcile()
    w.clock.advance(3600)
    w.service.quota = len(w.service.calls) + 1  # one more call today
    second = w.sync("hr_20260303.csv", people(120))
    assert second.state == "uploading", second
    w.reconcile()  # reads the entries of the second run's first batch
    w.clock.advance(3600)
    w.service.quota = None
    asyncio.run(w.engine.resume_waiting())
    w.reconcile()
    runs = {s.run_id: s for s in w.reconcile()}
    last_read = w.service.reads[-1]  # type: ignore[attr-defined]
    assert last_read > T0 + timedelta(hours=2), "the pass re-read logs it had read"
    # The first batch's entries were read two passes ago: matched from the book.
    assert runs[second.run_id].outcomes == {"created": 116, "pending": 1}
    [one] = [s for s in w.engine.list_runs() if s.run_id == first.run_id]
    assert one.outcomes == {"created": 2, "unconfirmed": 1}, one.outcomes


def test_one_pass_reads_the_logs_once_for_all_open_runs(tmp_path: Path) -> None:
    w = world(tmp_path)
    w.sync("hr_20260302.csv", people(3))
    w.clock.advance(60)
    w.sync("hr_20260303.csv", people(5))
    assert len(w.reconcile()) == 2
    assert len(w.service.reads) == 1  # type: ignore[attr-defined]


def test_log_book_round_trips_and_names_what_is_broken() -> None:
    book = LogBook()
    entry = LogEntry("id-1", T0, "E1", "create", "success", job_id="job")
    book.add([entry, entry], started=T0 - timedelta(minutes=5), margin=timedelta(minutes=15))
    assert list(book.entries()) == [entry]
    again = LogBook.from_bytes(book.to_bytes())
    assert list(again.entries()) == [entry]
    assert again.cursor == book.cursor
    assert again.kept_from == T0 - timedelta(minutes=5)
    assert again.read_from(T0 - timedelta(hours=1), timedelta(minutes=15)) == (
        T0 - timedelta(hours=1)
    ), "a horizon older than the book reads from the horizon"
    assert again.read_from(T0, timedelta(minutes=15)) == T0
    assert again.read_from(T0 - timedelta(minutes=1), timedelta(minutes=15)) == (
        T0 - timedelta(minutes=1)
    )
    with pytest.raises(StateError, match="8 fields"):
        LogBook.from_json({"entries": [["x"]]})
    with pytest.raises(StateError, match="unreadable"):
        LogBook.from_bytes(b"not gzip")
    book.prune(T0 + timedelta(seconds=1))
    assert list(book.entries()) == []


def test_a_log_book_stored_as_one_json_object_still_loads() -> None:
    """Books written before entries were streamed: one gzip JSON object with a list."""
    entry = LogEntry("id-1", T0, "E1", "create", "success", job_id="job")
    doc = {
        "cursor": {
            "newest": "2026-03-02T06:00:00Z",
            "boundary": [["id-1", "2026-03-02T06:00:00Z"]],
        },
        "keptFrom": "2026-03-02T05:55:00Z",
        "entries": [["id-1", "2026-03-02T06:00:00Z", "E1", "create", "success", None, None, "job"]],
    }
    book = LogBook.from_bytes(gzip.compress(orjson.dumps(doc)))
    assert [e.id for e in book.entries()] == ["id-1"]
    assert book.kept_from == T0 - timedelta(minutes=5)
    # Read again with the same entry: it is known, only a new one is kept.
    other = LogEntry("id-2", T0 + timedelta(seconds=1), "E2", "create", "success")
    assert book.add([entry, other], started=T0 - timedelta(minutes=1), margin=timedelta(0)) == 1
    assert [e.id for e in LogBook.from_bytes(book.to_bytes()).entries()] == ["id-1", "id-2"]


def test_the_log_book_key_is_a_safe_artifact_path_for_any_job_id() -> None:
    from connector.state.base import check_document_key
    from connector.sync.run_keys import log_book_key

    for job in ("API2AAD.abc.def-1", "../x y", ".hidden", None):
        check_document_key(log_book_key("employees", job))
