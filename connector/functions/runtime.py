"""The connector as hosted in Azure Functions: what ``function_app.py`` calls.

One :class:`Runtime` per worker process holds the settings, the storage client, the
engine and the Graph credential (built lazily by :func:`get_runtime` on the first
invocation, so a bad setting is reported by that invocation, naming the setting).

The functions are plain ``def`` functions: the host runs them on its thread pool, and
each runs its engine call in a private event loop (``asyncio.run``). So a long plan or
upload never stalls ``/api/health`` or another invocation, and the blocking Blob SDK
calls are fine. Nothing that belongs to one event loop is shared between invocations:
the engine builds a Graph client (HTTP pool, pacing, budget) per source per call, and
each of those gets its own token provider over the process's one credential (which
caches tokens itself).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from connector.clock import Clock, SystemClock
from connector.config import SourcesConfig
from connector.functions.approvals import Approvals
from connector.functions.drop import DropHandler
from connector.functions.dropzone import DropZone
from connector.functions.health import health_document, stale_after
from connector.functions.jobs import check_jobs
from connector.functions.outcomes import ApprovalOutcome, DropOutcome, PassOutcome
from connector.functions.pulls import PullOutcome, Pulls
from connector.functions.settings import AppSettings
from connector.functions.sweep import Sweep
from connector.functions.telemetry import Telemetry, configure_telemetry, get_telemetry
from connector.functions.timer import TimerPass
from connector.functions.wiring import (
    blob_service,
    graph_target_factory,
    hosted_engine,
    load_sources,
    pull_credential,
)
from connector.state.blob import BlobStateStore
from connector.sync.targets import TargetFactory

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient

    from connector.sources.sql import TokenSource

__all__ = ["Runtime", "get_runtime", "reset_runtime", "set_runtime"]


class Runtime:
    """Everything the functions share in one worker process: settings, clients, engine.

    Each operation builds its stage from the runtime's current parts, so a test (or a
    later invocation) that replaces a part is honoured. Tests build one with their own
    ``clock`` / ``targets`` / ``service``.
    """

    def __init__(
        self,
        settings: AppSettings,
        *,
        clock: Clock | None = None,
        targets: TargetFactory | None = None,
        service: BlobServiceClient | None = None,
    ) -> None:
        logging.getLogger("azure").setLevel(logging.WARNING)  # not every SDK request
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        configure_telemetry(settings)
        self.telemetry: Telemetry = get_telemetry()
        self.config: SourcesConfig = load_sources(settings)
        self.service: BlobServiceClient = service or blob_service(settings)
        self.zone = DropZone(self.service, clock=self.clock)
        self.zone.ensure_containers()
        self.store = BlobStateStore(self.service, clock=self.clock)
        self.targets: TargetFactory = targets or graph_target_factory(
            settings, self.config, self.store, self.clock
        )
        self.engine = hosted_engine(
            self.config, self.store, self.targets, self.clock, account=self.service.account_name
        )
        self.stale_after = stale_after(settings.reconcile_schedule)
        self._pull_credential: TokenSource | None = None

    async def ingest(self, trigger_name: str) -> DropOutcome:
        """Handle one dropped file, by name: read in chunks → source → engine → archive or
        quarantine. The one path of the blob trigger and the timer's sweep."""
        handler = DropHandler(self.zone, self.config, self.engine, self.telemetry)
        return await handler.ingest(trigger_name)

    async def run_pass(self) -> PassOutcome:
        """One timer pass: approvals, resume, due pulls, reconcile, job health, sweep, status."""
        return await TimerPass(self).run()

    async def process_approvals(self, busy: set[str] | None = None) -> list[ApprovalOutcome]:
        """Act on the markers in ``approvals`` (a busy run's source is added to ``busy``)."""
        return await Approvals(self.zone, self.engine, self.telemetry).process(busy)

    async def sweep_incoming(self) -> list[DropOutcome]:
        """Ingest files still in ``incoming`` well after their upload, one at a time."""
        return await Sweep(self.zone, self.clock, self.ingest).run()

    async def pull_sources(self) -> list[PullOutcome]:
        """Pull every ``sql``/``rest`` source whose schedule is due (one at a time)."""
        if self._pull_credential is None:
            self._pull_credential = pull_credential(self.settings, self.config)
        pulls = Pulls(self.engine, self.config, self.clock, self.telemetry, self._pull_credential)
        return await pulls.run()

    async def check_jobs(self) -> dict[str, dict[str, Any]]:
        """Every source's provisioning-job health (one GET per source)."""
        return await check_jobs(self.config, self.targets, self.telemetry)

    def health(self) -> dict[str, Any]:
        """The ``/api/health`` document (one storage call, no Graph call)."""
        return health_document(self.zone, self.config, self.clock, self.stale_after)


# -- the process's runtime ------------------------------------------------------------------

_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def get_runtime(factory: Callable[[], Runtime] | None = None) -> Runtime:
    """The worker process's runtime, built on first use (a bad setting raises ConfigError)."""
    global _runtime
    if _runtime is None:
        with _runtime_lock:
            if _runtime is None:
                if factory is None:
                    from connector.functions.settings import load_settings

                    _runtime = Runtime(load_settings())
                else:
                    _runtime = factory()
    return _runtime


def set_runtime(runtime: Runtime | None) -> None:
    """Install a runtime (tests) or forget it (``None``)."""
    global _runtime
    with _runtime_lock:
        _runtime = runtime


def reset_runtime() -> None:
    set_runtime(None)
