"""Session fixtures shared by every test folder: a private Azurite storage emulator.

``azurite`` starts the Azurite binary (``AZURITE_BIN``, default
``.venv/node/node_modules/.bin/azurite`` under the repository root) on free loopback
ports with a temporary ``--location``, waits until the blob endpoint answers and yields
a connection string for the well-known development account. A missing binary is a
failure with the command that installs it, never a skip.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

ROOT = Path(__file__).resolve().parents[1]

AZURITE_ACCOUNT = "devstoreaccount1"
# The fixed development key published in the Azurite documentation (not a secret).
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
AZURITE_INSTALL = "make .venv/node/node_modules/.bin/azurite"


def _free_ports(count: int) -> list[int]:
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def azurite_binary() -> str:
    """The Azurite executable to run, or a test failure saying how to install it."""
    configured = os.environ.get("AZURITE_BIN")
    candidate = configured or str(ROOT / ".venv" / "node" / "node_modules" / ".bin" / "azurite")
    if Path(candidate).is_file() or shutil.which(candidate):
        return candidate
    pytest.fail(
        f"Azurite is not installed (looked for {candidate!r}"
        f"{' from AZURITE_BIN' if configured else ''}). Install it with: {AZURITE_INSTALL}"
        " (needs Node.js/npm), or set AZURITE_BIN to an azurite executable.",
        pytrace=False,
    )


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=0.5):
            return True
    except urllib.error.HTTPError:
        return True  # any HTTP answer (400 for a bare account URL) means it is up
    except OSError:
        return False


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private Azurite on free loopback ports; yields its storage connection string."""
    binary = azurite_binary()
    blob_port, queue_port, table_port = _free_ports(3)
    location = tmp_path_factory.mktemp("azurite")
    cmd = [
        binary,
        "--silent",
        "--disableTelemetry",
        "--skipApiVersionCheck",
        "--location",
        str(location),
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        str(blob_port),
        "--queueHost",
        "127.0.0.1",
        "--queuePort",
        str(queue_port),
        "--tableHost",
        "127.0.0.1",
        "--tablePort",
        str(table_port),
    ]
    log = (location / "azurite.log").open("wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    blob_url = f"http://127.0.0.1:{blob_port}/{AZURITE_ACCOUNT}"
    try:
        deadline = time.monotonic() + 30
        while not _answers(blob_url):
            if proc.poll() is not None:
                log.flush()
                output = (location / "azurite.log").read_text(errors="replace")[-2000:]
                pytest.fail(f"Azurite exited with code {proc.returncode}:\n{output}")
            if time.monotonic() > deadline:
                pytest.fail(f"Azurite did not answer on {blob_url} within 30 s")
            time.sleep(0.1)
        yield (
            "DefaultEndpointsProtocol=http;"
            f"AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint={blob_url};"
            f"QueueEndpoint=http://127.0.0.1:{queue_port}/{AZURITE_ACCOUNT};"
            f"TableEndpoint=http://127.0.0.1:{table_port}/{AZURITE_ACCOUNT};"
        )
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


# Hypothesis: deterministic everywhere (the same examples on every run and machine, no
# example database), no per-example deadline on shared CPUs. HYPOTHESIS_PROFILE=dev for
# random exploration while working.
settings.register_profile("ci", derandomize=True, database=None, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
