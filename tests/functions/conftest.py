"""Fixtures for the Functions app tests: Azurite, a fresh drop zone, app settings."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # function_app.py lives at the repository root
    sys.path.insert(0, str(ROOT))
_ACCOUNT = "devstoreaccount1"
_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _azurite_bin() -> str:
    candidate = os.environ.get("AZURITE_BIN") or str(
        ROOT / ".venv" / "node" / "node_modules" / ".bin" / "azurite"
    )
    if not Path(candidate).exists() and not shutil.which(candidate):
        pytest.fail(
            f"Azurite not found at {candidate}: run `make unit` (installs it) or set AZURITE_BIN"
        )
    return candidate


@pytest.fixture(scope="session")
def functions_azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private Azurite (blob only) on a free loopback port; yields its connection string."""
    port = _free_port()
    workdir = tmp_path_factory.mktemp("azurite-functions")
    proc = subprocess.Popen(
        [
            _azurite_bin(),
            "--silent",
            "--disableTelemetry",
            "--skipApiVersionCheck",
            "--location",
            str(workdir),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(port),
            "--queueHost",
            "127.0.0.1",
            "--queuePort",
            str(_free_port()),
            "--tableHost",
            "127.0.0.1",
            "--tablePort",
            str(_free_port()),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail("Azurite did not start")
            time.sleep(0.05)
    try:
        yield (
            f"DefaultEndpointsProtocol=http;AccountName={_ACCOUNT};AccountKey={_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{port}/{_ACCOUNT};"
        )
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def blob_service(functions_azurite: str) -> Iterator[BlobServiceClient]:
    """A BlobServiceClient on Azurite, emptied after each test (containers are fixed names)."""
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(functions_azurite)
    yield service
    for container in service.list_containers():
        client = service.get_container_client(container.name)
        for blob in client.list_blobs():
            client.delete_blob(blob.name)
    service.close()


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:8]
