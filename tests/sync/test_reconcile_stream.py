"""Reconciliation streams: entries matched as they are read, in compact state, and the
artifacts it reads and writes a row at a time (old layouts still load)."""

from __future__ import annotations

import gzip
import random
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from connector.reconcile import LogEntry, Outcome, RecordOutcome, SentRecord, reconcile_runs
from connector.reconcile_match import Matcher
from connector.sync.result_store import OutcomeRow
from tests.sync.fakes import people
from tests.sync.world import World

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
SKEW = timedelta(minutes=5)
ACTIONS = ("create", "update", "disable", "other")
STATUSES = ("success", "skipped", "failure", "warning")


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def guid(n: int) -> str:
    return f"0000aaaa-bbbb-4ccc-8ddd-{n:012x}"


def random_entries(rng: random.Random, ext: str, n: int) -> list[LogEntry]:
    out = []
    for _ in range(n):
        status = rng.choice(STATUSES)
        code = rng.choice([None, "UnableToResolveReferenceAttributeValue", "SomeCode"])
        out.append(
            LogEntry(
                guid(rng.randrange(1 << 40)),
                at(rng.randrange(-600, 3600)),
                ext,
                rng.choice(ACTIONS),
                status,
                error_code=code,
                reason=f"why {rng.randrange(3)}",
            )
        )
    return out


def test_the_deciding_entry_is_the_same_whatever_order_the_entries_are_read_in() -> None:
    """Pages come newest first; the outcome is the one sorting by time would give."""
    rng = random.Random(7)
    for _ in range(300):
        sends = [SentRecord("E1", at(0), "r1", rng.choice(["joiner", "leaver"]), 3, None, "a")]
        if rng.random() < 0.5:  # a record sent again by a later run: shared by order
            sends.append(SentRecord("E1", at(rng.randrange(1, 1800)), "r2", "mover", 4, None, "b"))
        entries = random_entries(rng, "E1", rng.randrange(0, 5))
        entries = list({e.activity_at: e for e in entries}.values())  # distinct times
        expected = reconcile_runs(sends, sorted(entries, key=lambda e: e.activity_at), now=at(9000))
        shuffled = entries[:]
        rng.shuffle(shuffled)
        got = reconcile_runs(sends, shuffled, now=at(9000))
        assert got == expected


def test_on_equal_rank_and_time_the_entry_read_later_decides() -> None:
    first = LogEntry(guid(1), at(5), "E1", "update", "failure", error_code="A")
    second = LogEntry(guid(2), at(5), "E1", "update", "failure", error_code="B")
    out = reconcile_runs([SentRecord("E1", at(0), run_id="r")], [first, second], now=at(60))
    assert out["r"].outcomes["E1"].error_code == "B"
    out = reconcile_runs([SentRecord("E1", at(0), run_id="r")], [second, first], now=at(60))
    assert out["r"].outcomes["E1"].error_code == "A"


@pytest.mark.parametrize("ident", [guid(42), "0000AAAA-BBBB-4CCC-8DDD-00000000002A", "log-7", ""])
def test_the_deciding_entrys_id_and_details_come_back_as_logged(ident: str) -> None:
    entry = LogEntry(ident, at(3.25), "E1", "create", "success", reason="r", job_id="job")
    [outcome] = matched_outcomes([SentRecord("E1", at(0), "req", "joiner", 9, None, "r")], [entry])
    assert outcome.log_id == ident
    assert outcome.activity_at == at(3.25)
    assert (outcome.outcome, outcome.line, outcome.request_id) == (Outcome.CREATED, 9, "req")


def matched_outcomes(sends: list[SentRecord], entries: list[LogEntry]) -> list[RecordOutcome]:
    matcher = Matcher(skew=SKEW)
    for s in sends:
        matcher.add(s)
    for e in entries:
        matcher.feed(e)
    return list(matcher.outcomes("r", now=at(60)))


def test_a_record_sent_once_keeps_no_entry_object_while_entries_stream_past() -> None:
    n = 10_000
    matcher = Matcher(skew=SKEW)
    for i in range(n):
        matcher.add(SentRecord(f"E{i}", at(i // 50), f"req-{i // 50}", "joiner", i, None, "r"))
    entries = [LogEntry(guid(i), at(i // 50 + 30), f"E{i}", "create", "success") for i in range(n)]
    matcher.feed(entries[0])  # the fixed-size state is allocated on the first entry
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for e in entries[1:]:
            matcher.feed(e)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 100_000, f"{grown} bytes kept for {n} entries"
    outcomes = list(matcher.outcomes("r", now=at(600)))
    assert [o.log_id for o in outcomes[:2]] == [guid(0), guid(1)]
    assert {o.outcome for o in outcomes} == {Outcome.CREATED}


def test_sends_come_before_entries() -> None:
    matcher = Matcher()
    matcher.add(SentRecord("E1", at(0), run_id="r"))
    matcher.feed(LogEntry(guid(1), at(1), "E1", "create", "success"))
    with pytest.raises(ValueError, match="before the first log entry"):
        matcher.add(SentRecord("E2", at(0), run_id="r"))


def test_outcomes_are_written_a_row_per_line_and_read_back(tmp_path: Path) -> None:
    w = World(tmp_path)
    run = w.sync("hr_20260302.csv", people(120))
    [rec] = w.reconcile()
    assert rec.outcomes == {"created": 120}
    blob = w.store.read_artifact(f"employees/{run.run_id}/outcomes.json.gz")
    text = gzip.decompress(blob)
    assert text.count(b"\n") == 121
    assert len(orjson.loads(text)) == 120  # still one JSON array
    runs = w.engine.runs
    assert len(runs.load_outcomes("employees", run.run_id)) == 120
    some = runs.load_outcomes("employees", run.run_id, only={"E0001", "E0002", "nobody"})
    assert set(some) == {"E0001", "E0002"}
    assert some["E0001"].outcome == "created"


def test_outcomes_stored_on_one_line_before_still_load(tmp_path: Path) -> None:
    w = World(tmp_path)
    row = OutcomeRow("E1", "created", None, None, "create", T0, "log-1")
    old = gzip.compress(orjson.dumps([row.to_row(), ["E2", "failed", "X", "why"]]))
    w.store.write_artifact("employees/run-1/outcomes.json.gz", old)
    got = w.engine.runs.load_outcomes("employees", "run-1")
    assert got["E1"] == row
    assert got["E2"].error_code == "X"
    assert set(w.engine.runs.load_outcomes("employees", "run-1", only={"E2"})) == {"E2"}


def test_the_plan_streams_record_by_record_as_stored(tmp_path: Path) -> None:
    w = World(tmp_path)
    run = w.sync("hr_20260302.csv", people(120))
    journal = w.engine.get_run(run.run_id)
    assert list(w.engine.runs.iter_plan(journal)) == w.engine.runs.load_plan(journal)
    journal.run_id = "missing"
    assert list(w.engine.runs.iter_plan(journal)) == []


def test_the_log_book_streams_what_it_kept_in_read_order_and_prunes_by_time() -> None:
    from connector.sync.log_book import LogBook

    book = LogBook()
    newest_first = [LogEntry(guid(i), at(100 - i), f"E{i}", "create", "success") for i in range(50)]
    assert book.add(newest_first, started=at(0), margin=SKEW) == 50
    later = [LogEntry(guid(99), at(200), "E99", "update", "success"), newest_first[0]]
    assert book.add(later, started=at(100) - SKEW, margin=SKEW) == 1  # one already kept
    stored = LogBook.from_bytes(book.to_bytes())
    assert [e.id for e in stored.entries()] == [e.id for e in newest_first] + [guid(99)]
    assert stored.cursor.newest == at(200)
    stored.prune(at(90))
    assert [e.id for e in stored.entries()] == [guid(i) for i in range(11)] + [guid(99)]
    assert stored.kept_from == at(90)
