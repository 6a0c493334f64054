"""Fixtures for the Functions app tests: Azurite, a fresh drop zone, app settings."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from benchmarks.emuworld import JOB, MAPPING, SP
from benchmarks.host_binding import trigger_blob

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient

    from connector.clock import FakeClock
    from connector.emulator.server import RunningEmulator
    from connector.functions.runtime import Runtime

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # function_app.py lives at the repository root
    sys.path.insert(0, str(ROOT))
_ACCOUNT = "devstoreaccount1"
SP2 = "0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e"
JOB2 = "API2AAD.0a1b2c3d4e5f4a3b8c7d6e5f4a3b2c1d.1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f"
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


# -- the Functions app against Azurite and the emulator -------------------------------------


def sources_yaml(*, second: bool = False, **thresholds: Any) -> str:
    th = "".join(f"\n      {k}: {v}" for k, v in thresholds.items())
    text = f"""
reconciliation: {{deadline: 2h, skew: 5m}}
sources:
  - name: employees
    match: employees/
    mapping: {MAPPING}
    service_principal_id: {SP}
    job_id: {JOB}
    thresholds:{th or " {}"}
"""
    if second:
        text += f"""  - name: contractors
    match: contractors/
    mapping: {MAPPING}
    service_principal_id: {SP2}
    job_id: {JOB2}
"""
    return text


def extract_bytes(tmp: Path, rows: int, seed: int) -> bytes:
    from connector.sample import generate_extract

    path = tmp / f"x{seed}.csv"
    generate_extract(path, rows, seed=seed)
    return path.read_bytes()


@dataclass
class World:
    """The app as the host runs it, with a FakeClock shared by the engine and the emulator."""

    emu: RunningEmulator
    clock: FakeClock
    service: BlobServiceClient
    runtime: Runtime

    # -- what the host would do ------------------------------------------------------

    def drop(self, name: str, data: bytes) -> None:
        """HR uploads a file (the Event Grid event follows: call :meth:`deliver`)."""
        self.service.get_blob_client("incoming", name).upload_blob(data, overwrite=True)

    def deliver(self, name: str, data: bytes | None = None) -> None:
        """The host delivers the BlobCreated event to ``ingest_extract`` (the blob's name:
        the function reads the bytes itself, so ``data`` is not passed on)."""
        import function_app

        function_app.ingest_extract(trigger_blob(name))
        self.emu.wait_idle()

    def drop_and_deliver(self, name: str, data: bytes) -> None:
        self.drop(name, data)
        self.deliver(name, data)

    def tick(self, minutes: float = 15) -> None:
        """Time passes, then the timer fires."""
        from azure.functions.timer import TimerRequest

        import function_app

        self.clock.advance(minutes * 60)
        function_app.reconcile(TimerRequest(past_due=False))
        self.emu.wait_idle()

    def health(self) -> tuple[int, dict[str, Any]]:
        import orjson
        from azure.functions import HttpRequest

        import function_app

        req = HttpRequest(method="GET", url="/api/health", body=b"", headers={})
        resp = function_app.health(req)
        return resp.status_code, orjson.loads(resp.get_body())

    # -- what a test looks at ---------------------------------------------------------

    def names(self, container: str) -> set[str]:
        return {b.name for b in self.service.get_container_client(container).list_blobs()}

    def read(self, container: str, name: str) -> bytes:
        return bytes(self.service.get_blob_client(container, name).download_blob().readall())

    def runs(self, source: str = "employees") -> list[Any]:
        return self.runtime.engine.list_runs(source)

    def bulk_calls(self) -> list[Any]:
        return [c for c in self.emu.calls() if c.status == 202]


@pytest.fixture
def make_world(
    functions_azurite: str,
    blob_service: BlobServiceClient,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Callable[..., contextlib.AbstractContextManager[World]]]:
    from connector.clock import FakeClock
    from connector.emulator.config import EmulatorConfig, JobConfig
    from connector.emulator.server import run_emulator
    from connector.functions import runtime as runtime_module
    from connector.functions import telemetry
    from connector.functions.settings import APP_SETTING_NAMES, load_settings

    @contextlib.contextmanager
    def make(
        *,
        budget: int | None = None,
        emulator: dict[str, Any] | None = None,
        second: bool = False,
        schedule: str | None = None,
        sources: str | None = None,
        **thresholds: Any,
    ) -> Iterator[World]:
        clock = FakeClock(datetime.now(UTC).replace(microsecond=0))
        jobs = [JobConfig(service_principal_id=SP, job_id=JOB)]
        if second:
            jobs.append(JobConfig(service_principal_id=SP2, job_id=JOB2))
        cfg = EmulatorConfig(jobs=jobs, log_delay_seconds=120, **(emulator or {}))
        with run_emulator(cfg, clock=clock) as emu:
            for name in APP_SETTING_NAMES:
                monkeypatch.delenv(name, raising=False)
            monkeypatch.setenv("HrDropStorage", functions_azurite)
            text = sources or sources_yaml(second=second, **thresholds)
            monkeypatch.setenv("CONNECTOR_SOURCES", text)
            monkeypatch.setenv("CONNECTOR_EMULATOR_URL", emu.base_url)
            monkeypatch.setenv("CONNECTOR_EMULATOR_TOKEN", emu.token)
            if budget is not None:
                monkeypatch.setenv("CONNECTOR_DAILY_CALL_BUDGET", str(budget))
            if schedule is not None:
                monkeypatch.setenv("RECONCILE_SCHEDULE", schedule)
            telemetry.reset_for_tests()
            runtime = runtime_module.Runtime(load_settings(), clock=clock)
            runtime_module.set_runtime(runtime)
            try:
                yield World(emu, clock, blob_service, runtime)
            finally:
                runtime_module.reset_runtime()
                runtime.store.close()

    yield make
    runtime_module.reset_runtime()
