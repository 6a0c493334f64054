"""The drop zone: where HR extracts arrive, and where they go once the connector is done.

Layout (one storage account, containers created if missing)::

    incoming/<source>/<name>                      dropped by HR or their integration tool
    archive/<source>/<yyyy>/<mm>/<dd>/<name>       after the run is planned (date = upload day, UTC)
    archive/<source>/<yyyy>/<mm>/<dd>/<run id>/<name>   ... when that name holds another file
    quarantine/<source>/<name>                     rejected file or unknown source ...
    quarantine/<source>/<name>.error.json          ... with the reason, line numbers and run id
    state/                                         the sync engine's state store
    reports/<source>/<run>/                        report.html, report.json, failures.csv
    approvals/<run id>                             an operator approves a held run (optional
                                                   JSON {"by": "<who>"}), or discards it with
                                                   {"action": "discard", "by": …, "reason": …}
    approvals/<run id>.discard                     ... also discards it (body optional JSON)
    approvals/processed/<marker name>              the timer files a handled marker here (a
                                                   copy) before deleting the marker

Rules that make redelivery (Event Grid is at least once) and re-uploads safe:

* A file leaves ``incoming`` only by **copy first, verify, then delete**. The delete is
  conditional on the ETag of a version whose bytes were checked equal to the copy, so a
  newer upload under the same name is never deleted by an older event (it gets its own).
* Copies are content-addressed: the same bytes at the same destination are not written
  twice; different bytes under a taken archive name go to a ``<run id>/`` folder (a
  quarantined file gets a ``.<sha12>`` suffix) instead of overwriting the earlier file.
  A name is never a reason to fail after the run was applied: if even the alternative is
  taken, a time-stamped name is used.
* A missing incoming blob means an earlier delivery already finished: nothing to do.
"""

from __future__ import annotations

import hashlib
import logging
import posixpath
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import orjson
from azure.core import MatchConditions
from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)

from connector.clock import Clock, SystemClock
from connector.functions.blobfile import (
    CHUNK_BYTES,
    Content,
    Missing,
    download_to,
    sha256_of,
)
from connector.functions.markers import MAX_MARKER_BYTES, ApprovalMarker

if TYPE_CHECKING:
    from azure.storage.blob import BlobClient, BlobServiceClient

__all__ = [
    "APPROVALS",
    "APPROVALS_PROCESSED",
    "ARCHIVE",
    "CONTAINERS",
    "INCOMING",
    "QUARANTINE",
    "REPORTS",
    "STATE",
    "STATUS_BLOB",
    "SWEEP_BLOB",
    "UNKNOWN_SOURCE",
    "DropZone",
    "IncomingBlob",
    "Placement",
    "QuarantineProblem",
    "archive_blob_name",
    "quarantine_blob_names",
    "relative_to_source",
    "split_incoming_name",
]

INCOMING = "incoming"
ARCHIVE = "archive"
QUARANTINE = "quarantine"
STATE = "state"
REPORTS = "reports"
#: Where an operator approves a held run: a blob named after the run id.
APPROVALS = "approvals"
#: Prefix inside ``approvals`` where handled markers are copied before they are deleted.
APPROVALS_PROCESSED = "processed/"
CONTAINERS: tuple[str, ...] = (INCOMING, ARCHIVE, QUARANTINE, STATE, REPORTS, APPROVALS)
#: Quarantine folder for a file dropped at the container root (no source segment).
UNKNOWN_SOURCE = "_unknown"
#: Where the timer leaves its last pass summary for the health endpoint (container, blob).
STATUS_BLOB: tuple[str, str] = (REPORTS, "_connector/status.json")
#: The timer's record of files in ``incoming`` that failed to ingest (container, blob).
SWEEP_BLOB: tuple[str, str] = (REPORTS, "_connector/sweep.json")

_log = logging.getLogger(__name__)


# -- pure naming ---------------------------------------------------------------------


def split_incoming_name(name: str) -> str:
    """The blob name inside ``incoming`` from a trigger's ``name`` (``incoming/a/b.csv``).

    The trigger's ``{name}`` binding gives ``a/b.csv``; ``ingest_extract`` passes the
    container and blob name, ``incoming/a/b.csv``. Both are accepted. Refuses empty names
    and ``..`` segments.
    """
    cleaned = name.strip().lstrip("/")
    if cleaned.startswith(INCOMING + "/"):
        cleaned = cleaned[len(INCOMING) + 1 :]
    parts = cleaned.split("/")
    if not cleaned or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"not a usable blob name in '{INCOMING}': {name!r}")
    return cleaned


def first_segment(blob_name: str) -> str | None:
    """The folder a file was dropped in (``employees`` for ``employees/x.csv``), if any."""
    head, sep, _ = blob_name.partition("/")
    return head if sep else None


def relative_to_source(source: str, blob_name: str) -> str:
    """``blob_name`` without its leading ``<source>/`` folder (kept whole otherwise)."""
    prefix = source + "/"
    return blob_name[len(prefix) :] if blob_name.startswith(prefix) else blob_name


def archive_blob_name(source: str, blob_name: str, received_at: datetime) -> str:
    """``<source>/<yyyy>/<mm>/<dd>/<name>`` in ``archive``; the date is the upload day in UTC."""
    day = received_at.astimezone(UTC)
    rel = relative_to_source(source, blob_name)
    return f"{source}/{day:%Y}/{day:%m}/{day:%d}/{rel}"


def quarantine_blob_names(source: str | None, blob_name: str) -> tuple[str, str]:
    """(file, error file) in ``quarantine`` for ``blob_name`` of ``source``.

    An unknown source keeps the folder it was dropped in (so the operator sees what was
    tried), or :data:`UNKNOWN_SOURCE` for a file at the container root.
    """
    folder = source or first_segment(blob_name) or UNKNOWN_SOURCE
    rel = relative_to_source(folder, blob_name)
    target = f"{folder}/{rel}"
    return target, target + ".error.json"


def archive_fallback_name(source: str, blob_name: str, received_at: datetime, run_id: str) -> str:
    """``<source>/<yyyy>/<mm>/<dd>/<run id>/<name>``: when the plain archive name is taken.

    The run id is the source plus the file's content hash, so two different files never
    share it (and the same file lands on the same name: a redelivery writes nothing).
    """
    day = received_at.astimezone(UTC)
    rel = relative_to_source(source, blob_name)
    return f"{source}/{day:%Y}/{day:%m}/{day:%d}/{run_id}/{rel}"


def _stamped(blob_name: str, moment: datetime) -> str:
    """``a/b.csv`` → ``a/b.<yyyymmddThhmmssffffffZ>.csv``: the last resort, never taken."""
    head, tail = posixpath.split(blob_name)
    stem, ext = posixpath.splitext(tail)
    return posixpath.join(head, f"{stem}.{moment.astimezone(UTC):%Y%m%dT%H%M%S%fZ}{ext}")


def _with_suffix(blob_name: str, sha256: str) -> str:
    """``a/b.csv`` → ``a/b.<sha12>.csv``: a second, different file under a taken name."""
    head, tail = posixpath.split(blob_name)
    stem, ext = posixpath.splitext(tail)
    return posixpath.join(head, f"{stem}.{sha256[:12]}{ext}")


# -- data ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IncomingBlob:
    """What the connector knows of a dropped blob without reading it."""

    name: str  # inside ``incoming``
    etag: str
    size: int
    received_at: datetime  # creation time (UTC); stable across redeliveries
    content_md5: bytes | None


@dataclass(frozen=True, slots=True)
class QuarantineProblem:
    """One reason a file was refused; ``line`` is the 1-based line in the file, if any."""

    reason: str
    line: int | None = None


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a file ended up and whether the incoming copy was removed."""

    container: str
    blob_name: str
    written: bool  # False: an identical copy was already there (redelivery)
    incoming_deleted: bool
    error_blob_name: str | None = None


# -- storage ------------------------------------------------------------------------


class DropZone:
    """The drop-zone containers of one storage account (sync Azure Blob SDK).

    ``service`` is created once per worker process by the caller; this class holds no
    other state, so it is safe to share between invocations. Files are read and copied
    ``chunk_bytes`` at a time (:mod:`connector.functions.blobfile`), never whole.
    """

    def __init__(
        self,
        service: BlobServiceClient,
        *,
        clock: Clock | None = None,
        chunk_bytes: int = CHUNK_BYTES,
    ) -> None:
        self._service = service
        self._clock: Clock = clock or SystemClock()
        self._chunk_bytes = chunk_bytes

    @property
    def service(self) -> BlobServiceClient:
        return self._service

    def ensure_containers(self) -> list[str]:
        """Create any missing drop-zone container; returns the ones created."""
        created: list[str] = []
        for name in CONTAINERS:
            try:
                self._service.create_container(name)
            except ResourceExistsError:
                continue
            created.append(name)
        return created

    def _blob(self, container: str, name: str) -> BlobClient:
        return self._service.get_blob_client(container, name)

    def incoming(self, blob_name: str) -> IncomingBlob | None:
        """Properties of ``incoming/<blob_name>``, or None when it is gone."""
        try:
            props = self._blob(INCOMING, blob_name).get_blob_properties()
        except ResourceNotFoundError:
            return None
        created = props.creation_time or props.last_modified or self._clock.now()
        if created.tzinfo is None:
            created = created.replace(tzinfo=UTC)
        md5 = props.content_settings.content_md5 if props.content_settings else None
        return IncomingBlob(
            name=blob_name,
            etag=str(props.etag),
            size=int(props.size),
            received_at=created.astimezone(UTC),
            content_md5=bytes(md5) if md5 else None,
        )

    # -- moves --------------------------------------------------------------------

    def archive(
        self,
        *,
        source: str,
        blob_name: str,
        data: Content,
        received_at: datetime,
        run_id: str,
    ) -> Placement:
        """Copy the processed bytes to ``archive``, then remove them from ``incoming``."""
        meta = _metadata(source=source, blob_name=blob_name, data=data, run_id=run_id)
        candidates = (
            archive_blob_name(source, blob_name, received_at),
            archive_fallback_name(source, blob_name, received_at, run_id),
        )
        final, written = self._put_once(ARCHIVE, candidates, data, meta)
        deleted = self._delete_incoming_if_same(blob_name, data)
        return Placement(ARCHIVE, final, written, deleted)

    def quarantine(
        self,
        *,
        source: str | None,
        blob_name: str,
        data: Content,
        reason: str,
        problems: list[QuarantineProblem] | None = None,
        run_id: str | None = None,
        received_at: datetime | None = None,
    ) -> Placement:
        """Copy a refused file to ``quarantine`` with ``<name>.error.json``, then delete it.

        The error file says why (``reason``), where (``problems`` with line numbers) and
        which run refused it, so the operator can fix the extract and drop it again.
        """
        target, _ = quarantine_blob_names(source, blob_name)
        meta = _metadata(source=source or "", blob_name=blob_name, data=data, run_id=run_id or "")
        candidates = (target, _with_suffix(target, meta["sha256"]))
        final, written = self._put_once(QUARANTINE, candidates, data, meta)
        error_name = final + ".error.json"
        probs = list(problems or [])
        doc: dict[str, Any] = {
            "reason": reason,
            "source": source,
            "run_id": run_id,
            "incoming_blob": f"{INCOMING}/{blob_name}",
            "quarantined_blob": f"{QUARANTINE}/{final}",
            "sha256": meta["sha256"],
            "size": data.size,
            "received_at": received_at.astimezone(UTC).isoformat() if received_at else None,
            "quarantined_at": self._clock.now().astimezone(UTC).isoformat(),
            "line_numbers": sorted({p.line for p in probs if p.line is not None}),
            "problems": [{"line": p.line, "reason": p.reason} for p in probs],
        }
        self._blob(QUARANTINE, error_name).upload_blob(
            orjson.dumps(doc, option=orjson.OPT_INDENT_2),
            overwrite=True,
            content_settings=_json_content(),
        )
        deleted = self._delete_incoming_if_same(blob_name, data)
        return Placement(QUARANTINE, final, written, deleted, error_blob_name=error_name)

    def _put_once(
        self, container: str, candidates: tuple[str, ...], data: Content, meta: dict[str, str]
    ) -> tuple[str, bool]:
        """Write ``data`` at the first free candidate name, unless the same bytes are there.

        Never overwrites, and never fails for a name: when every candidate holds other
        bytes, the first one gets a time stamp. Returns (blob name used, written now).
        """
        for candidate in candidates:
            found = self._put_or_match(container, candidate, data, meta)
            if found is not None:
                return candidate, found
        stamped = _stamped(candidates[0], self._clock.now())
        _log.warning(
            "%s: every name for this file holds another file; stored under a time-stamped name",
            container,
        )
        while True:
            found = self._put_or_match(container, stamped, data, meta)
            if found is not None:
                return stamped, found
            stamped = _stamped(candidates[0], datetime.now(UTC))

    def _put_or_match(
        self, container: str, name: str, data: Content, meta: dict[str, str]
    ) -> bool | None:
        """True: written now; False: the same bytes were there; None: other bytes are.

        Uploaded from the file, not from memory: the SDK sends a file over its single-put
        size in blocks, one at a time (``max_concurrency=1``).
        """
        blob = self._blob(container, name)
        try:
            with data.open() as fh:
                blob.upload_blob(
                    fh, length=data.size, overwrite=False, metadata=meta, max_concurrency=1
                )
            return True
        except ResourceExistsError:
            pass
        try:
            existing = blob.get_blob_properties()
        except ResourceNotFoundError:  # deleted in between: try the same name again
            return self._put_or_match(container, name, data, meta)
        same = (existing.metadata or {}).get("sha256") == meta["sha256"]
        return False if same and existing.size == data.size else None

    def _delete_incoming_if_same(self, blob_name: str, data: Content) -> bool:
        """Delete ``incoming/<blob_name>`` only if it still holds exactly ``data``.

        The version ``data`` was read from (its ETag), or else checked by Content-MD5 when
        the service recorded one, else by reading it back; the delete is conditional on
        that version's ETag.
        """
        blob = self._blob(INCOMING, blob_name)
        current = self.incoming(blob_name)
        if current is None:
            return False  # already removed by an earlier delivery
        if current.size != data.size:
            _log.info("incoming blob changed since it was read; left for its own event")
            return False
        etag = current.etag
        if data.etag is not None and data.etag == etag:
            same = True  # the very version the copy was read from
        elif current.content_md5 is not None:
            same = current.content_md5 == data.md5
        else:
            try:
                digest = sha256_of(blob, etag, current.size, chunk_bytes=self._chunk_bytes)
            except (ResourceModifiedError, ResourceNotFoundError):
                return False
            same = digest == data.sha256
        if not same:
            _log.info("incoming blob holds other bytes than the copy; left for its own event")
            return False
        try:
            blob.delete_blob(etag=etag, match_condition=MatchConditions.IfNotModified)
        except ResourceNotFoundError:
            return False
        except ResourceModifiedError:
            return False
        return True

    # -- listing and reading ------------------------------------------------------

    def list_incoming(self) -> list[IncomingBlob]:
        """Every file in ``incoming``, oldest upload first (names and properties, no bytes)."""
        out: list[IncomingBlob] = []
        for item in self._service.get_container_client(INCOMING).list_blobs():
            created = item.creation_time or item.last_modified or self._clock.now()
            if created.tzinfo is None:
                created = created.replace(tzinfo=UTC)
            md5 = item.content_settings.content_md5 if item.content_settings else None
            out.append(
                IncomingBlob(
                    name=str(item.name),
                    etag=str(item.etag),
                    size=int(item.size or 0),
                    received_at=created.astimezone(UTC),
                    content_md5=bytes(md5) if md5 else None,
                )
            )
        out.sort(key=lambda b: (b.received_at, b.name))
        return out

    def download_incoming(self, blob_name: str, folder: Path) -> Content | Missing:
        """``incoming/<blob_name>`` into ``folder``, a bounded chunk at a time.

        ``gone`` when it was removed meanwhile, ``changed`` when newer uploads kept
        replacing it while it was read (each has its own event).
        """
        return download_to(self._blob(INCOMING, blob_name), folder, chunk_bytes=self._chunk_bytes)

    # -- approvals ------------------------------------------------------------------

    def approval_markers(self) -> list[ApprovalMarker]:
        """The markers waiting in ``approvals`` (not the ones already filed), oldest first."""
        container = self._service.get_container_client(APPROVALS)
        items = [
            i for i in container.list_blobs() if not str(i.name).startswith(APPROVALS_PROCESSED)
        ]
        items.sort(key=lambda i: (i.creation_time or i.last_modified or self._clock.now(), i.name))
        out: list[ApprovalMarker] = []
        for item in items:
            data = b""
            complete = int(item.size or 0) <= MAX_MARKER_BYTES
            if complete:
                try:
                    data = bytes(
                        container.get_blob_client(item.name)
                        .download_blob(
                            etag=item.etag, match_condition=MatchConditions.IfNotModified
                        )
                        .readall()
                    )
                except (ResourceModifiedError, ResourceNotFoundError):
                    continue  # replaced or removed meanwhile: the next pass sees it
            out.append(
                ApprovalMarker(
                    name=str(item.name), etag=str(item.etag), data=data, complete=complete
                )
            )
        return out

    def file_approval_marker(self, marker: ApprovalMarker, outcome: str) -> Placement:
        """Copy a handled marker to ``approvals/processed/<marker name>``, then delete it.

        ``outcome`` (a short code such as ``approved`` or ``discarded``) is kept in the
        copy's metadata, with the action the marker asked for. The delete is conditional on
        the marker's ETag: a marker replaced meanwhile stays for the next pass.
        """
        meta = {
            "sha256": hashlib.sha256(marker.data).hexdigest(),
            "run_id": quote(marker.run_id, safe=""),
            "action": quote(str(marker.action), safe=""),
            "outcome": quote(outcome, safe=""),
            "processed_at": self._clock.now().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        target = APPROVALS_PROCESSED + marker.name
        body = Content.of_bytes(marker.data)
        final, written = self._put_once(
            APPROVALS, (target, _with_suffix(target, meta["sha256"])), body, meta
        )
        try:
            self._blob(APPROVALS, marker.name).delete_blob(
                etag=marker.etag, match_condition=MatchConditions.IfNotModified
            )
            deleted = True
        except (ResourceModifiedError, ResourceNotFoundError):
            deleted = False
        return Placement(APPROVALS, final, written, deleted)

    # -- small JSON documents -------------------------------------------------------

    def write_json(self, container: str, blob_name: str, doc: Any) -> None:
        self._blob(container, blob_name).upload_blob(
            orjson.dumps(doc, option=orjson.OPT_INDENT_2),
            overwrite=True,
            content_settings=_json_content(),
        )

    def read_json(self, container: str, blob_name: str) -> Any | None:
        try:
            raw = self._blob(container, blob_name).download_blob().readall()
        except ResourceNotFoundError:
            return None
        return orjson.loads(raw)

    def exists(self, container: str, blob_name: str) -> bool:
        return bool(self._blob(container, blob_name).exists())

    def probe(self) -> bool:
        """True when the account answers (for the health endpoint)."""
        try:
            self._service.get_container_client(INCOMING).get_container_properties()
        except Exception:  # any failure means "not reachable" for a health probe
            return False
        return True


def _metadata(*, source: str, blob_name: str, data: Content, run_id: str) -> dict[str, str]:
    # Metadata values must be ASCII: names are percent-encoded.
    return {
        "sha256": data.sha256,
        "source": quote(source, safe=""),
        "incoming": quote(blob_name, safe="/"),
        "run_id": quote(run_id, safe=""),
    }


def _json_content() -> Any:
    from azure.storage.blob import ContentSettings

    return ContentSettings(content_type="application/json")
