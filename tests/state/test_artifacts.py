"""Report artifacts: written, read back, listed, located."""

from __future__ import annotations

import pytest

from connector.errors import StateError
from connector.state.store import StateStore


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


def test_large_artifacts_are_written_and_read_as_streams(store: StateStore) -> None:
    with store.artifact_writer("employees/r1/plan.jsonl.gz") as out:
        for k in range(1000):
            out.write(b"line %d\n" % k)
    with store.artifact_reader("employees/r1/plan.jsonl.gz") as src:
        lines = src.read().splitlines()
    assert lines[0] == b"line 0"
    assert len(lines) == 1000
    assert store.read_artifact("employees/r1/plan.jsonl.gz").startswith(b"line 0\n")
    with (
        pytest.raises(StateError, match="no report file"),
        store.artifact_reader("employees/r9/plan.jsonl.gz"),
    ):
        pass


def test_a_streamed_artifact_replaces_the_old_one_only_when_complete(store: StateStore) -> None:
    store.write_artifact("employees/r1/report.html", b"old", content_type="text/html")

    def half_written() -> None:
        with store.artifact_writer("employees/r1/report.html", content_type="text/html") as out:
            out.write(b"<!DOCTYPE html> half")
            raise RuntimeError("renderer failed")

    with pytest.raises(RuntimeError):
        half_written()
    assert store.read_artifact("employees/r1/report.html") == b"old"
    assert store.list_artifacts("employees/") == ["employees/r1/report.html"]
    with store.artifact_writer("employees/r1/report.html", content_type="text/html") as out:
        out.write(b"<!DOCTYPE html>")
        out.write(b"<p>new</p>")
    assert store.read_artifact("employees/r1/report.html") == b"<!DOCTYPE html><p>new</p>"


def test_a_streamed_blob_artifact_keeps_its_content_type(store: StateStore) -> None:
    container = getattr(store.reports, "container", None)
    if container is None:  # a local folder keeps no content type
        return
    with store.artifact_writer("employees/r1/report.html", content_type="text/html") as out:
        out.write(b"<!DOCTYPE html>")
    props = container.get_blob_client("employees/r1/report.html").get_blob_properties()
    assert props.content_settings.content_type == "text/html"
