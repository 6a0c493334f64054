"""``BlobStateStore``: the state store on Azure Blob Storage (for Azure Functions).

Layout: container ``state`` holds ``records/<source>/manifest.json`` (+ the
``index-<gen>`` and ``payloads-<gen>`` blobs it names), ``documents/<key>``,
``counters/calls.json`` and ``locks/<source>``; container ``reports`` holds the report
artifacts. Containers are created on first use if missing.

Atomicity without renames: new index and payload blobs get fresh names, then the
manifest is replaced with an ETag condition (``If-Match``, or create-only for a first
save). Documents and the call counter use the same ETag conditions; the counter retries
on conflict so concurrent runs never lose a call. The per-source lock is a 60-second
blob lease renewed by a heartbeat thread while held: a crashed holder's lease simply
lapses (documented Blob behaviour), so no operator clean-up is needed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import AbstractContextManager
from typing import IO, Any

import orjson
from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.storage.blob import BlobLeaseClient, BlobServiceClient, ContainerClient, ContentSettings

from connector.clock import Clock, SystemClock
from connector.errors import ConcurrentRunError, DocumentConflictError, StateError
from connector.state._codec import merge_payloads, read_index, read_payloads, write_index
from connector.state.base import (
    HeartbeatLock,
    PayloadUpdates,
    RecordIndex,
    SourceLock,
    check_document_key,
    check_source_name,
)

__all__ = ["LEASE_SECONDS", "BlobStateStore"]

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

_COUNTER_RETRIES = 50
_SPOOL_BYTES = 8 * 1024 * 1024


class _BlobLock(HeartbeatLock):
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
        self._lost = False

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


class BlobStateStore:
    """State on Azure Blob Storage. See the module docstring for the layout."""

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
        self._state = service.get_container_client(state_container)
        self._reports = service.get_container_client(reports_container)
        self._clock: Clock = clock or SystemClock()
        self._heartbeat = heartbeat
        self._ready: set[str] = set()
        self._ready_lock = threading.Lock()

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
        return f"BlobStateStore({self._state.url!r})"

    def close(self) -> None:
        self._service.close()

    def _container(self, client: ContainerClient) -> ContainerClient:
        name = client.container_name
        if name not in self._ready:
            with self._ready_lock:
                if name not in self._ready:
                    try:
                        client.create_container()
                    except ResourceExistsError:
                        pass
                    except AzureError as exc:
                        raise StateError(
                            f"cannot create or reach blob container {name!r}: {exc}"
                        ) from exc
                    self._ready.add(name)
        return client

    @property
    def state(self) -> ContainerClient:
        return self._container(self._state)

    @property
    def reports(self) -> ContainerClient:
        return self._container(self._reports)

    def _get(self, name: str) -> tuple[bytes, str] | None:
        try:
            stream = self.state.get_blob_client(name).download_blob()
            data = stream.readall()
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            raise StateError(f"cannot read blob state/{name}: {exc}") from exc
        return data, str(stream.properties.etag)

    def _put(
        self, name: str, data: bytes, *, if_match: str | None = None, if_none_match: bool = False
    ) -> str:
        blob = self.state.get_blob_client(name)
        kw: dict[str, Any] = {"overwrite": not if_none_match}
        if if_match is not None:
            kw.update(etag=if_match, match_condition=MatchConditions.IfNotModified)
        try:
            result = blob.upload_blob(
                data,
                content_settings=ContentSettings(content_type="application/json"),
                **kw,
            )
        except (ResourceExistsError, ResourceModifiedError) as exc:
            raise DocumentConflictError(
                f"blob state/{name} changed since it was read; re-read and retry"
            ) from exc
        except ResourceNotFoundError as exc:
            raise DocumentConflictError(f"blob state/{name} no longer exists") from exc
        except HttpResponseError as exc:
            if exc.status_code in (409, 412):
                raise DocumentConflictError(
                    f"blob state/{name} changed since it was read; re-read and retry"
                ) from exc
            raise StateError(f"cannot write blob state/{name}: {exc}") from exc
        except AzureError as exc:
            raise StateError(f"cannot write blob state/{name}: {exc}") from exc
        return str(result["etag"])

    def _download_to(self, name: str, out: IO[bytes]) -> bool:
        try:
            self.state.get_blob_client(name).download_blob(max_concurrency=2).readinto(out)
        except ResourceNotFoundError:
            return False
        except AzureError as exc:
            raise StateError(f"cannot read blob state/{name}: {exc}") from exc
        out.seek(0)
        return True

    def _upload_from(self, name: str, src: IO[bytes]) -> None:
        src.seek(0)
        try:
            self.state.get_blob_client(name).upload_blob(src, overwrite=True, max_concurrency=2)
        except AzureError as exc:
            raise StateError(f"cannot write blob state/{name}: {exc}") from exc

    def _delete_quietly(self, name: str) -> None:
        with contextlib.suppress(AzureError):
            self.state.delete_blob(name)

    # -- records -----------------------------------------------------------------------

    def _manifest(self, source: str) -> tuple[dict[str, Any], str] | None:
        got = self._get(f"records/{check_source_name(source)}/manifest.json")
        if got is None:
            return None
        data, etag = got
        try:
            manifest = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise StateError(f"state/records/{source}/manifest.json is corrupt: {exc}") from exc
        if not isinstance(manifest, dict):
            raise StateError(f"state/records/{source}/manifest.json is corrupt: not an object")
        return manifest, etag

    def load_records(self, source: str) -> RecordIndex:
        for _ in range(5):
            got = self._manifest(source)
            if got is None:
                return RecordIndex(source=source)
            manifest, etag = got
            name = f"records/{source}/{manifest['index']}"
            with tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES) as tmp:
                if not self._download_to(name, tmp):
                    continue  # replaced by a concurrent save; read the new manifest
                entries = read_index(tmp, f"state/{name}")
            return RecordIndex(source=source, entries=entries, version=etag)
        raise StateError(f"records of source {source!r} keep changing while being read; retry")

    def save_records(
        self,
        index: RecordIndex,
        *,
        payloads: PayloadUpdates | None = None,
        drop: Collection[str] = (),
    ) -> str:
        source = check_source_name(index.source)
        got = self._manifest(source)
        old_etag = None if got is None else got[1]
        if old_etag != index.version:
            raise self._records_conflict(source)
        old = None if got is None else got[0]
        gen = uuid.uuid4().hex
        index_name = f"records/{source}/index-{gen}.jsonl.gz"
        payload_name = f"records/{source}/payloads-{gen}.jsonl.gz"
        drop_set = drop if isinstance(drop, set | frozenset) else set(drop)
        try:
            with tempfile.TemporaryFile() as src, tempfile.TemporaryFile() as out:
                src_name = None if old is None else f"records/{source}/{old['payloads']}"
                have_src = src_name is not None and self._download_to(src_name, src)
                if src_name is not None and not have_src:
                    raise self._records_conflict(source)
                merge_payloads(
                    src if have_src else None, out, payloads or {}, drop_set, f"state/{src_name}"
                )
                self._upload_from(payload_name, out)
            with tempfile.TemporaryFile() as tmp:
                count = write_index(tmp, source, index.entries)
                self._upload_from(index_name, tmp)
            manifest = {
                "version": gen,
                "index": f"index-{gen}.jsonl.gz",
                "payloads": f"payloads-{gen}.jsonl.gz",
                "records": count,
                "saved_at": self._clock.now().isoformat(),
            }
            try:
                etag = self._put(
                    f"records/{source}/manifest.json",
                    orjson.dumps(manifest),
                    if_match=old_etag,
                    if_none_match=old_etag is None,
                )
            except DocumentConflictError:
                raise self._records_conflict(source) from None
        except BaseException:
            self._delete_quietly(index_name)
            self._delete_quietly(payload_name)
            raise
        if old is not None:
            self._delete_quietly(f"records/{source}/{old['index']}")
            self._delete_quietly(f"records/{source}/{old['payloads']}")
        index.version = etag
        return etag

    @staticmethod
    def _records_conflict(source: str) -> DocumentConflictError:
        return DocumentConflictError(
            f"records of source {source!r} were saved by another run since they were loaded;"
            " reload and plan again"
        )

    def get_payloads(self, source: str, external_ids: Collection[str]) -> dict[str, Any]:
        if not external_ids:
            return {}
        for _ in range(5):
            got = self._manifest(source)
            if got is None:
                return {}
            name = f"records/{source}/{got[0]['payloads']}"
            with tempfile.TemporaryFile() as tmp:
                if not self._download_to(name, tmp):
                    continue
                return read_payloads(tmp, external_ids, f"state/{name}")
        raise StateError(f"payloads of source {source!r} keep changing while being read; retry")

    # -- documents ---------------------------------------------------------------------

    def get_document(self, key: str) -> tuple[dict[str, Any], str] | None:
        got = self._get(f"documents/{check_document_key(key)}")
        if got is None:
            return None
        data, etag = got
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise StateError(f"document {key!r} is not valid JSON: {exc}") from exc
        if not isinstance(doc, dict):
            raise StateError(f"document {key!r} is not a JSON object")
        return doc, etag

    def put_document(
        self,
        key: str,
        document: Mapping[str, Any],
        *,
        if_match: str | None = None,
        if_none_match: bool = False,
    ) -> str:
        name = f"documents/{check_document_key(key)}"
        data = orjson.dumps(document, option=orjson.OPT_INDENT_2)
        try:
            return self._put(name, data, if_match=if_match, if_none_match=if_none_match)
        except DocumentConflictError:
            raise DocumentConflictError(
                f"document {key!r} "
                + ("already exists" if if_none_match else "changed since it was read")
                + "; re-read and retry"
            ) from None

    def delete_document(self, key: str, *, if_match: str | None = None) -> bool:
        name = f"documents/{check_document_key(key)}"
        kw: dict[str, Any] = {}
        if if_match is not None:
            kw.update(etag=if_match, match_condition=MatchConditions.IfNotModified)
        try:
            self.state.delete_blob(name, **kw)
        except ResourceNotFoundError:
            if if_match is not None:
                raise DocumentConflictError(f"document {key!r} no longer exists") from None
            return False
        except ResourceModifiedError:
            raise DocumentConflictError(f"document {key!r} changed since it was read") from None
        except AzureError as exc:
            raise StateError(f"cannot delete document {key!r}: {exc}") from exc
        return True

    def list_documents(self, prefix: str = "") -> list[str]:
        base = "documents/"
        try:
            names = [b.name for b in self.state.list_blobs(name_starts_with=base + prefix)]
        except AzureError as exc:
            raise StateError(f"cannot list documents under {prefix!r}: {exc}") from exc
        return sorted(n[len(base) :] for n in names)

    # -- lock --------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self, source: str, owner: str) -> Iterator[SourceLock]:
        blob = self.state.get_blob_client(f"locks/{check_source_name(source)}")
        with contextlib.suppress(ResourceExistsError):
            try:
                blob.upload_blob(b"", overwrite=False)
            except HttpResponseError as exc:
                if exc.status_code not in (409, 412):  # exists, possibly leased
                    raise StateError(f"cannot create lock blob for {source!r}: {exc}") from exc
        try:
            lease = blob.acquire_lease(lease_duration=LEASE_SECONDS)
        except HttpResponseError as exc:
            if exc.status_code == 409:
                raise ConcurrentRunError(
                    f"source {source!r} is locked by another run (blob lease on"
                    f" state/locks/{source}); retry when it has finished — a crashed"
                    f" holder's lease lapses within {LEASE_SECONDS} s"
                ) from exc
            raise StateError(f"cannot lease the lock blob of {source!r}: {exc}") from exc
        except AzureError as exc:
            raise StateError(f"cannot lease the lock blob of {source!r}: {exc}") from exc
        held = _BlobLock(lease, source, owner)
        if self._heartbeat:
            held.start(LEASE_SECONDS / 3)
        try:
            yield held
        finally:
            held.stop()
            with contextlib.suppress(AzureError):
                lease.release()

    def lock(self, source: str, *, owner: str | None = None) -> AbstractContextManager[SourceLock]:
        return self._locked(source, owner or f"{socket.gethostname()}:{os.getpid()}")

    # -- artifacts ---------------------------------------------------------------------

    def write_artifact(self, path: str, data: bytes, *, content_type: str | None = None) -> str:
        blob = self.reports.get_blob_client(check_document_key(path))
        settings = ContentSettings(content_type=content_type) if content_type else None
        try:
            blob.upload_blob(data, overwrite=True, content_settings=settings)
        except AzureError as exc:
            raise StateError(f"cannot write report {path!r}: {exc}") from exc
        return str(blob.url)

    def read_artifact(self, path: str) -> bytes:
        try:
            data: bytes = (
                self.reports.get_blob_client(check_document_key(path)).download_blob().readall()
            )
        except ResourceNotFoundError:
            raise StateError(f"no report file {path!r} in container reports") from None
        except AzureError as exc:
            raise StateError(f"cannot read report {path!r}: {exc}") from exc
        return data

    def list_artifacts(self, prefix: str = "") -> list[str]:
        try:
            return sorted(b.name for b in self.reports.list_blobs(name_starts_with=prefix))
        except AzureError as exc:
            raise StateError(f"cannot list reports under {prefix!r}: {exc}") from exc

    def artifact_location(self, path: str) -> str:
        return str(self._reports.get_blob_client(check_document_key(path)).url)

    # -- call counts -------------------------------------------------------------------

    _COUNTS = "counters/calls.json"

    def _read_counts(self) -> tuple[dict[str, int], str | None]:
        got = self._get(self._COUNTS)
        if got is None:
            return {}, None
        try:
            raw = orjson.loads(got[0])
        except orjson.JSONDecodeError as exc:
            raise StateError(f"call counter state/{self._COUNTS} is corrupt: {exc}") from exc
        counts = {str(k): int(v) for k, v in raw.items()} if isinstance(raw, dict) else {}
        return counts, got[1]

    def load_call_counts(self) -> dict[str, int]:
        return self._read_counts()[0]

    def add_call_counts(
        self, delta: Mapping[str, int], *, prune: Collection[str] = ()
    ) -> dict[str, int]:
        for _ in range(_COUNTER_RETRIES):
            counts, etag = self._read_counts()
            for key, calls in delta.items():
                counts[key] = counts.get(key, 0) + int(calls)
            for key in prune:
                counts.pop(key, None)
            try:
                self._put(
                    self._COUNTS,
                    orjson.dumps(counts, option=orjson.OPT_SORT_KEYS),
                    if_match=etag,
                    if_none_match=etag is None,
                )
            except DocumentConflictError:
                continue  # another run counted at the same moment: re-read and re-add
            return counts
        raise StateError(
            f"the call counter kept changing under {_COUNTER_RETRIES} attempts; retry the run"
        )
