"""Sending a run: the window of batches in flight and the isolation of 400s."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from pathlib import Path

import pytest

from connector.errors import (
    AuthenticationError,
    ConcurrentRunError,
    ConfigError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExhaustedError,
    SystemicRefusalError,
)
from connector.scim import BulkPayload
from connector.sync.journal_doc import journal_to_doc
from connector.sync.targets import BatchReceipt
from connector.sync.upload import Stop, StopKind, send_window, stop_for
from connector.sync.waiting import WaitingReason
from tests.sync.fakes import people
from tests.sync.world import World


def test_systemic_400_fails_the_run_after_a_few_calls(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.engine = w.new_engine(window=1)
    msg = "Attribute 'urn:custom:costCenter' is not in the job's schema"
    w.service.refuse = lambda data: msg
    run = w.sync("hr_20260302.csv", people(500))  # 10 batches
    assert run.state == "failed"
    assert run.failed_reason is not None
    assert msg in run.failed_reason
    assert "fix the mapping" in run.failed_reason
    assert len(w.service.calls) <= 3
    assert len(w.store.load_records("employees")) == 0


def test_one_bad_record_is_isolated_and_the_rest_delivered(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.service.refuse = lambda data: "bad title" if data["externalId"] == "E0030" else None
    run = w.sync("hr_20260302.csv", people(100))
    assert run.state == "uploaded"
    assert set(w.service.users) == {f"E{i:04}" for i in range(1, 101)} - {"E0030"}
    assert len(w.service.calls) <= 2 + 2 + 10  # two batches, both halves, bisection
    entry = w.store.load_records("employees").get("E0030")
    assert entry is not None
    assert entry.outcome == "failed"


def test_isolation_allowance_is_per_run_not_per_batch(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.engine = w.new_engine(window=1, isolation_calls=10)
    bad = {f"E{i:04}" for i in range(5, 500, 50)}  # one bad record in each of 10 batches
    w.service.refuse = lambda data: "bad" if data["externalId"] in bad else None
    run = w.sync("hr_20260302.csv", people(500))
    assert len(w.service.calls) <= 10 + 10 + 1
    assert journal_to_doc(w.engine.get_run(run.run_id))["isolationCalls"] <= 10 + 1


def test_window_sends_batches_concurrently_and_quota_stops_cleanly(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.engine = w.new_engine(window=4)
    w.service.yield_in_send = True
    w.service.quota = 6
    run = w.sync("hr_20260302.csv", people(500))  # 10 batches
    assert 1 < w.service.max_in_flight <= 4
    assert run.state == "uploading"
    assert run.waiting_reason is WaitingReason.QUOTA
    assert run.batches_done == 6
    assert len(w.store.load_records("employees")) == 300
    w.service.quota = None
    w.clock.advance(86400)
    [done] = asyncio.run(w.engine.resume_waiting())
    assert done.state == "uploaded"
    sent = [e for c in w.service.calls for e in c]
    assert sorted(sent) == sorted({*sent})  # nothing sent twice
    assert len(set(sent)) == 500


def _payload(n: int) -> BulkPayload:
    ids = tuple(f"E{n}-{k}" for k in range(2))
    return BulkPayload(b"{}", ids, ids)


def test_the_window_sends_a_reports_batch_only_after_its_managers_batch() -> None:
    batches = [_payload(i) for i in range(3)]
    deps = [(), (0,), (0,)]  # batch 0 holds the managers of batches 1 and 2
    events: list[str] = []
    release = asyncio.Event()

    async def send(payload: BulkPayload) -> BatchReceipt:
        events.append(f"send {payload.external_ids[0]}")
        if payload is batches[0]:
            await release.wait()
        return BatchReceipt(request_id=payload.external_ids[0])

    def on_ack(i: int, receipt: BatchReceipt, stopping: StopKind | None) -> None:
        events.append(f"ack {i}")
        assert stopping is None

    async def main() -> Stop | None:
        task = asyncio.create_task(
            send_window(batches, deps, [0, 1, 2], send=send, on_ack=on_ack, width=3)
        )
        await asyncio.sleep(0.01)
        assert events == ["send E0-0"]  # the reports wait for their managers
        release.set()
        return await task

    assert asyncio.run(main()) is None
    assert events[:2] == ["send E0-0", "ack 0"]
    assert sorted(events[2:]) == ["ack 1", "ack 2", "send E1-0", "send E2-0"]


def test_a_batch_without_dependencies_does_not_wait_for_earlier_batches_in_flight() -> None:
    batches = [_payload(i) for i in range(4)]
    deps: list[tuple[int, ...]] = [(), (), (0,), (0,)]  # batch 1 holds no one's manager
    started: list[int] = []
    release = {i: asyncio.Event() for i in range(4)}

    async def send(payload: BulkPayload) -> BatchReceipt:
        i = batches.index(payload)
        started.append(i)
        await release[i].wait()
        return BatchReceipt()

    async def main() -> Stop | None:
        task = asyncio.create_task(
            send_window(batches, deps, [0, 1, 2, 3], send=send, on_ack=lambda *a: None, width=4)
        )
        await asyncio.sleep(0.01)
        assert started == [0, 1]  # the reports of batch 0's managers wait
        release[0].set()
        await asyncio.sleep(0.01)
        assert sorted(started) == [0, 1, 2, 3]  # batch 1 is still in flight: no level barrier
        for event in release.values():
            event.set()
        return await task

    assert asyncio.run(main()) is None


def test_a_stop_releases_the_batches_waiting_for_their_managers() -> None:
    batches = [_payload(i) for i in range(3)]
    started: list[int] = []

    async def send(payload: BulkPayload) -> BatchReceipt:
        i = batches.index(payload)
        started.append(i)
        await asyncio.sleep(0.01)
        if i == 0:
            raise QuotaExhaustedError("spent")
        return BatchReceipt()

    acked: list[int] = []
    stop = asyncio.run(
        asyncio.wait_for(
            send_window(
                batches,
                [(), (0,), (0,)],
                [0, 1, 2],
                send=send,
                on_ack=lambda i, r, s: acked.append(i),
                width=3,
            ),
            timeout=5,
        )
    )
    assert stop is not None
    assert (stop.kind, stop.batch) == ("waiting", 0)
    assert started == [0]  # the reports never went without their managers
    assert acked == []


def test_batches_acknowledged_by_an_earlier_call_are_no_wait() -> None:
    batches = [_payload(i) for i in range(3)]
    started: list[int] = []

    async def send(payload: BulkPayload) -> BatchReceipt:
        started.append(batches.index(payload))
        await asyncio.sleep(0)
        return BatchReceipt()

    deps = [(), (0,), (0, 1)]
    stop = asyncio.run(
        send_window(batches, deps, [1, 2], send=send, on_ack=lambda *a: None, width=2)
    )
    assert stop is None
    assert started == [1, 2]


def test_the_most_serious_stop_wins_and_batches_in_flight_finish() -> None:
    batches = [_payload(i) for i in range(4)]
    acked: list[int] = []

    async def send(payload: BulkPayload) -> BatchReceipt:
        await asyncio.sleep(0)
        if payload is batches[1]:
            raise QuotaExhaustedError("spent")
        if payload is batches[2]:
            raise PermissionDeniedError("403", status=403)
        return BatchReceipt()

    stop = asyncio.run(
        send_window(
            batches,
            [()] * 4,
            [0, 1, 2, 3],
            send=send,
            on_ack=lambda i, r, s: acked.append(i),
            width=4,
        )
    )
    assert stop is not None
    assert stop.kind == "blocked"
    assert stop.batch == 2
    assert 0 in acked
    assert 1 not in acked
    assert 2 not in acked


def test_an_error_of_another_kind_propagates_and_stops_the_others() -> None:
    batches = [_payload(i) for i in range(2)]

    async def send(payload: BulkPayload) -> BatchReceipt:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        asyncio.run(
            send_window(batches, [()] * 2, [0, 1], send=send, on_ack=lambda i, r, s: None, width=2)
        )


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (SystemicRefusalError("all refused"), "failed"),
        (AuthenticationError("401", status=401), "blocked"),
        (PermissionDeniedError("403", status=403), "blocked"),
        (NotFoundError("404", status=404), "blocked"),
        (ConfigError("no endpoint"), "blocked"),
        (QuotaExhaustedError("spent"), "waiting"),
        (ConcurrentRunError("lock lost"), "waiting"),
    ],
)
def test_each_error_maps_to_its_stop(error: Exception, kind: str) -> None:
    stop = stop_for(error, 3)
    assert stop is not None
    assert stop.kind == kind
    assert stop.batch == 3
    assert stop_for(KeyError("bug"), 3) is None


def test_a_worker_takes_no_batch_before_its_acknowledgement_is_journaled() -> None:
    """The acknowledgement's journal write holds only its own worker: the batch's reports
    go at once, the other workers keep sending, and at most ``width`` batches are ever in
    flight or acknowledged and not yet journaled (what a crash can make the run re-send)."""
    batches = [_payload(i) for i in range(6)]
    deps: list[tuple[int, ...]] = [(), (0,), (), (), (), ()]
    events: list[str] = []
    journaled = asyncio.Event()
    unjournaled: set[int] = set()
    in_flight: set[int] = set()
    most = 0

    async def send(payload: BulkPayload) -> BatchReceipt:
        i = batches.index(payload)
        nonlocal most
        in_flight.add(i)
        most = max(most, len(in_flight | unjournaled))
        events.append(f"send {i}")
        await asyncio.sleep(0)
        in_flight.discard(i)
        return BatchReceipt(request_id=str(i))

    async def journal(i: int) -> None:
        if i == 0:
            await journaled.wait()  # the first journal write is slow
        unjournaled.discard(i)
        events.append(f"journaled {i}")

    def on_ack(i: int, receipt: BatchReceipt, stopping: StopKind | None) -> Awaitable[None]:
        unjournaled.add(i)
        events.append(f"ack {i}")
        return journal(i)

    async def main() -> Stop | None:
        task = asyncio.create_task(
            send_window(batches, deps, list(range(6)), send=send, on_ack=on_ack, width=2)
        )
        while "ack 0" not in events or len([e for e in events if e.startswith("send")]) < 6:
            await asyncio.sleep(0)
        assert "journaled 0" not in events  # the rest went while batch 0's write waited
        journaled.set()
        return await task

    assert asyncio.run(main()) is None
    assert events.index("send 1") > events.index("ack 0")  # its manager's 202 first
    assert most <= 2
    assert sorted(e for e in events if e.startswith("journaled")) == [
        f"journaled {i}" for i in range(6)
    ]
