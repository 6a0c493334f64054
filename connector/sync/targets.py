"""Provisioning targets: the seam between the engine and a provisioning job.

:class:`ProvisioningTarget` is what the engine needs from one source's job (send a bulk
request, read its provisioning logs, read the job); :class:`GraphTarget` implements it on
the Graph client (or the local emulator through it) and :func:`graph_targets` builds one
per source with shared pacing, the daily budget and the retry policy.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import httpx

from connector.clock import Clock
from connector.config import Source, SourcesConfig
from connector.errors import (
    ConfigError,
    NotFoundError,
)
from connector.graph.auth import TokenProvider
from connector.graph.client import GraphClient, RetryPolicy
from connector.graph.endpoint import Cloud, ProvisioningEndpoint
from connector.graph.logs import LogQuery, log_entry
from connector.graph.models import SynchronizationJob
from connector.pacing import DailyBudget, SlidingWindowLimiter
from connector.reconcile import LogEntry
from connector.scim import BulkPayload
from connector.state.store import StateStore, StoreCallBudget

__all__ = [
    "DEFAULT_WINDOW",
    "BatchReceipt",
    "GraphTarget",
    "ProvisioningTarget",
    "TargetFactory",
    "as_mapping",
    "graph_targets",
    "source_cloud",
]


DEFAULT_WINDOW = 20
"""Bulk requests in flight at once per run. The rate limiter paces (40 calls in any 5 s);
the width only bounds concurrency. Under a sliding window every later window repeats the
first burst's spacing, so the calls of the first burst should go at once: 20 lets half a
window's calls go together (8 in flight already sustain 8 calls/s at 1 s latency). On a
stop the batches in flight finish; after a crash at most this many are sent again."""


@dataclass(frozen=True, slots=True)
class BatchReceipt:
    """What the service said about one bulk request: accepted (202), except ``rejected``.

    ``rejected`` maps externalIds the service refused with 400 (isolated by the engine)
    to ``(error code, message)``; they count as failed at once. ``unisolated``: those of
    them refused only as part of a group, the run's isolation allowance being spent.
    """

    request_id: str | None = None
    client_request_id: str | None = None
    rejected: Mapping[str, tuple[str | None, str]] = field(default_factory=dict)
    unisolated: frozenset[str] = frozenset()


class ProvisioningTarget(Protocol):
    """One source's provisioning job, as the engine needs it (Graph or the emulator).

    ``send`` raises :class:`~connector.errors.QuotaExhaustedError`,
    :class:`~connector.errors.BucketFullError` or another
    :class:`~connector.errors.GraphError` when the request was not accepted.
    """

    @property
    def job_id(self) -> str | None: ...

    async def send(self, payload: BulkPayload) -> BatchReceipt: ...

    def iter_logs(self, since: datetime) -> AsyncIterator[LogEntry]:
        """Provisioning-log entries of the job with ``activityDateTime`` ≥ ``since``,
        every page, as the entries reconciliation matches."""
        ...

    async def get_job(self) -> SynchronizationJob | None:
        """The synchronization job's status, None if not found."""
        ...

    async def aclose(self) -> None: ...


TargetFactory = Callable[[Source], ProvisioningTarget]


def as_mapping(value: Any) -> Mapping[str, Any] | None:
    """Graph models (pydantic) or plain dicts, as Graph-shaped dicts."""
    if value is None or isinstance(value, Mapping):
        return value
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        out = dump(by_alias=True, mode="json")
        return out if isinstance(out, Mapping) else None
    raise TypeError(f"expected a mapping or a pydantic model, got {type(value).__name__}")


class GraphTarget:
    """A :class:`ProvisioningTarget` on the Graph client (or the emulator through it).

    ``send`` posts one bulk request (paced, budgeted and retried by the client) and
    raises the typed error when it is not accepted: a 400 as
    :class:`~connector.errors.BadRequestError`, so the engine isolates the offending
    records within its per-run allowance; a spent budget, "bucket full" or an outage as
    the error that leaves the run waiting (bulkUpload upserts, so re-sending is safe).
    Several ``send`` calls may run at once; the client's limiter paces them together.
    """

    def __init__(self, client: GraphClient, tokens: TokenProvider | None = None) -> None:
        self.client = client
        self._tokens = tokens

    @property
    def job_id(self) -> str | None:
        return self.client.endpoint.job_id

    async def send(self, payload: BulkPayload) -> BatchReceipt:
        delivery = await self.client.post_bulk(payload)
        return BatchReceipt(
            request_id=delivery.request_id, client_request_id=delivery.client_request_id
        )

    async def preflight(self) -> None:
        """Obtain a token now: an identity that cannot get one fails here, not mid-run."""
        if self._tokens is not None:
            await self._tokens.get_token()

    async def iter_logs(self, since: datetime) -> AsyncIterator[LogEntry]:
        async for summary in self.client.iter_provisioning_logs(LogQuery(since=since)):
            entry = log_entry(summary)
            if entry is not None:
                yield entry

    async def get_job(self) -> SynchronizationJob | None:
        try:
            return await self.client.get_job()
        except NotFoundError:
            return None

    async def aclose(self) -> None:
        await self.client.aclose()


def source_cloud(src: Source) -> Cloud:
    """The Graph cloud of a source (the config may say ``usgovdod`` where Cloud says ``dod``)."""
    return Cloud("dod" if src.cloud == "usgovdod" else src.cloud)


def graph_targets(
    config: SourcesConfig,
    store: StateStore,
    tokens: TokenProvider | Callable[[Source], TokenProvider],
    clock: Clock,
    *,
    allow_loopback: bool = False,
    transport: httpx.AsyncBaseTransport | None = None,
    endpoint_for: Callable[[Source], str] | None = None,
    retry: RetryPolicy | None = None,
    max_in_flight: int = DEFAULT_WINDOW,
) -> TargetFactory:
    """A :data:`TargetFactory` building a paced, budgeted Graph client per source.

    The daily call budget (``daily_call_budget``, tenant-wide per the Entra docs) is
    counted in the state store, so every process sharing the store shares the budget.
    One rate limiter per source is shared by every client the factory builds, so
    back-to-back runs stay under the 40-calls-per-5-s window together.
    ``endpoint_for`` overrides a source's endpoint URL (the local emulator: the sources
    config accepts only https Graph URLs). ``retry`` bounds how long a call may wait:
    a Functions host passes a short policy (a long ``Retry-After`` or repeated errors
    then leave the run waiting for the next timer tick instead of holding the function).
    ``max_in_flight`` should be at least the engine's ``window``.
    """
    limiters: dict[str, SlidingWindowLimiter] = {}

    def factory(src: Source) -> ProvisioningTarget:
        if endpoint_for is not None:
            endpoint = ProvisioningEndpoint.parse(endpoint_for(src), allow_loopback=allow_loopback)
        elif src.endpoint is not None:
            endpoint = ProvisioningEndpoint.parse(src.endpoint, allow_loopback=allow_loopback)
        elif src.service_principal_id and src.job_id:
            endpoint = ProvisioningEndpoint.build(
                src.service_principal_id, src.job_id, cloud=source_cloud(src)
            )
        else:  # pragma: no cover - the config model refuses this
            raise ConfigError(f"source {src.name} has no provisioning endpoint")
        provider = tokens(src) if callable(tokens) else tokens
        budget = DailyBudget(config.daily_call_budget, StoreCallBudget(store), clock=clock)
        limiter = limiters.setdefault(src.name, SlidingWindowLimiter(clock=clock))
        client = GraphClient(
            endpoint,
            provider,
            transport=transport,
            clock=clock,
            limiter=limiter,
            budget=budget,
            retry=retry,
            allow_loopback=allow_loopback,
            max_in_flight=max_in_flight,
        )
        return GraphTarget(client, provider)

    return factory
