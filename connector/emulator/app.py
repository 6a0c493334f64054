"""The emulator's HTTP surface, assembled: Graph-shaped routes under ``/v1.0`` and
``/beta`` (bulkUpload, provisioning logs, jobs and schema), ``/_emulator/...``
introspection, the worker that processes the buckets, and the transport tap that fault
injection needs.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount, Route

from connector.clock import Clock
from connector.emulator.bulk_upload import post_bulk_upload
from connector.emulator.clock import EmulatorClock
from connector.emulator.config import EmulatorConfig
from connector.emulator.faults import TransportTap
from connector.emulator.introspection import introspection_routes
from connector.emulator.job_routes import (
    get_job,
    get_schema,
    job_call,
    list_jobs,
    pause_job,
    put_schema,
    restart_job,
    start_job,
)
from connector.emulator.processing import Worker
from connector.emulator.provisioning_logs import get_provisioning_logs
from connector.emulator.tenant import EmulatorState

__all__ = ["create_app"]


def _graph_routes() -> list[BaseRoute]:
    jobs = "/servicePrincipals/{sp}/synchronization/jobs"
    return [
        Route(jobs + "/{job}/bulkUpload", post_bulk_upload, methods=["POST"]),
        Route(jobs, list_jobs, methods=["GET"]),
        Route(jobs + "/{job}", job_call(get_job), methods=["GET"]),
        Route(jobs + "/{job}/start", job_call(start_job), methods=["POST"]),
        Route(jobs + "/{job}/pause", job_call(pause_job), methods=["POST"]),
        Route(jobs + "/{job}/restart", job_call(restart_job), methods=["POST"]),
        Route(jobs + "/{job}/schema", job_call(get_schema), methods=["GET"]),
        Route(jobs + "/{job}/schema", job_call(put_schema), methods=["PUT"]),
        Route("/auditLogs/provisioning", get_provisioning_logs, methods=["GET"]),
        Route("/auditLogs/provisioning/", get_provisioning_logs, methods=["GET"]),
    ]


def create_app(config: EmulatorConfig | None = None, *, clock: Clock | None = None) -> Starlette:
    """Build the emulator app; ``clock`` drives windows, quota days and log timestamps."""
    cfg = config or EmulatorConfig()
    state = EmulatorState(cfg, clock if isinstance(clock, EmulatorClock) else EmulatorClock(clock))
    worker = Worker(state)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        worker.ensure_started()
        yield
        await worker.stop()

    graph = _graph_routes()
    routes: list[BaseRoute] = [
        Mount("/v1.0", routes=graph),
        Mount("/beta", routes=graph),
        *introspection_routes(),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.emulator = state
    app.state.worker = worker
    app.add_middleware(TransportTap)
    return app
