"""A process that lost its source's lock stops sending and writes nothing more."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from connector.scim import BulkPayload
from connector.state.local import LocalStateStore
from connector.sync.journal_doc import journal_to_doc
from connector.sync.targets import BatchReceipt
from connector.sync.waiting import WaitingReason
from tests.sync.fakes import FakeTarget, people
from tests.sync.world import World


class _LosingStore(LocalStateStore):
    """The lock is reported lost once ``lose_after`` journal-visible sends happened."""

    lose: bool = False

    def lock(self, source: str, *, owner: str | None = None) -> Any:
        inner = super().lock(source, owner=owner)
        store = self

        class Wrapped:
            def __enter__(self) -> Any:
                self.held = inner.__enter__()
                return self

            def __exit__(self, *exc: Any) -> Any:
                return inner.__exit__(*exc)

            @property
            def lost(self) -> bool:
                return store.lose

            source = property(lambda self: self.held.source)
            owner = property(lambda self: self.held.owner)

            def renew(self) -> None:
                self.held.renew()

        return Wrapped()


def test_lost_lock_stops_sending_and_writing(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.store = _LosingStore(tmp_path / "state", clock=w.clock, heartbeat=False)
    w.engine = w.new_engine(window=1)
    real_send = w.service.target

    def target(src: Any) -> Any:
        t = real_send(src)
        inner = t.send

        async def send(payload: Any) -> Any:
            out = await inner(payload)
            if len(w.service.calls) == 2:
                w.store.lose = True  # type: ignore[attr-defined]
            return out

        t.send = send  # type: ignore[method-assign]
        return t

    w.engine.targets = target
    run = w.sync("hr_20260302.csv", people(250))  # 5 batches
    assert run.waiting_reason is WaitingReason.LOCK_LOST
    assert len(w.service.calls) == 2
    doc = journal_to_doc(w.engine.get_run(run.run_id))
    assert len(doc["batches"]) == 1  # the second ack was not written: the lock was gone


def test_no_reports_are_written_from_a_journal_whose_lock_was_lost(tmp_path: Path) -> None:
    w = World(tmp_path)
    held: list[Any] = []
    real_lock = w.store.lock

    @contextmanager
    def capturing(source: str, *, owner: str | None = None) -> Iterator[Any]:
        with real_lock(source, owner=owner) as lock:
            held.append(lock)
            yield lock

    w.store.lock = capturing  # type: ignore[method-assign]
    real_send = FakeTarget.send

    async def losing(self: FakeTarget, payload: BulkPayload) -> BatchReceipt:
        receipt = await real_send(self, payload)
        held[-1].lost = True  # e.g. renewals stuck: another instance may hold it now
        return receipt

    FakeTarget.send = losing  # type: ignore[method-assign]
    try:
        run = w.sync("hr_20260302.csv", people(120))
    finally:
        FakeTarget.send = real_send  # type: ignore[method-assign]
    assert run.waiting_reason is WaitingReason.LOCK_LOST
    assert w.store.list_artifacts(f"employees/{run.run_id}/report") == []


def test_a_journal_written_by_a_taker_stops_the_holder_as_a_lost_lock(tmp_path: Path) -> None:
    """The lease was broken (or lapsed) and another run took the source and wrote the
    journal before this holder's heartbeat noticed: the holder's next journal write
    conflicts. It stops as for any lost lock (waiting ``lock_lost``, nothing more sent
    or written, no report), instead of failing the invocation with a conflict."""
    w = World(tmp_path)
    w.engine = w.new_engine(window=1)
    real_send = FakeTarget.send
    taken: list[str] = []

    async def taken_over(self: FakeTarget, payload: BulkPayload) -> BatchReceipt:
        receipt = await real_send(self, payload)
        if not taken:
            [key] = w.store.list_documents("runs/employees/")
            doc, etag = w.store.get_document(key)  # type: ignore[misc]
            doc["updatedAt"] = "2026-03-02T06:01:00+00:00"  # the taker's write
            w.store.put_document(key, doc, if_match=etag)
            taken.append(key)
        return receipt

    FakeTarget.send = taken_over  # type: ignore[method-assign]
    try:
        run = w.sync("hr_20260302.csv", people(250))  # 5 batches, one at a time
    finally:
        FakeTarget.send = real_send  # type: ignore[method-assign]
    assert run.waiting_reason is WaitingReason.LOCK_LOST
    assert len(w.service.calls) == 1  # nothing sent after the conflict
    assert w.store.list_artifacts(f"employees/{run.run_id}/report") == []
