"""Building the hosted connector: settings → storage → state store → targets → engine.

Graph targets are bounded for a function invocation (:data:`FUNCTIONS_RETRY`,
:data:`WAIT_BUDGET_SECONDS`) and built once per event loop, because each invocation
runs its own loop and a target's pacing lock belongs to one loop. Locally the targets
point at the loopback emulator instead of Graph.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import weakref
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from connector.clock import Clock
from connector.config import Source, SourcesConfig, parse_sources
from connector.errors import ConfigError, ThrottledError
from connector.functions.settings import AppSettings
from connector.graph.client import RetryPolicy
from connector.state.blob import BlobStateStore
from connector.sync.approval_hint import ApprovalHint
from connector.sync.engine import Engine
from connector.sync.targets import BatchReceipt, ProvisioningTarget, TargetFactory
from connector.sync.wiring import build_engine

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient

    from connector.scim import BulkPayload
    from connector.sources.sql import TokenSource

__all__ = [
    "FUNCTIONS_RETRY",
    "WAIT_BUDGET_SECONDS",
    "blob_service",
    "graph_target_factory",
    "hosted_engine",
    "load_sources",
    "pull_credential",
]

#: Graph retries inside a function invocation: short. A ``Retry-After`` over 30 s, or a
#: second 429/5xx on the same request, ends the attempt and the run waits for the timer
#: (the engine records it as waiting). Documented service behaviour: 429 carries
#: ``Retry-After``; the bounds are our choice, so one invocation never sits for minutes.
FUNCTIONS_RETRY = RetryPolicy(
    max_attempts=2,
    backoff_base=1.0,
    backoff_max=10.0,
    max_retry_after=30.0,
    bucket_full_wait=30.0,
    bucket_full_attempts=1,
    timeout=60.0,
)

#: Retry waits (429, 5xx back-off) one run's upload may spend in one invocation before it
#: stops and is left waiting for the timer; with ``FUNCTIONS_RETRY`` the total stays under
#: this plus one ``max_retry_after``, however many batches are throttled.
WAIT_BUDGET_SECONDS = 30.0

_APP_ROOT = Path(__file__).resolve().parents[2]


def hosted_engine(
    config: SourcesConfig,
    store: BlobStateStore,
    targets: TargetFactory,
    clock: Clock,
    *,
    account: str | None = None,
) -> Engine:
    """The engine as hosted (:func:`connector.sync.wiring.build_engine`, as the CLI builds
    it): one per worker process, its lock owner named after it. ``account``: the storage
    account holding ``approvals``, so a held run's report prints the approval-marker
    uploads (docs/deploy.md step 7) with the account filled in."""
    owner = f"functions:{socket.gethostname()}:{os.getpid()}"
    hint = ApprovalHint.approvals_blob(account) if account else None
    return build_engine(config, store, targets, clock, owner=owner, approval_hint=hint)


def load_sources(settings: AppSettings) -> SourcesConfig:
    """The sources config; CONNECTOR_DAILY_CALL_BUDGET, when set, overrides its budget."""
    config = parse_sources(settings.sources_document, path=_APP_ROOT / "CONNECTOR_SOURCES")
    if "connector_daily_call_budget" not in settings.model_fields_set:
        return config
    return config.model_copy(update={"daily_call_budget": settings.connector_daily_call_budget})


def pull_credential(settings: AppSettings, config: SourcesConfig) -> TokenSource | None:
    """The managed identity for ``sql`` sources with ``auth: entra`` (None when no source
    uses it): the app's user-assigned identity named by the Graph client id setting, or
    the system-assigned one without it. The database's Entra administrator creates a
    login/role for that identity (docs/sources.md)."""
    if not any(s.sql is not None and s.sql.auth == "entra" for s in config.sources):
        return None
    from azure.identity import ManagedIdentityCredential

    credential: TokenSource = ManagedIdentityCredential(client_id=settings.graph_client_id)
    return credential


def blob_service(settings: AppSettings) -> BlobServiceClient:
    """The drop-zone account's client, resolved like the host resolves the trigger."""
    from azure.storage.blob import BlobServiceClient

    target = settings.storage
    if target.connection_string is not None:
        return BlobServiceClient.from_connection_string(target.connection_string)
    if target.mode == "managed_identity":
        from azure.identity import ManagedIdentityCredential

        credential: Any = ManagedIdentityCredential(client_id=target.managed_identity_client_id)
    else:
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential()
    if target.blob_service_uri is None:  # the settings model refuses this
        raise ConfigError("HrDropStorage__blobServiceUri: missing")
    return BlobServiceClient(target.blob_service_uri, credential=credential)


class _WaitBoundedTarget:
    """A Graph target that stops sending once its client has waited long enough.

    ``FUNCTIONS_RETRY`` bounds each request's waits; this bounds their sum over one
    upload, so a run throttled on every batch leaves the invocation after about
    :data:`WAIT_BUDGET_SECONDS` instead of ``batches × Retry-After``. Raising
    :class:`ThrottledError` makes the engine record the run as waiting (``throttled``).
    """

    def __init__(self, inner: ProvisioningTarget) -> None:
        self._inner = inner

    @property
    def job_id(self) -> str | None:
        return self._inner.job_id

    def waited(self) -> float:
        metrics = getattr(getattr(self._inner, "client", None), "metrics", None)
        return float(getattr(metrics, "waited_seconds", 0.0))

    async def send(self, payload: BulkPayload) -> BatchReceipt:
        waited = self.waited()
        if waited >= WAIT_BUDGET_SECONDS:
            raise ThrottledError(
                f"waited {waited:.0f} s on throttling during this invocation (budget"
                f" {WAIT_BUDGET_SECONDS:.0f} s); the timer continues the run"
            )
        return await self._inner.send(payload)

    def iter_logs(self, since: datetime) -> AsyncIterator[Any]:
        return self._inner.iter_logs(since)

    async def get_job(self) -> Any:
        return await self._inner.get_job()

    async def aclose(self) -> None:
        await self._inner.aclose()


class _PerLoopTargets:
    """A target factory with one inner factory per running event loop.

    Each invocation runs its own event loop on its own thread; the inner factory's
    per-source rate limiter holds an ``asyncio.Lock``, which must not be shared between
    loops. Runs of one source never upload at the same time (the engine's source lock),
    so pacing per loop loses nothing; the service's 429 stays the backstop.
    """

    def __init__(self, build: Callable[[], TargetFactory]) -> None:
        self._build = build
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, TargetFactory] = (
            weakref.WeakKeyDictionary()
        )
        self._outside: TargetFactory | None = None
        self._lock = threading.Lock()

    def factory(self) -> TargetFactory:
        """The inner factory of the running loop (a shared one outside any loop)."""
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        with self._lock:
            if loop is None:
                if self._outside is None:
                    self._outside = self._build()
                return self._outside
            found = self._by_loop.get(loop)
            if found is None:
                found = self._by_loop[loop] = self._build()
            return found

    def __call__(self, src: Source) -> ProvisioningTarget:
        return _WaitBoundedTarget(self.factory()(src))


def graph_target_factory(
    settings: AppSettings, config: SourcesConfig, store: BlobStateStore, clock: Clock
) -> TargetFactory:
    """Graph targets for the sources: managed identity in Azure, the emulator locally."""
    from connector.graph.auth import CredentialTokenProvider
    from connector.graph.endpoint import Cloud, ProvisioningEndpoint
    from connector.sync.targets import graph_targets, source_cloud

    if settings.connector_emulator_url is not None:
        return _emulator_target_factory(settings, config, store, clock)
    from azure.identity import ManagedIdentityCredential

    # One credential per process (it caches tokens and is thread-safe); a token provider
    # per Graph client, because a provider's lock belongs to the event loop that uses it.
    credential = ManagedIdentityCredential(client_id=settings.require_graph_client_id())

    def tokens(src: Source) -> CredentialTokenProvider:
        if src.endpoint is not None:
            cloud = ProvisioningEndpoint.parse(src.endpoint).cloud or Cloud.GLOBAL
        else:
            cloud = source_cloud(src)
        return CredentialTokenProvider(credential, cloud.scope, clock=clock)

    return _PerLoopTargets(
        lambda: graph_targets(config, store, tokens, clock, retry=FUNCTIONS_RETRY)
    )


def _emulator_target_factory(
    settings: AppSettings, config: SourcesConfig, store: BlobStateStore, clock: Clock
) -> TargetFactory:
    """Local development: every source's job, at the same ids, on the loopback emulator."""
    from connector.graph.auth import StaticTokenProvider
    from connector.graph.endpoint import ProvisioningEndpoint
    from connector.sync.targets import graph_targets, source_cloud

    base = settings.connector_emulator_url
    if base is None:  # pragma: no cover - checked by the caller
        raise ConfigError("CONNECTOR_EMULATOR_URL: missing")
    token = settings.emulator_token_for(base)  # refuses anything but loopback
    if token is None:  # pragma: no cover - the settings model pairs URL and token
        raise ConfigError("CONNECTOR_EMULATOR_TOKEN: missing")

    def endpoint_for(src: Source) -> str:
        if src.endpoint is not None:
            real = ProvisioningEndpoint.parse(src.endpoint)
        elif src.service_principal_id is not None and src.job_id is not None:
            real = ProvisioningEndpoint.build(
                src.service_principal_id, src.job_id, cloud=source_cloud(src)
            )
        else:  # pragma: no cover - the config model refuses this
            raise ConfigError(f"source {src.name} has no provisioning endpoint")
        return (
            f"{base}/{real.api_version}/servicePrincipals/{real.service_principal_id}"
            f"/synchronization/jobs/{real.job_id}/bulkUpload"
        )

    return _PerLoopTargets(
        lambda: graph_targets(
            config,
            store,
            StaticTokenProvider(token),
            clock,
            allow_loopback=True,
            endpoint_for=endpoint_for,
            retry=FUNCTIONS_RETRY,
        )
    )
