"""Acknowledged batches: a small inline tail, sealed chunks read back lazily in order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from connector.errors import StateError
from connector.sync.acks import AckedBatch, AckLog, SealedChunk, index_ranges

AT = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


def _ack(i: int, request: str = "req") -> AckedBatch:
    return AckedBatch(i, 50, AT + timedelta(seconds=i), f"{request}-{i}", {})


def _sealed_log(
    indices: list[int], size: int = 3, request: str = "req"
) -> tuple[AckLog, dict[str, bytes]]:
    """A log of ``indices`` whose full chunks were written to the returned dict."""
    written: dict[str, bytes] = {}
    log = AckLog(_ack(i, request) for i in indices)
    for chunk in log.to_seal(size):
        written[chunk.name] = chunk.body
        log.sealed(chunk)
    log.reader = written.__getitem__
    return log, written


def _reloaded(log: AckLog, written: dict[str, bytes]) -> AckLog:
    again = AckLog.from_doc(log.to_doc())
    again.reader = written.__getitem__
    return again


def test_full_chunks_leave_the_tail_and_the_document_keeps_only_their_summary() -> None:
    log, written = _sealed_log([3, 0, 1, 2, 5, 4, 6, 8])
    assert len(written) == 2
    assert [b.index for b in log.tail] == [6, 8]
    doc = log.to_doc()
    assert [b["i"] for b in doc["batches"]] == [6, 8]
    assert doc["ackChunks"]["chunks"] == 2
    assert doc["ackChunks"]["acks"] == 6
    assert doc["ackChunks"]["ranges"] == [[0, 5]]


def test_a_reloaded_log_counts_and_knows_its_indices_without_reading_a_chunk() -> None:
    log, _ = _sealed_log(list(range(10)))
    again = AckLog.from_doc(log.to_doc())  # no reader attached
    assert len(again) == 10
    assert again
    assert again.indices == set(range(10))
    assert again[-1].index == 9
    assert again[9:] == [again.tail[0]]
    with pytest.raises(StateError):
        list(again)


def test_a_reloaded_log_reads_every_acknowledgement_back_in_arrival_order() -> None:
    order = [2, 0, 1, 4, 3, 5, 7, 6]
    log, written = _sealed_log(order)
    again = _reloaded(log, written)
    assert [b.index for b in again] == order
    assert [b.request_id for b in again] == [f"req-{i}" for i in order]
    assert again[1].index == 0
    assert [b.index for b in again[2:7]] == [1, 4, 3, 5, 7]
    assert again == log


def test_chunks_are_read_only_when_the_sealed_part_is_needed() -> None:
    log, written = _sealed_log(list(range(7)))
    reads: list[str] = []
    again = AckLog.from_doc(log.to_doc())
    again.reader = lambda name: reads.append(name) or written[name]
    assert again[6:] == again.tail
    assert reads == []
    assert [b.index for b in again[5:]] == [5, 6]
    assert len(reads) == 2  # newest first along the chain
    list(again)
    assert len(reads) == 2  # read once


def test_computing_the_chunks_to_seal_changes_nothing_until_one_is_written() -> None:
    log = AckLog(_ack(i) for i in range(7))
    chunks = log.to_seal(3)
    assert [c.number for c in chunks] == [0, 1]
    assert len(log.tail) == 7
    assert "ackChunks" not in log.to_doc()
    with pytest.raises(ValueError, match="not the next one"):
        log.sealed(chunks[1])


def test_a_chunk_with_other_content_gets_another_name() -> None:
    first, _ = _sealed_log([0, 1, 2], request="a")
    second, _ = _sealed_log([0, 1, 2], request="b")
    again, _ = _sealed_log([0, 1, 2], request="a")
    name = first.to_doc()["ackChunks"]["last"]
    assert name != second.to_doc()["ackChunks"]["last"]
    assert name == again.to_doc()["ackChunks"]["last"]
    assert name.startswith("000000-")


def test_a_missing_or_short_chain_is_a_state_error() -> None:
    log, written = _sealed_log(list(range(6)))
    again = AckLog.from_doc(log.to_doc())
    again.reader = lambda name: (_ for _ in ()).throw(StateError(f"no report file {name}"))
    with pytest.raises(StateError, match="no report file"):
        list(again)
    doc = log.to_doc()
    doc["ackChunks"]["chunks"] = 3
    wrong = AckLog.from_doc(doc)
    wrong.reader = written.__getitem__
    with pytest.raises(StateError, match="its journal says"):
        list(wrong)
    broken = AckLog.from_doc(log.to_doc())
    broken.reader = lambda name: b"not json"
    with pytest.raises(StateError, match="unreadable"):
        list(broken)


def test_an_inline_list_as_journals_always_had_it_loads_as_the_tail() -> None:
    doc = {"batches": [{"sentAt": AT.isoformat(), "requestId": "r", "n": 50}] * 3}
    log = AckLog.from_doc(doc)
    assert [b.index for b in log] == [0, 1, 2]
    assert log.to_doc() == {"batches": [b.to_doc() for b in log.tail]}
    assert isinstance(log.to_seal(3)[0], SealedChunk)


def test_index_ranges_join_consecutive_indices() -> None:
    assert index_ranges([5, 0, 1, 2, 7, 6, 9]) == [[0, 2], [5, 7], [9, 9]]
    assert index_ranges([]) == []


def test_records_sent_and_the_first_send_are_known_without_reading_a_chunk() -> None:
    log, _ = _sealed_log([4, 0, 1, 2, 3, 5, 6])
    again = AckLog.from_doc(log.to_doc())  # no reader attached
    assert again.records_sent == 7 * 50
    assert again.first_sent_at == AT
    assert AckLog().first_sent_at is None
    assert AckLog().records_sent == 0
