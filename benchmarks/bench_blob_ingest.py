"""Peak memory of ingesting a dropped extract in the Functions app: chunked read vs whole read.

Starts its own Azurite (``AZURITE_BIN``, free loopback ports, on-disk storage in a temporary
folder), generates an extract of the default mapping's columns as a stream to a local file,
uploads it to ``incoming/employees/`` and ingests it in a fresh interpreter per figure:

- ``chunked``: ``function_app.ingest_extract`` with the ``BlobClient`` the Python worker
  builds from the host's model binding data (the blob's name, no bytes), as in Azure: the
  runtime reads the blob in bounded ranged GETs into a local file, the engine plans it and
  uploads it, the file is archived.
- ``whole`` (the baseline, same run, same size): the previous path. The host delivered the
  whole blob as bytes (``InputStream``), the handler passed ``BytesIO(data)`` to the engine
  and archived ``data``. Modelled here with one copy of the bytes (the worker held at least
  that: the gRPC message and the ``InputStream`` are more), so the baseline understates the
  old path, never overstates it.

Both use the real hosted runtime (settings from the environment, ``BlobStateStore`` on
Azurite, the engine, reports) with an in-process target that acknowledges every bulk
request at once and counts them (no pacing, no daily budget: limits off). Peak RSS is the
whole process's (``VmHWM``), read after each stage (reading the file, planning,
uploading, writing the reports, archiving), so the split shows where the peak was reached.

    AZURITE_BIN=... .venv/bin/python benchmarks/bench_blob_ingest.py [--sizes 100000 300000 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
MAPPING = ROOT / "samples" / "mappings" / "default.yaml"
SP = "6a1c3f0e-1d2b-4c5d-8e9f-0a1b2c3d4e5f"
JOB = "API2AAD.5f2b9f0c1e2d4a3b8c7d6e5f4a3b2c1d.7b0e4d2a-9c8b-4a1f-8e3d-2c1b0a9f8e7d"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
NAME = "employees/hr-extract.csv"
SOURCES = f"""
sources:
  - name: employees
    match: employees/
    mapping: {MAPPING}
    service_principal_id: {SP}
    job_id: {JOB}
    thresholds: {{max_changes_percent: 100000, max_changes: 100000000}}
"""


def _peak_mb() -> float:
    """This process's peak RSS so far (VmHWM; ``ru_maxrss`` is kept across ``exec`` on
    Linux, so a child would start at its parent's peak)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            return next(int(ln.split()[1]) for ln in fh if ln.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# -- Azurite -------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def azurite() -> Iterator[str]:
    """A private Azurite with on-disk storage; yields its connection string."""
    binary = os.environ.get("AZURITE_BIN") or str(ROOT / ".venv/node/node_modules/.bin/azurite")
    if not shutil.which(binary) and not Path(binary).exists():
        sys.exit(f"Azurite not found at {binary}: run `make azurite` or set AZURITE_BIN")
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="bench-azurite-") as folder:
        args = [binary, "--silent", "--disableTelemetry", "--skipApiVersionCheck"]
        args += ["--location", folder, "--blobHost", "127.0.0.1", "--blobPort", str(port)]
        args += ["--queuePort", str(_free_port()), "--tablePort", str(_free_port())]
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                    break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        sys.exit("Azurite did not start")
                    time.sleep(0.05)
            yield (
                "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
                f"AccountKey={KEY};BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
            )
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def upload(conn: str, path: Path) -> None:
    from azure.core.exceptions import ResourceExistsError
    from azure.storage.blob import BlobServiceClient

    with BlobServiceClient.from_connection_string(conn) as service:
        with suppress(ResourceExistsError):
            service.create_container("incoming")
        with path.open("rb") as fh:
            service.get_blob_client("incoming", NAME).upload_blob(
                fh, length=path.stat().st_size, overwrite=True, max_concurrency=2
            )


# -- the measured process ------------------------------------------------------------------


class CountingTarget:
    """Acknowledges every bulk request at once; no pacing, no budget."""

    calls = 0

    @property
    def job_id(self) -> str | None:
        return JOB

    async def send(self, payload: Any) -> Any:
        from connector.sync.targets import BatchReceipt

        CountingTarget.calls += 1
        return BatchReceipt(request_id=f"req-{CountingTarget.calls}")

    async def iter_logs(self, since: Any) -> AsyncIterator[Any]:
        for entry in ():
            yield entry

    async def get_job(self) -> Any:
        return {"id": JOB, "status": {"code": "Active"}}

    async def aclose(self) -> None:
        return None


def _mark_after(owner: type, method: str, key: str, marks: dict[str, float]) -> None:
    """Record the peak RSS when ``owner.method`` returns (sync or async)."""
    import inspect

    real = getattr(owner, method)
    if inspect.iscoroutinefunction(real):

        async def wrapped_async(*args: Any, **kwargs: Any) -> Any:
            out = await real(*args, **kwargs)
            marks[key] = _peak_mb()
            return out

        setattr(owner, method, wrapped_async)
    else:

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            out = real(*args, **kwargs)
            marks[key] = _peak_mb()
            return out

        setattr(owner, method, wrapped)


class StopAfterRead(Exception):
    """``--read-only``: the file has been read; the engine is not run."""


def child(mode: str, read_only: bool = False) -> dict[str, Any]:
    """One ingest in this (fresh) process; the peak RSS after each stage."""
    import asyncio
    import io

    import function_app
    from connector.functions import runtime as runtime_module
    from connector.functions.blobfile import Content
    from connector.functions.settings import load_settings

    runtime = runtime_module.Runtime(load_settings(), targets=lambda _src: CountingTarget())
    runtime_module.set_runtime(runtime)
    from connector.sync.planning import Planner
    from connector.sync.reporting import Reporter
    from connector.sync.sending import Sender

    marks: dict[str, float] = {"floor": _peak_mb()}
    _mark_after(Planner, "plan", "plan", marks)
    _mark_after(Sender, "upload", "upload", marks)
    _mark_after(Reporter, "write", "report", marks)
    started = time.perf_counter()
    engine_ingest = runtime.engine.ingest

    async def ingest(*args: Any, **kwargs: Any) -> Any:
        marks["read"] = _peak_mb()
        if read_only:
            raise StopAfterRead
        summary = await engine_ingest(*args, **kwargs)
        return summary

    runtime.engine.ingest = ingest  # type: ignore[method-assign]
    if mode == "chunked":
        from benchmarks.host_binding import trigger_blob

        try:
            function_app.ingest_extract(trigger_blob(NAME))
            state = runtime.engine.list_runs("employees")[0].state
        except StopAfterRead:
            state = "read"
    elif read_only:
        from azure.functions.blob import InputStream

        raw = runtime.zone.service.get_blob_client("incoming", NAME).download_blob().readall()
        data = InputStream(data=raw, name=f"incoming/{NAME}", length=len(raw)).read()
        marks["read"] = _peak_mb()
        state = "read"
    else:
        from azure.functions.blob import InputStream

        raw = runtime.zone.service.get_blob_client("incoming", NAME).download_blob().readall()
        data = InputStream(data=raw, name=f"incoming/{NAME}", length=len(raw)).read()
        del raw
        incoming = runtime.zone.incoming(NAME)
        assert incoming is not None
        summary = asyncio.run(
            runtime.engine.ingest(
                "employees", NAME, io.BytesIO(data), incoming.received_at,
                file_time=incoming.received_at, resume_waiting=True,
            )
        )  # fmt: skip
        runtime.zone.archive(
            source="employees",
            blob_name=NAME,
            data=Content.of_bytes(data),
            received_at=incoming.received_at,
            run_id=summary.run_id,
        )
        state = summary.state
    marks["archive"] = _peak_mb()
    return {
        "marks": marks,
        "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "calls": CountingTarget.calls,
        "state": str(state),
        "seconds": time.perf_counter() - started,
    }


# -- the driver ----------------------------------------------------------------------------


def measure(rows: int, mode: str, extract: Path, read_only: bool) -> dict[str, Any]:
    with azurite() as conn:
        upload(conn, extract)
        env = {**os.environ, "HrDropStorage": conn, "CONNECTOR_SOURCES": SOURCES}
        for name in ("CONNECTOR_EMULATOR_URL", "APPLICATIONINSIGHTS_CONNECTION_STRING"):
            env.pop(name, None)
        proc = subprocess.run(
            [sys.executable, __file__, "--child", mode] + (["--read-only"] if read_only else []),
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    if proc.returncode != 0:
        sys.exit(f"{mode} at {rows:,} rows failed:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    parser.add_argument(
        "--read-only",
        action="store_true",
        help="stop once the file is read (the ingest part alone, without the engine)",
    )
    parser.add_argument(
        "--modes",
        nargs="+",
        choices=["whole", "chunked"],
        default=["whole", "chunked"],
        help="which paths to measure (default: both, the baseline first)",
    )
    parser.add_argument("--child", choices=["chunked", "whole"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.read_only)))
        return
    from connector.functions.blobfile import CHUNK_BYTES
    from connector.sample import generate_extract

    print(f"machine: {_cpu()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"chunk: {CHUNK_BYTES // 1024} KiB; peak RSS of the whole process (VmHWM), MB")
    header = "| rows | file MB | path | floor | read | plan | upload | report | archive "
    print(header + "| ru_maxrss | calls | s |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="bench-blob-") as folder:
        for rows in args.sizes:
            extract = Path(folder) / "hr-extract.csv"
            generate_extract(extract, rows, seed=7)
            size_mb = extract.stat().st_size / 1e6
            for mode in args.modes:
                r = measure(rows, mode, extract, args.read_only)
                m = r["marks"]
                print(
                    f"| {rows:,} | {size_mb:.0f} | {mode} | {m['floor']:.0f} | {m['read']:.0f} "
                    f"| {m.get('plan', 0):.0f} | {m.get('upload', 0):.0f} "
                    f"| {m.get('report', 0):.0f} | {m['archive']:.0f} | {r['maxrss']:.0f} "
                    f"| {r['calls']:,} | {r['seconds']:.0f} |",
                    flush=True,
                )
            extract.unlink()


if __name__ == "__main__":
    main()
