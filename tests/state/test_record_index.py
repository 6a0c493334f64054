"""The record index and payload file: round trips, merges, versions and conflicts."""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import IO, Any

import orjson
import pytest

from connector.errors import DocumentConflictError, StateError
from connector.state.base import Outcome, RecordEntry, RecordIndex
from connector.state.local import LocalStateStore
from connector.state.store import StateStore

from .helpers import fp, index, payload


def test_store_satisfies_protocol(store: StateStore) -> None:
    assert isinstance(store, StateStore)


def test_unknown_source_loads_empty(store: StateStore) -> None:
    idx = store.load_records("employees")
    assert len(idx) == 0
    assert idx.version is None
    assert store.get_payloads("employees", ["E1"]) == {}


def test_records_round_trip_with_payloads(store: StateStore) -> None:
    idx = index("employees", 50)
    idx.entries["E0003"].outcome = Outcome.FAILED.value
    idx.entries["E0003"].error_code = "AzureActiveDirectoryDuplicateUserPrincipalName"
    idx.entries["E0004"].sent_at = None
    idx.entries["E0004"].run_id = None
    payloads = {ext: payload(ext) for ext in idx.entries}
    version = store.save_records(idx, payloads=payloads)
    assert idx.version == version

    loaded = store.load_records("employees")
    assert loaded.version == version
    assert loaded.entries == idx.entries
    assert loaded.active_count() == sum(1 for i in range(50) if i % 7 != 0)
    got = store.get_payloads("employees", ["E0001", "E0049", "missing"])
    assert got == {"E0001": payloads["E0001"], "E0049": payloads["E0049"]}


def test_payload_merge_replaces_adds_and_drops(store: StateStore) -> None:
    idx = index("employees", 10)
    store.save_records(idx, payloads={ext: payload(ext) for ext in idx.entries})

    idx = store.load_records("employees")
    idx.entries["E0002"].fingerprint = fp(99)
    idx.entries["E0100"] = RecordEntry(fp(100))
    del idx.entries["E0005"]
    store.save_records(
        idx,
        payloads={"E0002": payload("E0002", "Manager"), "E0100": payload("E0100")},
        drop={"E0005"},
    )

    every = [f"E{i:04d}" for i in range(10)] + ["E0100"]
    got = store.get_payloads("employees", every)
    assert got["E0002"]["title"] == "Manager"
    assert got["E0001"]["title"] == "Engineer"
    assert got["E0100"] == payload("E0100")
    assert "E0005" not in got
    assert len(got) == 10
    assert store.load_records("employees").entries["E0002"].fingerprint == fp(99)


def test_sources_never_share_records(store: StateStore) -> None:
    store.save_records(index("employees", 3), payloads={"E0000": payload("E0000")})
    other = store.load_records("contractors")
    assert len(other) == 0
    assert store.get_payloads("contractors", ["E0000"]) == {}


def test_save_over_a_newer_version_is_refused(store: StateStore) -> None:
    store.save_records(index("employees", 3))
    first = store.load_records("employees")
    second = store.load_records("employees")
    first.entries["E0001"].outcome = Outcome.UPDATED.value
    store.save_records(first)
    second.entries["E0001"].outcome = Outcome.FAILED.value
    with pytest.raises(DocumentConflictError, match="employees"):
        store.save_records(second)
    assert store.load_records("employees").entries["E0001"].outcome == "updated"


def test_first_save_races_are_refused(store: StateStore) -> None:
    a = RecordIndex(source="employees", entries={"A": RecordEntry(fp(1))})
    b = RecordIndex(source="employees", entries={"B": RecordEntry(fp(2))})
    store.save_records(a)
    with pytest.raises(DocumentConflictError):
        store.save_records(b)
    assert set(store.load_records("employees").entries) == {"A"}


def test_failed_save_leaves_previous_state(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.save_records(index("employees", 5), payloads={"E0001": payload("E0001")})
    idx = store.load_records("employees")
    idx.entries.clear()

    def boom(*_a: object, **_k: object) -> int:
        raise OSError("disk full")

    monkeypatch.setattr("connector.state.store.merge_payloads", boom)
    with pytest.raises(OSError, match="disk full"):
        store.save_records(idx, payloads={"E0001": payload("E0001", "Changed")})
    monkeypatch.undo()
    after = store.load_records("employees")
    assert len(after) == 5
    assert store.get_payloads("employees", ["E0001"])["E0001"]["title"] == "Engineer"
    if isinstance(store, LocalStateStore):
        files = sorted(p.name for p in (store.root / "records" / "employees").iterdir())
        assert len([f for f in files if f.startswith(("index-", "payloads-"))]) == 2


def test_concurrent_saves_exactly_one_wins(store: StateStore) -> None:
    store.save_records(index("employees", 20))
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


def test_payloads_can_be_streamed(store: StateStore) -> None:
    idx = index("employees", 30)

    def stream() -> Iterator[tuple[str, dict[str, Any]]]:
        for ext in idx.entries:
            yield ext, payload(ext)

    store.save_records(idx, payloads=stream())
    idx = store.load_records("employees")
    store.save_records(idx, payloads=iter([("E0001", payload("E0001", "Lead"))]))
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
        source="employees", entries={e: RecordEntry(fp(i)) for i, e in enumerate(odd)}
    )
    store.save_records(idx, payloads={e: payload("X", e) for e in odd})
    loaded = store.load_records("employees")
    assert set(loaded.entries) == set(odd)
    store.save_records(loaded, payloads={"Zoë-1": payload("X", "new")}, drop=["tab\tid"])
    got = store.get_payloads("employees", odd)
    assert got["Zoë-1"]["title"] == "new"
    assert got["日本-7"]["title"] == "日本-7"
    assert "tab\tid" not in got
    assert len(got) == 4


def test_local_corrupt_index_is_a_state_error(tmp_path: Path) -> None:
    store = LocalStateStore(tmp_path)
    store.save_records(index("employees", 3))
    folder = tmp_path / "records" / "employees"
    index_file = next(folder.glob("index-*.jsonl.gz"))
    index_file.write_bytes(b"not gzip")
    with pytest.raises(StateError, match="corrupt"):
        store.load_records("employees")
    with pytest.raises(StateError, match="corrupt"):
        store.record_runs("employees", {"E0001"})


def test_a_save_whose_payload_file_vanished_meanwhile_is_a_conflict(store: StateStore) -> None:
    store.save_records(index("employees", 3), payloads={"E0001": payload("E0001")})
    idx = store.load_records("employees")
    # A concurrent save committed and removed the payload file this save would merge.
    [payloads] = store.backend.list("records/employees/payloads-")
    store.backend.delete_quietly(payloads)
    with pytest.raises(DocumentConflictError, match="employees"):
        store.save_records(idx, payloads={"E0002": payload("E0002")})
    assert store.load_records("employees").version == idx.version


def test_payloads_given_as_json_bytes_are_stored_as_they_are(store: StateStore) -> None:
    idx = index("employees", 3)
    raw = orjson.dumps(payload("E0002", "Lead"))
    store.save_records(idx, payloads=iter([("E0001", payload("E0001")), ("E0002", raw)]))
    got = store.get_payloads("employees", ["E0001", "E0002"])
    assert got["E0002"] == orjson.loads(raw)
    assert got["E0001"]["title"] == "Engineer"


def test_payloads_can_be_spooled_undecoded(store: StateStore) -> None:
    idx = index("employees", 5)
    store.save_records(idx, payloads={ext: payload(ext) for ext in idx.entries})
    seen: dict[str, bytes] = {}
    store.spool_payloads("employees", ["E0003", "E0001", "nobody"], seen.__setitem__)
    assert sorted(seen) == ["E0001", "E0003"]
    assert orjson.loads(seen["E0003"]) == payload("E0003")
    store.spool_payloads("employees", [], seen.__setitem__)
    store.spool_payloads("unknown", ["E0001"], seen.__setitem__)
    assert len(seen) == 2


def test_the_run_of_some_records_is_read_without_loading_the_index(store: StateStore) -> None:
    idx = index("employees", 20)
    idx.entries["E0004"].run_id = None
    store.save_records(idx)
    runs = store.record_runs("employees", {"E0001", "E0004", "missing"})
    assert runs == {"E0001": idx.entries["E0001"].run_id, "E0004": None}
    assert store.record_runs("contractors", {"E0001"}) == {}


def _save_during_next_read(
    monkeypatch: pytest.MonkeyPatch, store: StateStore, save: Callable[[], object]
) -> list[bool]:
    """Have ``save`` commit between the next reader's manifest read and its file open,
    as a concurrent run would: the file that manifest names is gone when it is opened.
    Returns a flag list that holds True once the save happened."""
    reader = store.backend.reader
    saved: list[bool] = []

    def racing(name: str) -> AbstractContextManager[IO[bytes] | None]:
        if not saved:
            saved.append(True)
            save()
        return reader(name)

    monkeypatch.setattr(store.backend, "reader", racing)
    return saved


def _newer(store: StateStore) -> Callable[[], object]:
    """A save of the employees source with new titles and E0002's run changed."""
    idx = store.load_records("employees")

    def save() -> object:
        idx.entries["E0002"].run_id = "run-2"
        new = {ext: payload(ext, "Lead") for ext in idx.entries}
        return store.save_records(idx, payloads=new)

    return save


def _saved_employees(store: StateStore) -> None:
    idx = index("employees", 4)
    store.save_records(idx, payloads={ext: payload(ext) for ext in idx.entries})


def test_loading_records_rereads_the_manifest_when_a_save_replaces_the_index_mid_read(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    _saved_employees(store)
    saved = _save_during_next_read(monkeypatch, store, _newer(store))
    loaded = store.load_records("employees")
    assert saved
    assert loaded.entries["E0002"].run_id == "run-2"
    monkeypatch.undo()
    assert loaded.version == store.load_records("employees").version


def test_record_runs_rereads_the_manifest_when_a_save_replaces_the_index_mid_read(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    _saved_employees(store)
    saved = _save_during_next_read(monkeypatch, store, _newer(store))
    assert store.record_runs("employees", {"E0001", "E0002"}) == {
        "E0001": "run-1",
        "E0002": "run-2",
    }
    assert saved


def test_getting_payloads_rereads_the_manifest_when_a_save_replaces_them_mid_read(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    _saved_employees(store)
    saved = _save_during_next_read(monkeypatch, store, _newer(store))
    got = store.get_payloads("employees", ["E0001", "E0003"])
    assert saved
    assert got == {"E0001": payload("E0001", "Lead"), "E0003": payload("E0003", "Lead")}


def test_spooling_payloads_rereads_the_manifest_when_a_save_replaces_them_mid_read(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    _saved_employees(store)
    saved = _save_during_next_read(monkeypatch, store, _newer(store))
    seen: list[tuple[str, bytes]] = []
    store.spool_payloads("employees", ["E0001", "E0003"], lambda ext, b: seen.append((ext, b)))
    assert saved
    assert sorted((ext, orjson.loads(b)) for ext, b in seen) == [
        ("E0001", payload("E0001", "Lead")),
        ("E0003", payload("E0003", "Lead")),
    ]


_READERS: dict[str, tuple[Callable[[StateStore], object], str]] = {
    "load_records": (lambda s: s.load_records("employees"), "records"),
    "record_runs": (lambda s: s.record_runs("employees", {"E0001"}), "records"),
    "get_payloads": (lambda s: s.get_payloads("employees", ["E0001"]), "payloads"),
    "spool_payloads": (lambda s: s.spool_payloads("employees", ["E0001"], print), "payloads"),
}


@pytest.mark.parametrize("reader", sorted(_READERS))
def test_readers_give_up_after_five_attempts_when_the_records_keep_changing(
    store: StateStore, monkeypatch: pytest.MonkeyPatch, reader: str
) -> None:
    _saved_employees(store)
    opened: list[str] = []

    def always_replaced(name: str) -> AbstractContextManager[IO[bytes] | None]:
        opened.append(name)
        return contextlib.nullcontext(None)

    monkeypatch.setattr(store.backend, "reader", always_replaced)
    read, what = _READERS[reader]
    message = f"{what} of source 'employees' keep changing while being read; retry"
    with pytest.raises(StateError, match=re.escape(message)):
        read(store)
    assert len(opened) == 5
