"""The fault campaign's world: Azurite, the emulator, Functions workers and the verdict.

- **Azurite** runs as its own process on fixed loopback ports with a persisted
  ``--location``, so it can be restarted on the same port with its data.
- **The emulator** runs in this process (real time plus an offset the campaign moves:
  time passing between timer firings) and keeps a **request log**: every accepted
  bulkUpload with its request id and, per operation, the record's externalId and a hash
  of its data.
- **Workers** are Functions invocations in their own processes
  (:mod:`benchmarks.fault_campaign_worker`): the host's function bodies against Azurite
  and the emulator, killed, stopped or left alone.
- **The verdict** compares the emulator's directory with the extracts applied in order,
  and the request log with the run journals in the state store: lost records,
  double-applied changes, re-sends, runs not finished, leases still held.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.emuworld import actual_directory, expected_directory, read_rows  # noqa: E402

ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
MAPPING = ROOT / "samples" / "mappings" / "default.yaml"
SP = "6a1c3f0e-1d2b-4c5d-8e9f-0a1b2c3d4e5f"
JOB = "API2AAD.5f2b9f0c1e2d4a3b8c7d6e5f4a3b2c1d.7b0e4d2a-9c8b-4a1f-8e3d-2c1b0a9f8e7d"
SOURCE = "employees"
FINISHED = {"done", "superseded", "discarded"}

SOURCES_YAML = f"""
reconciliation: {{deadline: 2h, skew: 5m}}
sources:
  - name: {SOURCE}
    match: {SOURCE}/
    mapping: {MAPPING}
    service_principal_id: {SP}
    job_id: {JOB}
    thresholds: {{max_leavers: null, max_leavers_percent: null, max_changes_percent: null}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def azurite_bin() -> str:
    found = os.environ.get("AZURITE_BIN") or str(
        ROOT / ".venv" / "node" / "node_modules" / ".bin" / "azurite"
    )
    if not Path(found).exists():
        raise SystemExit(f"Azurite not found at {found}: run `make azurite` or set AZURITE_BIN")
    return found


class Azurite:
    """Azurite on fixed free loopback ports with persisted storage (restartable)."""

    def __init__(self, location: Path) -> None:
        self.location = location
        self.ports = (free_port(), free_port(), free_port())
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
            f"BlobEndpoint=http://127.0.0.1:{self.ports[0]}/{ACCOUNT};"
        )

    def start(self) -> None:
        blob, queue, table = self.ports
        cmd = [azurite_bin(), "--silent", "--disableTelemetry", "--skipApiVersionCheck"]
        cmd += ["--location", str(self.location)]
        for kind, port in (("blob", blob), ("queue", queue), ("table", table)):
            cmd += [f"--{kind}Host", "127.0.0.1", f"--{kind}Port", str(port)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            with suppress(OSError), socket.create_connection(("127.0.0.1", blob), timeout=0.5):
                return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                raise RuntimeError("Azurite did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self, down_seconds: float = 0.0) -> None:
        """Stop Azurite and start it again on the same ports with the same data."""
        self.stop()
        time.sleep(down_seconds)
        self.start()
        self.restarts += 1


@dataclass
class Upload:
    """One accepted bulkUpload: its request id and (externalId, data hash) per operation."""

    request_id: str
    ops: list[tuple[str, str]]


def _hash(data: Any) -> str:
    return hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


class RequestLog:
    """Every upload the emulator queued, in order (installed on its request handler)."""

    def __init__(self) -> None:
        self.uploads: list[Upload] = []

    def install(self) -> None:
        from connector.emulator import bulk_upload

        real = bulk_upload.Upload

        def recording(operations: list[dict[str, Any]], request_id: str, received: Any) -> Any:
            ops = [(str(op["data"].get("externalId")), _hash(op["data"])) for op in operations]
            self.uploads.append(Upload(request_id, ops))
            return real(operations, request_id, received)

        bulk_upload.Upload = recording  # type: ignore[assignment,misc]


@dataclass
class WorkerResult:
    """What one invocation did: its outcome line(s), its error, or that it was killed."""

    spec: dict[str, Any]
    returncode: int
    ok: bool = False
    lines: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def killed(self) -> bool:
        return self.returncode == -signal.SIGKILL

    def describe(self) -> str:
        if self.killed:
            return "killed"
        return "; ".join(self.lines) if self.ok else f"error {self.error}"


class Worker:
    """An invocation in its own process, started ahead of need (imports done) and
    handed its spec by :meth:`run`."""

    def __init__(self, env: dict[str, str]) -> None:
        self.spec: dict[str, Any] = {}
        cmd = [sys.executable, "-m", "benchmarks.fault_campaign_worker", "--wait"]
        self.proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    def run(self, spec: dict[str, Any]) -> Worker:
        self.spec = spec
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(spec).encode() + b"\n")
        self.proc.stdin.flush()  # closed by wait()
        return self

    def discard(self) -> None:
        self.proc.kill()
        self.proc.communicate()

    def wait(self, timeout: float = 120) -> WorkerResult:
        out, err = self.proc.communicate(timeout=timeout)
        result = WorkerResult(self.spec, self.proc.returncode)
        for line in out.decode().splitlines():
            with suppress(ValueError):
                doc = json.loads(line)
                result.ok, result.lines, result.error = doc["ok"], doc["lines"], doc.get("error")
        if not result.ok and not result.killed and result.error is None:
            result.error = err.decode()[-500:] or f"exit {result.returncode}"
        return result

    def signal(self, sig: signal.Signals) -> None:
        with suppress(ProcessLookupError):
            os.kill(self.proc.pid, sig)


@dataclass
class Verdict:
    """One scenario's result against the directory and the request log."""

    records: int = 0
    lost: int = 0
    double_applied: int = 0
    resent: int = 0
    unjournaled_calls: int = 0
    stale: int = 0
    stuck: int = 0
    leases_held: int = 0
    incoming_left: int = 0
    runs: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (
            self.lost
            or self.double_applied
            or self.stale
            or self.stuck
            or self.leases_held
            or self.incoming_left
        )


def _as_expected(
    in_last: bool, expected: dict[str, Any] | None, actual: dict[str, Any] | None
) -> bool:
    """A record of the last extract holds exactly what the extracts say; any other
    record (a leaver) has no enabled account: disabled, or never created when the run
    that would have created it was superseded by a newer full extract before it was
    sent (the newer file carries everyone, and a leaver is not in it)."""
    if in_last:
        return expected == actual
    if expected is None:  # a user no extract ever held
        return actual is None
    return actual is None or actual["accountEnabled"] is False


class World:
    """Azurite + emulator + workers for one campaign; :meth:`reset` between scenarios."""

    def __init__(self, workdir: Path, *, lease_seconds: int = 15) -> None:
        self.workdir = workdir
        self.lease_seconds = lease_seconds
        self.azurite = Azurite(workdir / "azurite")
        self.log = RequestLog()
        self.offset = 0.0
        self.extracts: list[Path] = []
        self.results: list[WorkerResult] = []
        self.emu: Any = None
        self._env: dict[str, str] = {}
        self._spare: Worker | None = None

    @contextmanager
    def running(self) -> Iterator[World]:
        from connector.clock import SystemClock
        from connector.emulator.config import EmulatorConfig, JobConfig
        from connector.emulator.server import run_emulator

        self.log.install()
        self.azurite.start()
        cfg = EmulatorConfig(
            jobs=[JobConfig(service_principal_id=SP, job_id=JOB)], log_delay_seconds=60
        )
        try:
            with run_emulator(cfg, clock=SystemClock()) as emu:
                self.emu = emu
                self._env = self._settings(emu)
                self._containers()
                try:
                    yield self
                finally:
                    if self._spare is not None:
                        self._spare.discard()
        finally:
            self.azurite.stop()

    def _settings(self, emu: Any) -> dict[str, str]:
        from connector.functions.settings import APP_SETTING_NAMES

        env = {k: v for k, v in os.environ.items() if k not in APP_SETTING_NAMES}
        env.update(
            HrDropStorage=self.azurite.connection_string,
            CONNECTOR_SOURCES=SOURCES_YAML,
            CONNECTOR_EMULATOR_URL=emu.base_url,
            CONNECTOR_EMULATOR_TOKEN=emu.token,
            PYTHONPATH=str(ROOT),
        )
        return env

    def _containers(self) -> None:
        """The app creates its containers on its first invocation; HR's first upload may
        come before that, so they are made here (as the walkthrough's health call does)."""
        from azure.core.exceptions import ResourceExistsError

        from connector.functions.dropzone import CONTAINERS

        with self.service() as service:
            for name in CONTAINERS:
                with suppress(ResourceExistsError):
                    service.create_container(name)

    def service(self) -> Any:
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient.from_connection_string(self.azurite.connection_string)

    def reset(self) -> None:
        """A fresh tenant and empty storage (the containers stay)."""
        self.lapse_leases()
        with self.service() as service:
            for container in service.list_containers():
                client = service.get_container_client(container.name)
                for blob in client.list_blobs():
                    client.delete_blob(blob.name)
        self.emu.reset()
        self.offset = 0.0
        self.log.uploads.clear()
        self.extracts = []
        self.results = []

    # -- what the host and HR do -------------------------------------------------------

    def drop(self, name: str, extract: Path) -> None:
        """HR uploads an extract under ``incoming/<source>/``; it is applied after those
        dropped before it."""
        with self.service() as service:
            blob = service.get_blob_client("incoming", f"{SOURCE}/{name}")
            blob.upload_blob(extract.read_bytes(), overwrite=True)
        self.extracts.append(extract)

    def start(self, op: str, name: str | None = None, **spec: Any) -> Worker:
        """Start one invocation: ``ingest`` (the Event Grid delivery of ``name``) or ``timer``."""
        body: dict[str, Any] = {"op": op, "offset": self.offset}
        body["lease_seconds"] = self.lease_seconds
        if name is not None:
            body["blob"] = f"{SOURCE}/{name}"
        body.update(spec)
        worker = self._spare or Worker(self._env)
        self._spare = Worker(self._env)
        return worker.run(body)

    def call(self, op: str, name: str | None = None, **spec: Any) -> WorkerResult:
        result = self.start(op, name, **spec).wait()
        self.results.append(result)
        return result

    def deliver(self, name: str, **spec: Any) -> WorkerResult:
        return self.call("ingest", name, **spec)

    def tick(self, minutes: float = 15, **spec: Any) -> WorkerResult:
        """Time passes, then the timer fires (in a new worker)."""
        self.advance(minutes * 60)
        return self.call("timer", **spec)

    def advance(self, seconds: float) -> None:
        self.offset += seconds
        self.emu.advance(seconds)

    @contextmanager
    def slow_service(self, latency_ms: float) -> Iterator[None]:
        """Every bulkUpload takes ``latency_ms`` at the emulator before it is queued (a
        slow service: the holder's requests are in flight while a fault hits it)."""
        config = self.emu.state.config
        config.latency_ms = latency_ms
        try:
            yield
        finally:
            config.latency_ms = 0.0

    def lapse_leases(self) -> int:
        """The leases of killed holders lapse (Blob: ``lease_seconds`` after their last
        renewal); broken here at once instead of waiting, which leaves the lock blob in
        the same state for the next taker: not leased."""
        from azure.storage.blob import BlobLeaseClient

        broken = 0
        with self.service() as service:
            client = service.get_container_client("state")
            for blob in client.list_blobs(name_starts_with="locks/"):
                if blob.lease.state == "leased":
                    with suppress(Exception):
                        BlobLeaseClient(client.get_blob_client(blob.name)).break_lease(0)
                        broken += 1
        return broken

    def wait_uploads(self, count: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while len(self.log.uploads) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"fewer than {count} uploads in {timeout} s")
            time.sleep(0.02)

    def settle(self, max_ticks: int = 8) -> int:
        """Timer passes until every run is finished and ``incoming`` is empty."""
        for n in range(1, max_ticks + 1):
            self.emu.wait_idle(30)
            self.tick()
            self.emu.wait_idle(30)
            runs = self.runs()
            if runs and all(r["state"] in FINISHED for r in runs) and not self.incoming():
                return n
        return max_ticks

    # -- what the verdict reads --------------------------------------------------------

    def incoming(self) -> list[str]:
        with self.service() as service:
            return [b.name for b in service.get_container_client("incoming").list_blobs()]

    def runs(self) -> list[dict[str, Any]]:
        from connector.clock import SystemClock
        from connector.state.blob import BlobStateStore
        from connector.sync.run_store import RunStore

        store = BlobStateStore(self.service(), heartbeat=False)
        try:
            return [
                {
                    "run": j.run_id,
                    "state": j.state.value,
                    "waiting": j.waiting,
                    "batches": [(b.index, b.request_id) for b in j.batches],
                }
                for j in RunStore(store, SystemClock()).runs(SOURCE)
            ]
        finally:
            store.close()

    def leases_held(self) -> int:
        with self.service() as service:
            client = service.get_container_client("state")
            blobs = client.list_blobs(name_starts_with="locks/")
            return sum(1 for b in blobs if b.lease.state == "leased")

    def verdict(self) -> Verdict:
        v = Verdict()
        expected = expected_directory(self.extracts)
        actual = actual_directory(self.emu)
        last = read_rows(self.extracts[-1])
        v.records = len(last)
        for ext in expected.keys() | actual.keys():
            if not _as_expected(ext in last, expected.get(ext), actual.get(ext)):
                v.lost += 1
                if len(v.problems) < 5:
                    v.problems.append(f"{ext}: expected {expected.get(ext)}, got {actual.get(ext)}")
        runs = self.runs()
        self._journal_checks(v, runs)
        self._stale_writes(v)
        for r in runs:
            v.runs[r["run"]] = r["state"] + (f" ({r['waiting']})" if r["waiting"] else "")
            if r["state"] not in FINISHED:
                v.stuck += 1
        v.leases_held = self.leases_held()
        v.incoming_left = len(self.incoming())
        return v

    def _journal_checks(self, v: Verdict, runs: list[dict[str, Any]]) -> None:
        """Each run applies each of its records once: an acknowledged batch is journaled
        once, and no record is in two acknowledged calls of the same run. Accepted calls
        no journal knows are re-sent (their batch was in flight at a crash, or the
        holder's acknowledgement was refused after it lost its lease)."""
        by_request = {u.request_id: u for u in self.log.uploads}
        journaled: set[str] = set()
        for r in runs:
            indexes = Counter(i for i, _ in r["batches"])
            v.double_applied += sum(n - 1 for n in indexes.values() if n > 1)
            per_record: Counter[str] = Counter()
            for _, rid in r["batches"]:
                journaled.add(rid)
                upload = by_request.get(rid)
                if upload is None:
                    v.problems.append(f"run {r['run']}: journaled request {rid} never accepted")
                    continue
                per_record.update(ext for ext, _ in upload.ops)
            doubles = sum(n - 1 for n in per_record.values() if n > 1)
            if doubles:
                v.problems.append(f"run {r['run']}: {doubles} records in two calls")
            v.double_applied += doubles
        for u in self.log.uploads:
            if u.request_id not in journaled:
                v.unjournaled_calls += 1
                v.resent += len(u.ops)

    def _stale_writes(self, v: Verdict) -> None:
        """A record set back to data it held before a newer change (A, B, then A again).
        The extracts never revert a record, so any such write is an old change applied
        twice."""
        seen: dict[str, list[str]] = defaultdict(list)
        for u in self.log.uploads:
            for ext, digest in u.ops:
                history = seen[ext]
                if history and history[-1] != digest and digest in history:
                    v.stale += 1
                    v.problems.append(f"{ext}: stale write (older data applied again)")
                if not history or history[-1] != digest:
                    history.append(digest)
