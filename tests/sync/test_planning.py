"""Planning a run: a file refused at the rejected-row cap keeps its rows on the run; the
extract is read once, and again only when an id repeats (nothing of the first read kept)."""

from __future__ import annotations

import asyncio
import io
import itertools
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from connector.errors import (
    ExtractError,
    RejectedShareExceededError,
)
from connector.extract import ExtractStats
from connector.extract import RejectedRow as ExtractRejectedRow
from connector.mapping import load_mapping
from connector.records import iter_records
from connector.sample import generate_extract
from connector.sync import readers
from connector.sync.journal import RunState
from connector.sync.journal_doc import journal_to_doc
from connector.sync.op_table import PayloadSpool
from connector.sync.summary import RunSummary
from connector.sync.wiring import build_engine
from tests.sync.fakes import people
from tests.sync.world import World


def test_file_refused_at_the_rejected_row_cap_journals_its_rows(tmp_path: Path) -> None:
    w = World(tmp_path)
    rows = [
        ExtractRejectedRow(i, f"E{i:04}", "missing", "userName is empty") for i in range(2, 1502)
    ]

    def refuse(source: Any, path: Path) -> Any:
        raise RejectedShareExceededError(
            "1500 of 2000 rows rejected, over the 10 % cap",
            path=path.name,
            rejected=rows,
            stats=ExtractStats(500, {"missing": 1500}),
        )

    w.engine.records = refuse
    run = w.sync("hr_20260302.csv", people(3))
    assert run.state == "failed"
    doc = journal_to_doc(w.engine.get_run(run.run_id))
    assert len(doc["rejected"]) == 1000
    assert doc["rejected"][0] == {
        "line": 2,
        "externalId": "E0002",
        "reason": "missing: userName is empty",
    }
    assert doc["rejectedCount"] == 1500
    assert doc["rejectedOmitted"] == 500
    assert doc["rowsInFile"] == 2000


# -- the extract is read once ---------------------------------------------------------------


class _CountingFile(io.FileIO):
    """A file that adds every byte read from it to ``counter``."""

    def __init__(self, path: str, counter: list[int]) -> None:
        super().__init__(path, "rb")
        self.counter = counter

    def readinto(self, buffer: Any) -> int | None:
        n = super().readinto(buffer)
        self.counter[0] += n or 0
        return n

    def readall(self) -> bytes:
        data = super().readall()
        self.counter[0] += len(data)
        return data


@pytest.fixture
def bytes_read(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], list[int]]:
    """``count(path)``: from then on, the bytes read from ``path`` (opened binary)."""

    def count(path: Path) -> list[int]:
        counter = [0]
        real_open = Path.open

        def spy(self: Path, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
            if self == path and mode == "rb":
                return io.BufferedReader(_CountingFile(str(self), counter))
            return real_open(self, mode, *args, **kwargs)

        monkeypatch.setattr(Path, "open", spy)
        return counter

    return count


def _real_reader_world(tmp_path: Path) -> World:
    from benchmarks.emuworld import sources_config

    w = World(tmp_path)
    w.config = sources_config()
    w.engine = build_engine(w.config, w.store, w.service.target, w.clock)
    return w


def _extract(tmp_path: Path, rows: int, repeat: tuple[int, ...] = ()) -> Path:
    """A generated extract; each data row numbered in ``repeat`` is written once more at
    the end (its id then occurs twice)."""
    path = tmp_path / "employees_20260302.csv"
    generate_extract(path, rows, seed=5)
    if repeat:
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        path.write_text("".join(lines + [lines[i] for i in repeat]), encoding="utf-8")
    return path


def _ingest(w: World, path: Path) -> RunSummary:
    return asyncio.run(w.engine.ingest("employees", path.name, path))


def _two_pass(w: World, path: Path) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """Accepted (line, id) and rejected (line, reason code) as the id-column-first read
    gives them."""
    mapping = load_mapping(w.config.source("employees").mapping_path or "")
    with iter_records(path, mapping, label=path.name) as stream:
        accepted = [(r.line, r.external_id) for r in stream]
        return accepted, [(r.line, r.reason_code) for r in stream.rejected]


def test_a_sync_of_a_file_without_repeated_ids_reads_it_once(
    tmp_path: Path, bytes_read: Callable[[Path], list[int]]
) -> None:
    w = _real_reader_world(tmp_path)
    path = _extract(tmp_path, 500)
    size = path.stat().st_size
    counter = bytes_read(path)
    run = _ingest(w, path)
    assert run.state == "uploaded"
    assert run.planned["joiners"] == 500
    # once for the run id's SHA-256, once for the records (plus the header's first block);
    # reading the id column first would make it three times
    assert size * 2 <= counter[0] < size * 2.5


def test_a_repeated_id_drops_the_first_read_and_rejects_every_row_carrying_it(
    tmp_path: Path, bytes_read: Callable[[Path], list[int]]
) -> None:
    w = _real_reader_world(tmp_path)
    path = _extract(tmp_path, 500, repeat=(7, 300))
    accepted, rejected = _two_pass(w, path)
    counter = bytes_read(path)
    run = _ingest(w, path)
    assert counter[0] >= path.stat().st_size * 3  # hashed, read, read again
    assert run.state == "uploaded"
    journal = w.engine.get_run(run.run_id)
    planned = [(op.line, op.external_id) for op in w.engine.runs.iter_plan(journal)]
    assert sorted(planned) == accepted
    assert len(accepted) == 500 - 2
    lines = [(r.line, r.reason.split(":")[0]) for r in w.engine.runs.load_rejected(journal)]
    assert (
        lines
        == rejected
        == [
            (8, "duplicate_external_id"),
            (301, "duplicate_external_id"),
            (502, "duplicate_external_id"),
            (503, "duplicate_external_id"),
        ]
    )
    assert run.planned["rejected"] == 4


def test_the_first_reads_spooled_payloads_are_released_before_the_second_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = _real_reader_world(tmp_path)
    path = _extract(tmp_path, 80, repeat=(9,))
    spools: list[weakref.ref[PayloadSpool]] = []
    real_init = PayloadSpool.__init__

    def noting(self: PayloadSpool) -> None:
        real_init(self)
        spools.append(weakref.ref(self))

    alive_at_second_read: list[int] = []
    real_open = readers.iter_records

    def opening(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("duplicates") is not None:
            alive_at_second_read.append(sum(ref() is not None for ref in spools))
        return real_open(*args, **kwargs)

    monkeypatch.setattr(PayloadSpool, "__init__", noting)
    monkeypatch.setattr(readers, "iter_records", opening)
    run = _ingest(w, path)
    assert run.planned["joiners"] == 79
    assert alive_at_second_read == [0]  # the first read's plan is gone, its file closed


def test_a_repeated_id_rejects_the_same_rows_in_a_dry_run(tmp_path: Path) -> None:
    w = _real_reader_world(tmp_path)
    path = _extract(tmp_path, 60, repeat=(1,))
    run = asyncio.run(w.engine.ingest("employees", path.name, path, dry_run=True))
    assert run.planned["joiners"] == 59
    assert run.planned["rejected"] == 2


def test_a_file_whose_repeated_ids_pass_the_rejected_row_cap_is_refused_with_its_rows(
    tmp_path: Path,
) -> None:
    w = _real_reader_world(tmp_path)
    path = _extract(tmp_path, 40, repeat=(1, 2, 3))  # 6 of 43 rows rejected, cap 5 %
    run = _ingest(w, path)
    assert run.state == "failed"
    assert run.failed_reason is not None
    assert "6 of 43 rows rejected" in run.failed_reason
    journal = w.engine.get_run(run.run_id)
    assert [r.line for r in journal.rejected or ()] == [2, 3, 4, 42, 43, 44]
    assert journal.rejected_by_reason == {"duplicate_external_id": 6}
    assert journal.planned is None


def test_kept_records_are_those_of_the_second_read(tmp_path: Path) -> None:
    w = _real_reader_world(tmp_path)
    (tmp_path / "earlier").mkdir()
    first = _ingest(w, _extract(tmp_path / "earlier", 5))
    assert first.state == "uploaded"
    path = _extract(tmp_path, 40, repeat=(2,))
    src = w.config.source("employees")
    journal = w.engine.get_run(first.run_id)
    plan, rows, rejected, _ = w.engine.planner.compute(src, path, full_resend=False, keep=journal)
    assert rows == 41
    assert [r.line for r in rejected] == [3, 42]
    kept = [k.line for k in w.engine.runs.load_kept_records(journal)]
    assert kept == [n for n in range(2, 42) if n != 3]
    assert plan.rows == 39


class _SecondReadFails(Exception):
    """The process failing while the file is read the second time."""


class _FailingStream:
    """A record stream that raises ``error`` after ``after`` records."""

    def __init__(self, stream: Any, after: int, error: Exception) -> None:
        self.stream, self.after, self.error = stream, after, error

    def __iter__(self) -> Any:
        yield from itertools.islice(self.stream, self.after)
        raise self.error

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def _fail_second_read(monkeypatch: pytest.MonkeyPatch, error: Exception) -> None:
    """The second read of a file (the repeated ids known) raises ``error`` midway."""
    real = readers.iter_records

    def failing(*args: Any, **kwargs: Any) -> Any:
        stream = real(*args, **kwargs)
        if kwargs.get("duplicates") is not None:
            return _FailingStream(stream, 50, error)
        return stream

    monkeypatch.setattr(readers, "iter_records", failing)


def test_a_failure_in_the_second_read_stores_nothing_of_the_plan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = _real_reader_world(tmp_path)
    path = _extract(tmp_path, 120, repeat=(4,))
    real = readers.iter_records
    _fail_second_read(monkeypatch, _SecondReadFails("disk gone"))
    with pytest.raises(_SecondReadFails):
        _ingest(w, path)
    (journal,) = w.engine.runs.runs("employees")
    assert journal.state is RunState.RECEIVED
    assert journal.planned is None
    assert journal.batches_total in (None, 0)
    stored = sorted(p.name for p in (tmp_path / "state").rglob("*") if p.is_file())
    assert [name for name in stored if not name.startswith(".")] == [journal.run_id]  # no plan
    assert w.engine.runs.load_records("employees").active_count() == 0
    monkeypatch.setattr(readers, "iter_records", real)
    again = _ingest(w, path)  # delivered again, it is planned from the start
    assert again.run_id == journal.run_id
    assert again.state == "uploaded"
    assert again.planned["joiners"] == 119
    assert again.planned["rejected"] == 2


def test_a_file_error_in_the_second_read_fails_the_run_with_nothing_planned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = _real_reader_world(tmp_path)
    path = _extract(tmp_path, 120, repeat=(4,))
    _fail_second_read(monkeypatch, ExtractError("cannot be read", path=path.name))
    run = _ingest(w, path)
    assert run.state == "failed"
    assert run.failed_reason is not None
    assert "cannot be read" in run.failed_reason
    journal = w.engine.get_run(run.run_id)
    assert journal.planned is None
    assert w.engine.runs.load_rejected(journal) == []
    stored = sorted(p.name for p in (tmp_path / "state").rglob("*") if p.is_file())
    assert not [
        name for name in stored if name.endswith(".gz")
    ]  # no plan, rejected rows, kept records
