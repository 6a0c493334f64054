"""The drop zone: where HR extracts arrive, and where they go once the connector is done.

Layout (one storage account, containers created if missing)::

    incoming/<source>/<name>                      dropped by HR or their integration tool
    archive/<source>/<yyyy>/<mm>/<dd>/<name>       after the run is planned (date = upload day, UTC)
    quarantine/<source>/<name>                     rejected file or unknown source ...
    quarantine/<source>/<name>.error.json          ... with the reason, line numbers and run id
    state/                                         the sync engine's state store
    reports/<source>/<run>/                        report.html, report.json, failures.csv

Rules that make redelivery (Event Grid is at least once) and re-uploads safe:

* A file leaves ``incoming`` only by **copy first, verify, then delete**. The delete is
  conditional on the ETag of a version whose bytes were checked equal to the copy, so a
  newer upload under the same name is never deleted by an older event (it gets its own).
* Copies are content-addressed: the same bytes at the same destination are not written
  twice; different bytes under a taken name get a ``.<sha12>`` suffix instead of
  overwriting the earlier file.
* A missing incoming blob means an earlier delivery already finished: nothing to do.
"""

from __future__ import annotations

import hashlib
import logging
import posixpath
from dataclasses import dataclass
from datetime import UTC, datetime
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
from connector.errors import StateError

if TYPE_CHECKING:
    from azure.storage.blob import BlobClient, BlobServiceClient

__all__ = [
    "ARCHIVE",
    "CONTAINERS",
    "INCOMING",
    "QUARANTINE",
    "REPORTS",
    "STATE",
    "STATUS_BLOB",
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
CONTAINERS: tuple[str, ...] = (INCOMING, ARCHIVE, QUARANTINE, STATE, REPORTS)
#: Quarantine folder for a file dropped at the container root (no source segment).
UNKNOWN_SOURCE = "_unknown"
#: Where the timer leaves its last pass summary for the health endpoint (container, blob).
STATUS_BLOB: tuple[str, str] = (REPORTS, "_connector/status.json")

_log = logging.getLogger(__name__)


# -- pure naming ---------------------------------------------------------------------


def split_incoming_name(name: str) -> str:
    """The blob name inside ``incoming`` from a trigger's ``name`` (``incoming/a/b.csv``).

    The trigger's ``{name}`` binding gives ``a/b.csv``; ``InputStream.name`` gives
    ``incoming/a/b.csv``. Both are accepted. Refuses empty names and ``..`` segments.
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
    other state, so it is safe to share between invocations.
    """

    def __init__(self, service: BlobServiceClient, *, clock: Clock | None = None) -> None:
        self._service = service
        self._clock: Clock = clock or SystemClock()

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
        data: bytes,
        received_at: datetime,
        run_id: str,
    ) -> Placement:
        """Copy the processed bytes to ``archive``, then remove them from ``incoming``."""
        target = archive_blob_name(source, blob_name, received_at)
        meta = _metadata(source=source, blob_name=blob_name, data=data, run_id=run_id)
        final, written = self._put_once(ARCHIVE, target, data, meta)
        deleted = self._delete_incoming_if_same(blob_name, data)
        return Placement(ARCHIVE, final, written, deleted)

    def quarantine(
        self,
        *,
        source: str | None,
        blob_name: str,
        data: bytes,
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
        final, written = self._put_once(QUARANTINE, target, data, meta)
        error_name = final + ".error.json"
        probs = list(problems or [])
        doc: dict[str, Any] = {
            "reason": reason,
            "source": source,
            "run_id": run_id,
            "incoming_blob": f"{INCOMING}/{blob_name}",
            "quarantined_blob": f"{QUARANTINE}/{final}",
            "sha256": meta["sha256"],
            "size": len(data),
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
        self, container: str, target: str, data: bytes, meta: dict[str, str]
    ) -> tuple[str, bool]:
        """Write ``data`` at ``target`` unless the same bytes are there; never overwrite.

        Returns (blob name used, whether it was written now).
        """
        for candidate in (target, _with_suffix(target, meta["sha256"])):
            blob = self._blob(container, candidate)
            try:
                blob.upload_blob(data, overwrite=False, metadata=meta)
                return candidate, True
            except ResourceExistsError:
                pass
            try:
                existing = blob.get_blob_properties()
            except ResourceNotFoundError:  # deleted in between: try the same name again
                blob.upload_blob(data, overwrite=False, metadata=meta)
                return candidate, True
            if (existing.metadata or {}).get("sha256") == meta["sha256"] and existing.size == len(
                data
            ):
                return candidate, False
        raise StateError(
            f"{container}/{target} and its content-addressed alternative both hold other "
            "files; move them away and drop the extract again"
        )

    def _delete_incoming_if_same(self, blob_name: str, data: bytes) -> bool:
        """Delete ``incoming/<blob_name>`` only if it still holds exactly ``data``.

        Checked by Content-MD5 when the service recorded one, else by reading it back;
        the delete is conditional on that version's ETag.
        """
        blob = self._blob(INCOMING, blob_name)
        current = self.incoming(blob_name)
        if current is None:
            return False  # already removed by an earlier delivery
        if current.size != len(data):
            _log.info("incoming blob changed since it was read; left for its own event")
            return False
        etag = current.etag
        if current.content_md5 is not None:
            same = current.content_md5 == hashlib.md5(data, usedforsecurity=False).digest()
        else:
            try:
                downloader = blob.download_blob(
                    etag=etag, match_condition=MatchConditions.IfNotModified
                )
            except (ResourceModifiedError, ResourceNotFoundError):
                return False
            digest = hashlib.sha256()
            for chunk in downloader.chunks():
                digest.update(chunk)
            same = digest.hexdigest() == hashlib.sha256(data).hexdigest()
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


def _metadata(*, source: str, blob_name: str, data: bytes, run_id: str) -> dict[str, str]:
    # Metadata values must be ASCII: names are percent-encoded.
    return {
        "sha256": hashlib.sha256(data).hexdigest(),
        "source": quote(source, safe=""),
        "incoming": quote(blob_name, safe="/"),
        "run_id": quote(run_id, safe=""),
    }


def _json_content() -> Any:
    from azure.storage.blob import ContentSettings

    return ContentSettings(content_type="application/json")
