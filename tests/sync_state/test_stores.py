"""One suite, two state stores: the local directory and Azure Blob Storage (on Azurite)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from connector.clock import FakeClock
from connector.errors import ConcurrentRunError, DocumentConflictError, StateError
from connector.pacing import DailyBudget
from connector.state import Outcome, RecordEntry, RecordIndex, StateStore, StoreCallBudget
from connector.state.blob import BlobStateStore
from connector.state.local import LocalStateStore


def _fp(i: int) -> bytes:
    return i.to_bytes(16, "big")


def _payload(ext: str, title: str = "Engineer") -> dict[str, Any]:
    return {"externalId": ext, "userName": f"{ext.lower()}@example.test", "title": title}


@pytest.fixture(params=["local", pytest.param("blob", marks=pytest.mark.azurite)])
def store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[LocalStateStore | BlobStateStore]:
    if request.param == "local":
        yield LocalStateStore(tmp_path / "state")
        return
    conn = request.getfixturevalue("azurite")
    suffix = uuid.uuid4().hex[:12]
    blob = BlobStateStore.from_connection_string(
        conn, state_container=f"state-{suffix}", reports_container=f"reports-{suffix}"
    )
    yield blob
    blob.close()


def _index(source: str, n: int, *, run: str = "run-1") -> RecordIndex:
    idx = RecordIndex(source=source)
    for i in range(n):
        idx.entries[f"E{i:04d}"] = RecordEntry(
            _fp(i),
            active=i % 7 != 0,
            outcome=Outcome.CREATED.value,
            sent_at=1_700_000_000 + i,
            run_id=run,
        )
    return idx


def test_store_satisfies_protocol(store: StateStore) -> None:
    assert isinstance(store, StateStore)


# -- records ---------------------------------------------------------------------------


def test_unknown_source_loads_empty(store: StateStore) -> None:
    idx = store.load_records("employees")
    assert len(idx) == 0
    assert idx.version is None
    assert store.get_payloads("employees", ["E1"]) == {}


def test_records_round_trip_with_payloads(store: StateStore) -> None:
    idx = _index("employees", 50)
    idx.entries["E0003"].outcome = Outcome.FAILED.value
    idx.entries["E0003"].error_code = "AzureActiveDirectoryDuplicateUserPrincipalName"
    idx.entries["E0004"].sent_at = None
    idx.entries["E0004"].run_id = None
    payloads = {ext: _payload(ext) for ext in idx.entries}
    version = store.save_records(idx, payloads=payloads)
    assert idx.version == version

    loaded = store.load_records("employees")
    assert loaded.version == version
    assert loaded.entries == idx.entries
    assert loaded.active_count() == sum(1 for i in range(50) if i % 7 != 0)
    got = store.get_payloads("employees", ["E0001", "E0049", "missing"])
    assert got == {"E0001": payloads["E0001"], "E0049": payloads["E0049"]}


def test_payload_merge_replaces_adds_and_drops(store: StateStore) -> None:
    idx = _index("employees", 10)
    store.save_records(idx, payloads={ext: _payload(ext) for ext in idx.entries})

    idx = store.load_records("employees")
    idx.entries["E0002"].fingerprint = _fp(99)
    idx.entries["E0100"] = RecordEntry(_fp(100))
    del idx.entries["E0005"]
    store.save_records(
        idx,
        payloads={"E0002": _payload("E0002", "Manager"), "E0100": _payload("E0100")},
        drop={"E0005"},
    )

    every = [f"E{i:04d}" for i in range(10)] + ["E0100"]
    got = store.get_payloads("employees", every)
    assert got["E0002"]["title"] == "Manager"
    assert got["E0001"]["title"] == "Engineer"
    assert got["E0100"] == _payload("E0100")
    assert "E0005" not in got
    assert len(got) == 10
    assert store.load_records("employees").entries["E0002"].fingerprint == _fp(99)


def test_sources_never_share_records(store: StateStore) -> None:
    store.save_records(_index("employees", 3), payloads={"E0000": _payload("E0000")})
    other = store.load_records("contractors")
    assert len(other) == 0
    assert store.get_payloads("contractors", ["E0000"]) == {}


def test_save_over_a_newer_version_is_refused(store: StateStore) -> None:
    store.save_records(_index("employees", 3))
    first = store.load_records("employees")
    second = store.load_records("employees")
    first.entries["E0001"].outcome = Outcome.UPDATED.value
    store.save_records(first)
    second.entries["E0001"].outcome = Outcome.FAILED.value
    with pytest.raises(DocumentConflictError, match="employees"):
        store.save_records(second)
    assert store.load_records("employees").entries["E0001"].outcome == "updated"


def test_first_save_races_are_refused(store: StateStore) -> None:
    a = RecordIndex(source="employees", entries={"A": RecordEntry(_fp(1))})
    b = RecordIndex(source="employees", entries={"B": RecordEntry(_fp(2))})
    store.save_records(a)
    with pytest.raises(DocumentConflictError):
        store.save_records(b)
    assert set(store.load_records("employees").entries) == {"A"}


def test_failed_save_leaves_previous_state(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.save_records(_index("employees", 5), payloads={"E0001": _payload("E0001")})
    idx = store.load_records("employees")
    idx.entries.clear()

    def boom(*_a: object, **_k: object) -> int:
        raise OSError("disk full")

    local = isinstance(store, LocalStateStore)
    module = "connector.state.local" if local else "connector.state.blob"
    monkeypatch.setattr(f"{module}.merge_payloads", boom)
    with pytest.raises(OSError, match="disk full"):
        store.save_records(idx, payloads={"E0001": _payload("E0001", "Changed")})
    monkeypatch.undo()
    after = store.load_records("employees")
    assert len(after) == 5
    assert store.get_payloads("employees", ["E0001"])["E0001"]["title"] == "Engineer"
    if isinstance(store, LocalStateStore):
        files = sorted(p.name for p in (store.root / "records" / "employees").iterdir())
        assert len([f for f in files if f.startswith(("index-", "payloads-"))]) == 2


def test_concurrent_saves_exactly_one_wins(store: StateStore) -> None:
    store.save_records(_index("employees", 20))
    loaded = [store.load_records("employees") for _ in range(4)]
    results: list[str] = []
    barrier = threading.Barrier(len(loaded))

    def save(idx: RecordIndex) -> None:
        barrier.wait()
        try:
            store.save_records(idx)
            results.append("ok")
        except DocumentConflictError:
            results.append("conflict")

    threads = [threading.Thread(target=save, args=(i,)) for i in loaded]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["conflict", "conflict", "conflict", "ok"]
    assert len(store.load_records("employees")) == 20


def test_bad_source_names_are_refused(store: StateStore) -> None:
    with pytest.raises(StateError, match="not allowed"):
        store.load_records("../etc")
    with pytest.raises(StateError, match="not allowed"):
        store.lock("a/b").__enter__()


# -- documents -------------------------------------------------------------------------


def test_documents_with_optimistic_concurrency(store: StateStore) -> None:
    key = "runs/employees/r1.json"
    assert store.get_document(key) is None
    etag1 = store.put_document(key, {"status": "received"}, if_none_match=True)
    with pytest.raises(DocumentConflictError, match="already exists"):
        store.put_document(key, {"status": "other"}, if_none_match=True)

    doc, etag = store.get_document(key) or ({}, "")
    assert doc == {"status": "received"}
    assert etag == etag1

    etag2 = store.put_document(key, {"status": "planned"}, if_match=etag1)
    assert etag2 != etag1
    with pytest.raises(DocumentConflictError):
        store.put_document(key, {"status": "held"}, if_match=etag1)
    assert store.get_document(key) == ({"status": "planned"}, etag2)

    with pytest.raises(DocumentConflictError):
        store.put_document("runs/employees/none.json", {"a": 1}, if_match=etag2)


def test_documents_list_by_prefix_and_delete(store: StateStore) -> None:
    for key in ("runs/employees/a.json", "runs/employees/b.json", "runs/contractors/c.json"):
        store.put_document(key, {"k": key})
    store.put_document("approvals/employees/a", {"by": "ops"})
    assert store.list_documents("runs/employees/") == [
        "runs/employees/a.json",
        "runs/employees/b.json",
    ]
    assert len(store.list_documents()) == 4
    got = store.get_document("runs/employees/a.json")
    assert got is not None
    with pytest.raises(DocumentConflictError):
        store.delete_document("runs/employees/a.json", if_match='"stale"')
    assert store.delete_document("runs/employees/a.json", if_match=got[1]) is True
    assert store.delete_document("runs/employees/a.json") is False
    assert store.list_documents("runs/") == ["runs/contractors/c.json", "runs/employees/b.json"]


def test_document_keys_cannot_escape(store: StateStore) -> None:
    for key in ("../x.json", "/abs.json", "runs/../../x", ""):
        with pytest.raises(StateError, match="not allowed"):
            store.put_document(key, {})


def test_concurrent_read_modify_write_loses_nothing(store: StateStore) -> None:
    key = "runs/employees/counter.json"
    store.put_document(key, {"n": 0})

    def bump() -> None:
        for _ in range(5):
            while True:
                got = store.get_document(key)
                assert got is not None
                doc, etag = got
                try:
                    store.put_document(key, {"n": doc["n"] + 1}, if_match=etag)
                    break
                except DocumentConflictError:
                    continue

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert (store.get_document(key) or ({}, ""))[0] == {"n": 20}


# -- lock ------------------------------------------------------------------------------


def test_lock_is_exclusive_per_source(store: StateStore) -> None:
    with store.lock("employees", owner="run-a") as held:
        assert held.source == "employees"
        assert held.owner == "run-a"
        with pytest.raises(ConcurrentRunError, match="employees"), store.lock("employees"):
            pass
        with store.lock("contractors"):
            pass
        held.renew()
    with store.lock("employees", owner="run-b"):
        pass


def test_lock_released_when_the_run_fails(store: StateStore) -> None:
    with pytest.raises(RuntimeError), store.lock("employees"):
        raise RuntimeError("run crashed")
    with store.lock("employees"):
        pass


def test_lock_excludes_other_threads(store: StateStore) -> None:
    outcomes: list[str] = []
    barrier = threading.Barrier(4)
    refused = threading.Semaphore(0)
    release = threading.Event()

    def run() -> None:
        barrier.wait()
        try:
            with store.lock("employees"):
                outcomes.append("held")
                release.wait(30)
        except ConcurrentRunError:
            outcomes.append("refused")
            refused.release()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for _ in range(3):  # the winner holds the lock until all three others were refused
        assert refused.acquire(timeout=30)
    release.set()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["held", "refused", "refused", "refused"]


# -- artifacts -------------------------------------------------------------------------


def test_artifacts(store: StateStore) -> None:
    where = store.write_artifact(
        "employees/r1/report.html", b"<html></html>", content_type="text/html"
    )
    assert "employees/r1/report.html" in where
    assert store.artifact_location("employees/r1/report.html") == where
    store.write_artifact("employees/r1/failures.csv", b"externalId\n")
    store.write_artifact("contractors/r2/report.json", b"{}")
    assert store.read_artifact("employees/r1/report.html") == b"<html></html>"
    assert store.list_artifacts("employees/") == [
        "employees/r1/failures.csv",
        "employees/r1/report.html",
    ]
    with pytest.raises(StateError, match="no report file"):
        store.read_artifact("employees/r9/report.html")


# -- call counts -----------------------------------------------------------------------


def test_call_counts_add_and_prune(store: StateStore) -> None:
    assert store.load_call_counts() == {}
    assert store.add_call_counts({"2026-01-01T00": 3}) == {"2026-01-01T00": 3}
    store.add_call_counts({"2026-01-01T00": 2, "2026-01-02T05": 1})
    assert store.load_call_counts() == {"2026-01-01T00": 5, "2026-01-02T05": 1}
    store.add_call_counts({}, prune=["2026-01-01T00"])
    assert store.load_call_counts() == {"2026-01-02T05": 1}


def test_concurrent_call_counts_lose_nothing(store: StateStore) -> None:
    def work() -> None:
        for _ in range(5):
            store.add_call_counts({"2026-01-01T00": 1})

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.load_call_counts() == {"2026-01-01T00": 20}


def test_daily_budget_on_the_store_counts_concurrent_runs(store: StateStore) -> None:
    import asyncio

    clock = FakeClock(datetime(2026, 3, 1, 9, 30, tzinfo=UTC))

    async def scenario() -> None:
        a = DailyBudget(10, StoreCallBudget(store), clock=clock)
        b = DailyBudget(10, StoreCallBudget(store), clock=clock)
        assert await a.try_acquire(3)
        assert await b.try_acquire(4)  # b loads after a saved: it starts from 3
        assert await a.try_acquire(1)
        # A third run sees every call made by the other two.
        c = DailyBudget(10, StoreCallBudget(store), clock=clock)
        assert await c.used() == 8
        assert not await c.try_acquire(3)
        clock.advance(timedelta(hours=25).total_seconds())
        assert await c.try_acquire(3)

    asyncio.run(scenario())
    counts = store.load_call_counts()
    assert counts.get("2026-03-02T10") == 3
    assert "2026-03-01T09" not in counts  # pruned once out of the window


# -- local only ------------------------------------------------------------------------


def test_local_stale_lock_is_taken_over(tmp_path: Path) -> None:
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    a = LocalStateStore(tmp_path, clock=clock, lock_ttl=timedelta(minutes=5), heartbeat=False)
    b = LocalStateStore(tmp_path, clock=clock, lock_ttl=timedelta(minutes=5), heartbeat=False)
    with a.lock("employees", owner="crashed") as held_a:
        clock.advance(299)
        with pytest.raises(ConcurrentRunError, match="crashed"), b.lock("employees"):
            pass
        clock.advance(2)  # past the TTL: the holder stopped renewing
        with b.lock("employees", owner="next"):
            with pytest.raises(ConcurrentRunError, match="taken over"):
                held_a.renew()
            assert (tmp_path / "locks" / "employees.lock").exists()
        assert not (tmp_path / "locks" / "employees.lock").exists()
    # a's exit must not remove someone else's lock file (there is none now either)
    with b.lock("employees"):
        pass


def test_local_renew_keeps_the_lock_alive(tmp_path: Path) -> None:
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    a = LocalStateStore(tmp_path, clock=clock, lock_ttl=timedelta(minutes=5), heartbeat=False)
    with a.lock("employees") as held:
        for _ in range(3):
            clock.advance(200)
            held.renew()
        with pytest.raises(ConcurrentRunError), a.lock("employees"):
            pass


def test_local_heartbeat_renews_a_held_lock(tmp_path: Path) -> None:
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    a = LocalStateStore(
        tmp_path, clock=clock, lock_ttl=timedelta(minutes=5), heartbeat_interval=0.01
    )
    b = LocalStateStore(tmp_path, clock=clock, lock_ttl=timedelta(minutes=5), heartbeat=False)
    path = tmp_path / "locks" / "employees.lock"

    def expires() -> str:
        return str(orjson.loads(path.read_bytes())["expires_at"])

    with a.lock("employees"):
        first = expires()
        clock.advance(240)
        renewed = threading.Event()
        for _ in range(3000):  # the heartbeat thread rewrites the lock file
            if expires() != first:
                renewed.set()
                break
            renewed.wait(0.01)
        assert renewed.is_set()
        clock.advance(240)  # 8 minutes after acquiring: still held thanks to the heartbeat
        with pytest.raises(ConcurrentRunError), b.lock("employees"):
            pass


def test_local_garbage_lock_file_counts_as_stale(tmp_path: Path) -> None:
    store = LocalStateStore(tmp_path, heartbeat=False)
    (tmp_path / "locks").mkdir(exist_ok=True)
    (tmp_path / "locks" / "employees.lock").write_bytes(b"\x00half")
    with store.lock("employees"):
        pass


def test_local_corrupt_index_is_a_state_error(tmp_path: Path) -> None:
    store = LocalStateStore(tmp_path)
    store.save_records(_index("employees", 3))
    folder = tmp_path / "records" / "employees"
    index_file = next(folder.glob("index-*.jsonl.gz"))
    index_file.write_bytes(b"not gzip")
    with pytest.raises(StateError, match="corrupt"):
        store.load_records("employees")


def test_local_documents_are_plain_json_files(tmp_path: Path) -> None:
    store = LocalStateStore(tmp_path)
    store.put_document("runs/employees/r1.json", {"status": "done"})
    path = tmp_path / "documents" / "runs" / "employees" / "r1.json"
    assert path.read_bytes().startswith(b"{")
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_payloads_can_be_streamed(store: StateStore) -> None:
    idx = _index("employees", 30)

    def stream() -> Iterator[tuple[str, dict[str, Any]]]:
        for ext in idx.entries:
            yield ext, _payload(ext)

    store.save_records(idx, payloads=stream())
    idx = store.load_records("employees")
    store.save_records(idx, payloads=iter([("E0001", _payload("E0001", "Lead"))]))
    got = store.get_payloads("employees", list(idx.entries))
    assert len(got) == 30
    assert got["E0001"]["title"] == "Lead"
    assert got["E0002"]["title"] == "Engineer"

    idx = store.load_records("employees")
    with pytest.raises(ValueError, match="twice"):
        store.save_records(idx, payloads=iter([("E1", {}), ("E1", {})]))


def test_unusual_external_ids_round_trip(store: StateStore) -> None:
    odd = ["Zoë-1", "tab\tid", 'quote"id', "日本-7", "line\nbreak"]
    idx = RecordIndex(
        source="employees", entries={e: RecordEntry(_fp(i)) for i, e in enumerate(odd)}
    )
    store.save_records(idx, payloads={e: _payload("X", e) for e in odd})
    loaded = store.load_records("employees")
    assert set(loaded.entries) == set(odd)
    store.save_records(loaded, payloads={"Zoë-1": _payload("X", "new")}, drop=["tab\tid"])
    got = store.get_payloads("employees", odd)
    assert got["Zoë-1"]["title"] == "new"
    assert got["日本-7"]["title"] == "日本-7"
    assert "tab\tid" not in got
    assert len(got) == 4


def test_local_heartbeat_retries_a_failed_renewal_before_giving_up(tmp_path: Path) -> None:
    store = LocalStateStore(tmp_path, lock_ttl=timedelta(minutes=5), heartbeat=False)
    with store.lock("employees") as held:
        real = store._renew_lock
        failures = {"left": 2}

        def flaky(source: str, token: str) -> bool:
            if failures["left"] > 0:
                failures["left"] -= 1
                raise OSError("disk hiccup")
            return real(source, token)

        store._renew_lock = flaky  # type: ignore[method-assign]
        assert held._renew_with_retries(0.01)  # type: ignore[attr-defined]
        assert not held.lost
        assert failures["left"] == 0


def test_local_heartbeat_marks_the_lock_lost_when_renewal_keeps_failing(tmp_path: Path) -> None:
    store = LocalStateStore(tmp_path, lock_ttl=timedelta(minutes=5), heartbeat=False)
    with store.lock("employees") as held:

        def broken(source: str, token: str) -> bool:
            raise OSError("disk gone")

        store._renew_lock = broken  # type: ignore[method-assign]
        assert not held._renew_with_retries(0.01)  # type: ignore[attr-defined]
        assert held.lost


def test_local_lock_taken_over_is_lost_at_once(tmp_path: Path) -> None:
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    a = LocalStateStore(tmp_path, clock=clock, lock_ttl=timedelta(minutes=5), heartbeat=False)
    b = LocalStateStore(tmp_path, clock=clock, lock_ttl=timedelta(minutes=5), heartbeat=False)
    with a.lock("employees") as held:
        clock.advance(301)
        with b.lock("employees", owner="next"):
            assert not held._renew_with_retries(0.01)  # type: ignore[attr-defined]
            assert held.lost
