"""One suite, two backends: every ``store`` test runs on a local directory and on Azure
Blob Storage (Azurite, started once per session by the root conftest)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from connector.state.blob import BlobStateStore
from connector.state.local import LocalStateStore


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
