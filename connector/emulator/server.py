"""Run the emulator in a background thread on a loopback port (tests, the demo, benchmarks).

``run_emulator()`` binds the socket itself (port 0 = a free port), so the URL is known
before uvicorn starts, and stops uvicorn cleanly on exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import threading
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import uvicorn
from starlette.applications import Starlette

from connector.clock import Clock
from connector.emulator.app import create_app
from connector.emulator.auth import is_loopback
from connector.emulator.clock import EmulatorClock
from connector.emulator.config import EmulatorConfig
from connector.emulator.processing import Worker
from connector.emulator.tenant import CallRecord, EmulatorState
from connector.errors import ConfigError

__all__ = ["RunningEmulator", "connectable_host", "is_loopback", "is_wildcard", "run_emulator"]

T = TypeVar("T")


def is_wildcard(host: str) -> bool:
    """True for the "every interface" addresses (0.0.0.0, ::): nobody can connect to them."""
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return host == ""


def connectable_host(host: str) -> str:
    """An address a client can use for a server bound to ``host``: wildcard -> loopback."""
    if is_wildcard(host):
        return "::1" if ":" in host else "127.0.0.1"
    return host


@dataclass
class RunningEmulator:
    """A live emulator: where it listens, what to send, and its state for assertions."""

    config: EmulatorConfig
    app: Starlette
    host: str
    port: int
    _server: uvicorn.Server = field(repr=False)
    _thread: threading.Thread = field(repr=False)
    _loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)

    @property
    def connect_host(self) -> str:
        """Where clients connect: ``host``, or loopback when bound to every interface."""
        return connectable_host(self.host)

    @property
    def base_url(self) -> str:
        """A URL clients can use (never ``http://0.0.0.0:...``)."""
        host = self.connect_host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    @property
    def graph_url(self) -> str:
        """Base of the Graph-shaped routes, like ``https://graph.microsoft.com/v1.0``."""
        return self.base_url + "/v1.0"

    @property
    def token(self) -> str:
        return self.config.tokens[0]

    @property
    def service_principal_id(self) -> str:
        return self.config.default_job.service_principal_id

    @property
    def job_id(self) -> str:
        return self.config.default_job.job_id

    @property
    def endpoint_url(self) -> str:
        """The bulkUpload URL of the default job."""
        return (
            f"{self.graph_url}/servicePrincipals/{self.service_principal_id}"
            f"/synchronization/jobs/{self.job_id}/bulkUpload"
        )

    @property
    def state(self) -> EmulatorState:
        """The live state. Mutated on the server thread: prefer the snapshot helpers below."""
        state: EmulatorState = self.app.state.emulator
        return state

    @property
    def clock(self) -> EmulatorClock:
        return self.state.clock

    def advance(self, seconds: float) -> None:
        """Move the emulator's time forward (thread-safe; windows, quota, log delay follow)."""
        self.clock.advance(seconds)

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        """Run ``coro`` on the server loop and return its result (thread hop)."""
        if self._loop is None:
            raise RuntimeError("the emulator is not running")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def users(self) -> dict[str, dict[str, Any]]:
        """Snapshot of the directory: externalId -> user JSON (attributes, accountEnabled...)."""

        async def snap() -> dict[str, dict[str, Any]]:
            return {k: u.to_json() for k, u in self.state.users.items()}

        return self.call(snap())

    def logs(self, *, visible_only: bool = False) -> list[dict[str, Any]]:
        """Snapshot of the provisioning log entries, oldest first."""

        async def snap() -> list[dict[str, Any]]:
            entries = self.state.visible_logs() if visible_only else self.state.logs
            return [e.to_json() for e in entries]

        return self.call(snap())

    def queue_length(self) -> int:
        """Operations accepted but not yet processed, over every job."""

        async def snap() -> int:
            return self.state.queued_operations

        return self.call(snap())

    def calls(self) -> list[CallRecord]:
        """Every bulkUpload call the server saw (time, status, operations), in order."""

        async def snap() -> list[CallRecord]:
            return list(self.state.calls)

        return self.call(snap())

    def accepted_call_times(self) -> list[float]:
        """Emulator-clock monotonic times of the calls answered 202 (for pacing checks)."""
        return [c.monotonic for c in self.calls() if c.status == 202]

    def set_job_state(self, code: str, *, job_id: str | None = None) -> None:
        """Force a job state (Active/Paused/Quarantine/NotRun) without HTTP."""

        async def apply() -> None:
            job = self.state.jobs[job_id or self.job_id]
            job.state = code  # type: ignore[assignment]
            if code != "Quarantine":
                job.quarantine = None
            self._worker.wake()

        self.call(apply())

    def reset(self) -> None:
        async def apply() -> None:
            self.state.reset()

        self.call(apply())

    @property
    def _worker(self) -> Worker:
        worker: Worker = self.app.state.worker
        return worker

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Block until every runnable job's bucket is processed; TimeoutError otherwise."""
        deadline = time.monotonic() + timeout

        async def idle() -> bool:
            worker = self._worker
            while time.monotonic() < deadline:
                if not any(j.runnable and j.queue for j in self.state.jobs.values()):
                    worker.wake()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(worker.idle.wait(), deadline - time.monotonic())
                    if worker.idle.is_set() and not any(
                        j.runnable and j.queue for j in self.state.jobs.values()
                    ):
                        return True
                else:
                    worker.wake()
                    await asyncio.sleep(0.002)
            return False

        if not self.call(idle(), timeout=timeout + 5):
            raise TimeoutError(f"the emulator's queue was not processed within {timeout:g} s")


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on sockets whose proto says TCP,
    # and without it every two-write response waits for a delayed ACK (~40 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"the emulator cannot listen on {host}:{port}: {exc}") from exc
    sock.listen(2048)
    sock.setblocking(False)
    return sock


@contextlib.contextmanager
def run_emulator(
    config: EmulatorConfig | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    clock: Clock | None = None,
    allow_non_loopback: bool = False,
    startup_timeout: float = 10.0,
) -> Iterator[RunningEmulator]:
    """Start the emulator on ``host:port`` in a thread; yield it; stop it on exit."""
    if not allow_non_loopback and not is_loopback(host):
        raise ConfigError(
            f"the emulator listens on loopback only; {host!r} is not a loopback address"
            " (pass allow_non_loopback=True to expose it on purpose)"
        )
    cfg = config or EmulatorConfig()
    app = create_app(cfg, clock=clock)
    sock = _bind(host, port)
    actual_port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="on",
            loop="asyncio",
            http="h11",
            timeout_keep_alive=30,
        )
    )
    holder: dict[str, asyncio.AbstractEventLoop] = {}

    async def serve() -> None:
        holder["loop"] = asyncio.get_running_loop()
        await server.serve(sockets=[sock])

    thread = threading.Thread(target=lambda: asyncio.run(serve()), name="emulator", daemon=True)
    running = RunningEmulator(cfg, app, host, actual_port, server, thread)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise ConfigError(f"the emulator did not start on {host}:{actual_port}")
        time.sleep(0.005)
    running._loop = holder["loop"]
    try:
        yield running
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
