"""The state store on Azure Blob Storage (for Azure Functions).

Container ``state`` holds the store's names (:mod:`connector.state.store`) as blobs,
container ``reports`` the report artifacts; containers are created on first use if
missing.

Atomicity without renames: conditional writes are ETag conditions (``If-Match``, or
create-only), which the store uses for the record manifest, documents and the call
counter. The per-source lock is a 60-second lease on the empty blob ``locks/<source>``,
renewed by a heartbeat thread while held: a crashed holder's lease simply lapses
(documented Blob behaviour), so no operator clean-up is needed.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from typing import IO, Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.storage.blob import BlobLeaseClient, BlobServiceClient, ContainerClient, ContentSettings

from connector.clock import Clock
from connector.errors import ConcurrentRunError, DocumentConflictError, StateError
from connector.state.backend import HeldLock
from connector.state.store import StateStore

__all__ = ["LEASE_SECONDS", "LOST_AFTER_SECONDS", "BlobBackend", "BlobStateStore"]

LEASE_SECONDS = 60
"""Lease length (Blob allows 15-60 s or infinite; infinite would outlive a crash)."""

RENEW_TIMEOUT_SECONDS = 10
"""Bound on one renewal call (server timeout, connect and read timeouts, no SDK retries:
the lock retries itself), so a stuck call cannot outlast the lease."""

LOST_AFTER_SECONDS = LEASE_SECONDS * 2 / 3
"""Without a successful renewal for this long the lock counts as lost: the lease may lapse
before the next renewal could land (our margin; Blob only says the lease expires after
its duration without a renewal)."""

log = logging.getLogger(__name__)

_SPOOL_BYTES = 8 * 1024 * 1024


class BlobLock(HeldLock):
    """A held lease; a daemon thread renews it every ``LEASE_SECONDS / 3``.

    ``lost`` turns true when a renewal kept failing, and also as soon as no renewal has
    succeeded for :data:`LOST_AFTER_SECONDS` (a renewal stuck in the network must not let
    the lease lapse while this holder still thinks it owns the source). The age is
    measured on the real monotonic clock: the lease expires in real time at the service.
    """

    def __init__(
        self,
        lease: BlobLeaseClient,
        source: str,
        owner: str,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(source, owner)
        self._lease = lease
        self._monotonic = monotonic
        self._renewed_at = monotonic()

    @property
    def lost(self) -> bool:
        if not self._lost and self._monotonic() - self._renewed_at > LOST_AFTER_SECONDS:
            self._lost = True
            log.warning(
                "lease on source %s: no successful renewal for %.0f s; counted as lost",
                self._source,
                LOST_AFTER_SECONDS,
            )
        return self._lost

    @lost.setter
    def lost(self, value: bool) -> None:
        self._lost = value

    def _renew_once(self) -> None:
        self._lease.renew(
            timeout=RENEW_TIMEOUT_SECONDS,
            connection_timeout=RENEW_TIMEOUT_SECONDS,
            read_timeout=RENEW_TIMEOUT_SECONDS,
            retry_total=0,
        )
        self._renewed_at = self._monotonic()

    def renew(self) -> None:
        if self.lost:
            raise ConcurrentRunError(
                f"the lease on source {self._source!r} was not renewed in time;"
                " another run may take over — stop this one"
            )
        try:
            self._renew_once()
        except AzureError as exc:
            self.lost = True
            raise ConcurrentRunError(
                f"the lease on source {self._source!r} could not be renewed"
                f" ({exc.__class__.__name__});"
                " another run may take over — stop this one"
            ) from exc

    def _renew_with_retries(self, interval: float = LEASE_SECONDS / 3) -> bool:
        """Renew, retrying a failed call with backoff (2, 4, 8 s: well inside the lease's
        remaining two thirds); False and ``lost`` once it kept failing — the engine
        checks ``lost`` before each send and journal write."""
        delay = 2.0
        for attempt in range(4):
            if self.lost:
                return False  # too late: the lease may have lapsed; never renew it back
            try:
                self._renew_once()
                return True
            except AzureError as exc:
                if attempt == 3:
                    log.warning(
                        "lease on source %s lost after %d renewal attempts (%s)",
                        self._source,
                        attempt + 1,
                        type(exc).__name__,
                    )
                    break
                if self._stop.wait(delay):
                    return True  # released meanwhile
                delay *= 2
        self.lost = True
        return False

    def release(self) -> None:
        with contextlib.suppress(AzureError):
            self._lease.release()


def _is_conflict(exc: HttpResponseError) -> bool:
    return exc.status_code in (409, 412)


class BlobBackend:
    """Names as blobs in one container, created on first use."""

    def __init__(self, container: ContainerClient) -> None:
        self._client = container
        self._ready = False
        self._ready_lock = threading.Lock()

    @property
    def url(self) -> str:
        return str(self._client.url)

    @property
    def heartbeat_interval(self) -> float:
        return LEASE_SECONDS / 3

    @property
    def container(self) -> ContainerClient:
        """The container client, after making sure the container exists."""
        if not self._ready:
            with self._ready_lock:
                if not self._ready:
                    try:
                        self._client.create_container()
                    except ResourceExistsError:
                        pass
                    except AzureError as exc:
                        raise StateError(
                            f"cannot create or reach blob container"
                            f" {self._client.container_name!r}: {exc}"
                        ) from exc
                    self._ready = True
        return self._client

    def describe(self, name: str) -> str:
        return f"{self._client.container_name}/{name}"

    def location(self, name: str) -> str:
        return str(self._client.get_blob_client(name).url)

    # -- bytes -------------------------------------------------------------------------

    def get(self, name: str) -> tuple[bytes, str] | None:
        try:
            stream = self.container.get_blob_client(name).download_blob()
            data: bytes = stream.readall()
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            raise StateError(f"cannot read blob {self.describe(name)}: {exc}") from exc
        return data, str(stream.properties.etag)

    def put(
        self,
        name: str,
        data: bytes,
        *,
        content_type: str | None = None,
        if_match: str | None = None,
        if_none_match: bool = False,
    ) -> str:
        blob = self.container.get_blob_client(name)
        kw: dict[str, Any] = {"overwrite": not if_none_match}
        if if_match is not None:
            kw.update(etag=if_match, match_condition=MatchConditions.IfNotModified)
        settings = ContentSettings(content_type=content_type) if content_type else None
        changed = f"blob {self.describe(name)} changed since it was read; re-read and retry"
        try:
            result = blob.upload_blob(data, content_settings=settings, **kw)
        except (ResourceExistsError, ResourceModifiedError) as exc:
            raise DocumentConflictError(changed) from exc
        except ResourceNotFoundError as exc:
            raise DocumentConflictError(f"blob {self.describe(name)} no longer exists") from exc
        except HttpResponseError as exc:
            if _is_conflict(exc):
                raise DocumentConflictError(changed) from exc
            raise StateError(f"cannot write blob {self.describe(name)}: {exc}") from exc
        except AzureError as exc:
            raise StateError(f"cannot write blob {self.describe(name)}: {exc}") from exc
        return str(result["etag"])

    def delete(self, name: str, *, if_match: str | None = None) -> bool:
        kw: dict[str, Any] = {}
        if if_match is not None:
            kw.update(etag=if_match, match_condition=MatchConditions.IfNotModified)
        try:
            self.container.delete_blob(name, **kw)
        except ResourceNotFoundError:
            if if_match is not None:
                raise DocumentConflictError(
                    f"blob {self.describe(name)} no longer exists"
                ) from None
            return False
        except ResourceModifiedError:
            raise DocumentConflictError(
                f"blob {self.describe(name)} changed since it was read"
            ) from None
        except AzureError as exc:
            raise StateError(f"cannot delete blob {self.describe(name)}: {exc}") from exc
        return True

    def delete_quietly(self, name: str) -> None:
        with contextlib.suppress(AzureError):
            self.container.delete_blob(name)

    def list(self, prefix: str) -> list[str]:
        try:
            return sorted(b.name for b in self.container.list_blobs(name_starts_with=prefix))
        except AzureError as exc:
            raise StateError(f"cannot list blobs under {self.describe(prefix)}: {exc}") from exc

    @contextlib.contextmanager
    def reader(self, name: str) -> Iterator[IO[bytes] | None]:
        """Downloads into a spooled temporary file (memory up to 8 MiB, then disk)."""
        with tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES) as tmp:
            try:
                self.container.get_blob_client(name).download_blob(max_concurrency=2).readinto(tmp)
            except ResourceNotFoundError:
                yield None
                return
            except AzureError as exc:
                raise StateError(f"cannot read blob {self.describe(name)}: {exc}") from exc
            tmp.seek(0)
            yield tmp

    @contextlib.contextmanager
    def writer(self, name: str, *, content_type: str | None = None) -> Iterator[IO[bytes]]:
        """Spools to a temporary file, uploaded when the block completes."""
        settings = ContentSettings(content_type=content_type) if content_type else None
        with tempfile.TemporaryFile() as tmp:
            yield tmp
            tmp.seek(0)
            try:
                self.container.get_blob_client(name).upload_blob(
                    tmp, overwrite=True, max_concurrency=2, content_settings=settings
                )
            except AzureError as exc:
                raise StateError(f"cannot write blob {self.describe(name)}: {exc}") from exc

    # -- lock --------------------------------------------------------------------------

    def acquire_lock(self, name: str, *, source: str, owner: str) -> HeldLock:
        blob = self.container.get_blob_client(name)
        with contextlib.suppress(ResourceExistsError):
            try:
                blob.upload_blob(b"", overwrite=False)
            except HttpResponseError as exc:
                if not _is_conflict(exc):  # exists, possibly leased
                    raise StateError(f"cannot create lock blob for {source!r}: {exc}") from exc
        try:
            lease = blob.acquire_lease(lease_duration=LEASE_SECONDS)
        except HttpResponseError as exc:
            if exc.status_code == 409:
                raise ConcurrentRunError(
                    f"source {source!r} is locked by another run (blob lease on"
                    f" {self.describe(name)}); retry when it has finished — a crashed"
                    f" holder's lease lapses within {LEASE_SECONDS} s"
                ) from exc
            raise StateError(f"cannot lease the lock blob of {source!r}: {exc}") from exc
        except AzureError as exc:
            raise StateError(f"cannot lease the lock blob of {source!r}: {exc}") from exc
        return BlobLock(lease, source, owner)


class BlobStateStore(StateStore):
    """The state store on Blob Storage: containers ``state`` and ``reports`` by default."""

    def __init__(
        self,
        service: BlobServiceClient,
        *,
        state_container: str = "state",
        reports_container: str = "reports",
        clock: Clock | None = None,
        heartbeat: bool = True,
    ) -> None:
        self._service = service
        state = BlobBackend(service.get_container_client(state_container))
        reports = BlobBackend(service.get_container_client(reports_container))
        super().__init__(state, reports, clock=clock, heartbeat=heartbeat, record_version="etag")
        self._state_url = state.url

    @classmethod
    def from_connection_string(cls, connection_string: str, **kw: Any) -> BlobStateStore:
        """A store from a storage connection string (Azurite or a real account)."""
        return cls(BlobServiceClient.from_connection_string(connection_string), **kw)

    @classmethod
    def from_account_url(cls, account_url: str, credential: Any, **kw: Any) -> BlobStateStore:
        """A store from ``https://<account>.blob.core.windows.net`` and a credential
        (e.g. a managed identity's ``DefaultAzureCredential``)."""
        return cls(BlobServiceClient(account_url, credential=credential), **kw)

    def __repr__(self) -> str:
        return f"BlobStateStore({self._state_url!r})"

    def close(self) -> None:
        self._service.close()
