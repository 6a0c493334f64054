"""A dropped file's bytes on local disk, read from Blob Storage in bounded chunks.

The blob trigger hands the function only the blob's name (an SDK-type binding, see
``docs/functions.md``). The bytes are read here: one ranged GET of at most
:data:`CHUNK_BYTES` at a time, each conditional on the ETag of the version first seen (so
the file is one version, never a mix of two uploads), written to a private temporary file
as they arrive, hashed on the way (SHA-256 for the run id and the copies' metadata, MD5 to
compare with the service's Content-MD5). The engine reads the extract from that file, and
the archive or quarantine copy is uploaded from it, so no step holds the whole file in
memory: memory is bounded by the chunk size, not by the file.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Literal

from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

if TYPE_CHECKING:
    from azure.storage.blob import BlobClient

__all__ = [
    "CHUNK_BYTES",
    "Content",
    "Missing",
    "download_to",
    "local_name",
    "sha256_of",
]

#: The most bytes one GET asks for (and so holds in memory) while a dropped file is read.
CHUNK_BYTES = 4 * 1024 * 1024

#: Why a download produced no file: ``gone`` (deleted meanwhile) or ``changed`` (a newer
#: upload replaced it while it was read; that upload has its own event).
Missing = Literal["gone", "changed"]


@dataclass(frozen=True, slots=True)
class Content:
    """Bytes to copy: a file on local disk (an extract) or a small body in memory (a marker).

    ``sha256`` and ``md5`` are of exactly these bytes; ``etag`` is the version they were
    read from (None for bytes that did not come from a blob).
    """

    size: int
    sha256: str
    md5: bytes
    path: Path | None = None
    body: bytes | None = None
    etag: str | None = None

    @classmethod
    def of_bytes(cls, data: bytes) -> Content:
        """A small in-memory body (a marker, a test's few lines)."""
        return cls(
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            md5=hashlib.md5(data, usedforsecurity=False).digest(),
            body=bytes(data),
        )

    def open(self) -> IO[bytes]:
        """A fresh binary reader over the bytes (the caller closes it)."""
        if self.path is not None:
            return self.path.open("rb")
        return io.BytesIO(self.body or b"")


def local_name(blob_name: str) -> str:
    """The file name a blob is written under: its own base name (messages name it)."""
    base = blob_name.replace("\\", "/").rsplit("/", 1)[-1]
    return base if base not in ("", ".", "..") else "extract.csv"


def download_to(
    blob: BlobClient, folder: Path, *, chunk_bytes: int = CHUNK_BYTES, attempts: int = 3
) -> Content | Missing:
    """Read ``blob`` into ``folder/<its base name>``, one bounded ranged GET at a time.

    Every GET is conditional on the ETag its properties gave. When a newer upload replaces
    the blob mid-way, the read starts again on the new version (up to ``attempts`` times;
    then ``changed``: the newer upload's own event, or the timer's sweep, takes the file).
    """
    if chunk_bytes <= 0:
        raise ValueError("chunk_bytes must be positive")
    path = folder / local_name(str(blob.blob_name))
    for _ in range(attempts):
        try:
            return _read_version(blob, path, chunk_bytes)
        except ResourceNotFoundError:
            return "gone"
        except ResourceModifiedError:
            continue
    return "changed"


def sha256_of(blob: BlobClient, etag: str, size: int, *, chunk_bytes: int = CHUNK_BYTES) -> str:
    """SHA-256 of the version ``etag`` of ``blob`` (ResourceModifiedError when it changed)."""
    sha = hashlib.sha256()
    for chunk in _ranges(blob, etag, size, chunk_bytes):
        sha.update(chunk)
    return sha.hexdigest()


def _read_version(blob: BlobClient, path: Path, chunk_bytes: int) -> Content:
    """One version of ``blob`` into ``path`` (ResourceModifiedError when it changes)."""
    props = blob.get_blob_properties()
    etag, total = str(props.etag), int(props.size)
    sha = hashlib.sha256()
    md5 = hashlib.md5(usedforsecurity=False)
    with path.open("wb") as out:
        for chunk in _ranges(blob, etag, total, chunk_bytes):
            sha.update(chunk)
            md5.update(chunk)
            out.write(chunk)
    return Content(size=total, sha256=sha.hexdigest(), md5=md5.digest(), path=path, etag=etag)


def _ranges(blob: BlobClient, etag: str, total: int, chunk_bytes: int) -> Iterator[bytes]:
    """The ``total`` bytes of version ``etag``, one conditional ranged GET per chunk."""
    done = 0
    while done < total:
        chunk = blob.download_blob(
            offset=done,
            length=min(chunk_bytes, total - done),
            etag=etag,
            match_condition=MatchConditions.IfNotModified,
        ).readall()
        if not chunk:  # shorter than its properties said: read that version again
            raise ResourceModifiedError("the blob ended early")
        done += len(chunk)
        yield chunk
