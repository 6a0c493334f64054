"""Journal writes per acknowledgement: sealed chunks vs every acknowledgement inline.

Scenario (issue #15, scale): a run's journal is saved after every acknowledged batch. A
1,000,000-record first load is 20,000 batches; with every acknowledgement inline the
journal grows by ~100 bytes a batch and is rewritten whole each time (O(n²) bytes).

For each size (2,000 and 20,000 acknowledgements) this prints, for the current layout
(:mod:`connector.sync.acks`: at most ``ACK_CHUNK_SIZE`` inline, the rest in sealed
chunks) and the previous one (all inline) measured in the same run:

- bytes written per acknowledgement (mean and the largest single save) and in total:
  the journal documents plus, for the current layout, the chunks (gzip, as stored);
- time per save, through :meth:`RunStore.save` on the directory state store, over the
  first and the last 200 saves of the run.

The current layout is saved for every acknowledgement of the run. The previous layout
is the same code with sealing switched off (``ACK_CHUNK_SIZE`` above the run's size,
which writes exactly the document earlier versions wrote); its total bytes are summed
exactly from each acknowledgement's serialised size (rewriting a 2 MB document 20,000
times would write ~20 GB), and its time per save is measured over the first and the
last 200 saves of the run (the journal holding N-200 acknowledgements before the last).

Run: ``.venv/bin/python benchmarks/bench_journal.py [--sizes 2000,20000]``
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from connector.clock import FakeClock
from connector.state.local import LocalStateStore
from connector.sync import journal_store
from connector.sync.acks import ACK_CHUNK_SIZE, AckedBatch
from connector.sync.journal import Journal, RunState
from connector.sync.journal_doc import journal_to_doc
from connector.sync.run_store import RunStore

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
SAMPLE = 200


def _ack(i: int) -> AckedBatch:
    rejected = {f"E{i:07d}": ("InvalidValue", "a value the job refused")} if i % 100 == 7 else {}
    return AckedBatch(
        i,
        50,
        T0 + timedelta(seconds=i),
        str(uuid.UUID(int=random.Random(i).getrandbits(128))),
        rejected,
    )


def _journal() -> Journal:
    journal = Journal(
        run_id="employees-0123456789abcdef0123", source="employees", state=RunState.PLANNED
    )
    journal.file, journal.received_at, journal.extract_at = "hr_20260302.csv", T0, T0
    journal.planned = {"joiner": 1_000_000}
    journal.start(T0, "sending starts")
    return journal


class _Counting(LocalStateStore):
    """The directory store, counting the bytes of every journal and chunk written."""

    journal_bytes = 0
    chunk_bytes = 0
    largest = 0

    def put_document(self, key: str, doc: Any, **kw: Any) -> str:
        size = len(orjson.dumps(doc))
        self.journal_bytes += size
        self.largest = max(self.largest, size)
        return super().put_document(key, doc, **kw)

    def write_artifact(self, path: str, data: bytes, *, content_type: str | None = None) -> str:
        self.chunk_bytes += len(data)
        return super().write_artifact(path, data, content_type=content_type)


@contextmanager
def _store() -> Iterator[tuple[_Counting, RunStore]]:
    with tempfile.TemporaryDirectory() as tmp:
        store = _Counting(Path(tmp), clock=FakeClock(T0), heartbeat=False)
        yield store, RunStore(store, FakeClock(T0))


def _timed_saves(runs: RunStore, journal: Journal, first: int, count: int) -> list[float]:
    times = []
    for i in range(first, first + count):
        journal.batches.append(_ack(i))
        start = time.perf_counter()
        runs.save(journal)
        times.append(time.perf_counter() - start)
    return times


def current(n: int) -> dict[str, float]:
    """Every acknowledgement of the run saved with sealing on."""
    with _store() as (store, runs):
        journal = _journal()
        runs.create(journal)
        times = _timed_saves(runs, journal, 0, n)
        total = store.journal_bytes + store.chunk_bytes
        return {
            "per_ack": total / n,
            "largest": store.largest,
            "total": total,
            "first_ms": statistics.mean(times[:SAMPLE]) * 1e3,
            "last_ms": statistics.mean(times[-SAMPLE:]) * 1e3,
        }


def previous(n: int) -> dict[str, float]:
    """Every acknowledgement inline: bytes summed exactly, saves timed at both ends."""
    journal = _journal()
    base = len(orjson.dumps(journal_to_doc(journal)))
    total, size = 0, base
    for i in range(n):
        size += len(orjson.dumps(_ack(i).to_doc())) + (1 if i else 0)
        total += size
    saved = journal_store.ACK_CHUNK_SIZE
    journal_store.ACK_CHUNK_SIZE = n + 1  # type: ignore[misc]  # sealing off: the old document
    try:
        with _store() as (_, runs):
            runs.create(journal)
            first = _timed_saves(runs, journal, 0, SAMPLE)
            for i in range(SAMPLE, n - SAMPLE):
                journal.batches.append(_ack(i))
            last = _timed_saves(runs, journal, n - SAMPLE, SAMPLE)
    finally:
        journal_store.ACK_CHUNK_SIZE = saved  # type: ignore[misc]
    return {
        "per_ack": total / n,
        "largest": size,
        "total": total,
        "first_ms": statistics.mean(first) * 1e3,
        "last_ms": statistics.mean(last) * 1e3,
    }


def _row(name: str, r: dict[str, float]) -> str:
    return (
        f"  {name:<28} {r['per_ack']:>10,.0f} B/ack  largest {r['largest']:>10,.0f} B"
        f"  total {r['total'] / 1e6:>10,.1f} MB  save {r['first_ms']:.2f} ms (first {SAMPLE})"
        f" → {r['last_ms']:.2f} ms (last {SAMPLE})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", default="2000,20000")
    args = parser.parse_args()
    print(f"python {platform.python_version()}; chunk size {ACK_CHUNK_SIZE}")
    for n in (int(s) for s in args.sizes.split(",")):
        print(f"{n:,} acknowledgements ({n * 50:,} records):")
        new, old = current(n), previous(n)
        print(_row("sealed chunks (current)", new))
        print(_row("all inline (previous)", old))
        print(
            f"  bytes written: {old['total'] / new['total']:,.0f}x fewer;"
            f" last saves {old['last_ms'] / new['last_ms']:,.1f}x faster"
        )


if __name__ == "__main__":
    main()
