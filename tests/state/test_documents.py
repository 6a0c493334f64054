"""JSON documents: ETag-conditional writes, listing by prefix, deletes and safe keys."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from connector.errors import DocumentConflictError, StateError
from connector.state.local import LocalStateStore
from connector.state.store import StateStore


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


def test_local_documents_are_plain_json_files(tmp_path: Path) -> None:
    store = LocalStateStore(tmp_path)
    store.put_document("runs/employees/r1.json", {"status": "done"})
    path = tmp_path / "documents" / "runs" / "employees" / "r1.json"
    assert path.read_bytes().startswith(b"{")
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_listing_with_an_odd_prefix_stays_inside_the_store(store: StateStore) -> None:
    store.put_document("runs/employees/a.json", {"k": 1})
    store.write_artifact("employees/r1/report.json", b"{}")
    for prefix in ("../", "./", "/", "runs/../runs/"):
        assert store.list_documents(prefix) == []
        assert store.list_artifacts(prefix) == []
    assert store.list_documents("runs/emp") == ["runs/employees/a.json"]
    assert store.list_artifacts("employees/r1/rep") == ["employees/r1/report.json"]
