"""``LocalStateStore``: the state store on a local directory (CLI and demo default).

Layout under the root directory::

    records/<source>/manifest.json            which index + payload files are current
    records/<source>/index-<gen>.jsonl.gz     the record index
    records/<source>/payloads-<gen>.jsonl.gz  last payload sent per record
    documents/<key>                           JSON documents (run journals, markers)
    counters/calls.json                       daily call counts (hourly buckets)
    locks/<source>.lock                       per-source run lock
    reports/<path>                            report artifacts

Every write goes to a temporary file in the same folder and is renamed into place, so
a crash leaves the old file or the new one. Read-compare-write sequences (conditional
document writes, the manifest commit, the call counter, the lock) are serialised
between processes with ``flock`` on a guard file. A directory store is for one machine:
``flock`` is not reliable on network file systems — use the Blob store there.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import socket
import tempfile
import uuid
from collections.abc import Collection, Iterator, Mapping
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

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

__all__ = ["DEFAULT_LOCK_TTL", "LocalStateStore"]

DEFAULT_LOCK_TTL = timedelta(minutes=5)
"""A lock not renewed for this long is stale and may be taken over (holder crashed)."""


def _etag(data: bytes) -> str:
    return '"' + hashlib.blake2b(data, digest_size=16).hexdigest() + '"'


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def _flocked(guard: Path) -> Iterator[None]:
    guard.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(guard, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


class _LocalLock(HeartbeatLock):
    """A held lock file; a daemon thread renews it every third of the TTL."""

    def __init__(self, store: LocalStateStore, source: str, owner: str, token: str) -> None:
        super().__init__(source, owner)
        self._store = store
        self.token = token
        self.lost = False

    def renew(self) -> None:
        if not self._store._renew_lock(self._source, self.token):
            self.lost = True
            raise ConcurrentRunError(
                f"the lock on source {self._source!r} was taken over after it expired;"
                " stop this run and let the other one finish"
            )

    def _renew_with_retries(self, interval: float) -> bool:
        """Renew, retrying an I/O error with backoff within the interval; False (and
        ``lost``) once the lock is gone or renewal kept failing — the engine checks it."""
        delay = max(0.01, interval / 16)
        for _ in range(4):
            try:
                self.renew()
                return True
            except ConcurrentRunError:
                return False  # taken over: ``lost`` is set
            except OSError:
                if self._stop.wait(delay):
                    return True  # released meanwhile
                delay *= 2
        self.lost = True
        return False


class LocalStateStore:
    """State on a local directory. See the module docstring for the layout."""

    def __init__(
        self,
        root: str | Path,
        *,
        clock: Clock | None = None,
        lock_ttl: timedelta = DEFAULT_LOCK_TTL,
        heartbeat: bool = True,
        heartbeat_interval: float | None = None,
    ) -> None:
        """``heartbeat``: renew held locks from a background thread every
        ``heartbeat_interval`` real seconds (default: a third of ``lock_ttl``)."""
        self.root = Path(root)
        self._clock: Clock = clock or SystemClock()
        self._lock_ttl = lock_ttl
        self._heartbeat = heartbeat
        self._heartbeat_interval = heartbeat_interval or lock_ttl.total_seconds() / 3
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StateError(f"cannot create state directory {self.root}: {exc}") from exc

    def __repr__(self) -> str:
        return f"LocalStateStore({str(self.root)!r})"

    # -- records -----------------------------------------------------------------------

    def _records_dir(self, source: str) -> Path:
        return self.root / "records" / check_source_name(source)

    def _manifest(self, source: str) -> dict[str, Any] | None:
        path = self._records_dir(source) / "manifest.json"
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateError(f"cannot read {path}: {exc}") from exc
        try:
            manifest = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise StateError(f"{path} is corrupt: {exc}") from exc
        if not isinstance(manifest, dict):
            raise StateError(f"{path} is corrupt: not an object")
        return manifest

    def load_records(self, source: str) -> RecordIndex:
        folder = self._records_dir(source)
        for _ in range(5):
            manifest = self._manifest(source)
            if manifest is None:
                return RecordIndex(source=source)
            path = folder / str(manifest["index"])
            try:
                with path.open("rb") as fh:
                    entries = read_index(fh, str(path))
            except FileNotFoundError:
                continue  # a concurrent save replaced it; read the new manifest
            return RecordIndex(source=source, entries=entries, version=str(manifest["version"]))
        raise StateError(f"records of source {source!r} keep changing while being read; retry")

    def save_records(
        self,
        index: RecordIndex,
        *,
        payloads: PayloadUpdates | None = None,
        drop: Collection[str] = (),
    ) -> str:
        source = index.source
        folder = self._records_dir(source)
        folder.mkdir(parents=True, exist_ok=True)
        gen = uuid.uuid4().hex
        index_name = f"index-{gen}.jsonl.gz"
        payload_name = f"payloads-{gen}.jsonl.gz"
        old = self._manifest(source)
        if (None if old is None else str(old["version"])) != index.version:
            raise self._records_conflict(source)
        drop_set = drop if isinstance(drop, set | frozenset) else set(drop)
        new_files = [folder / index_name, folder / payload_name]
        try:
            src = None if old is None else folder / str(old["payloads"])
            with contextlib.ExitStack() as stack:
                src_fh = stack.enter_context(src.open("rb")) if src is not None else None
                out = stack.enter_context((folder / payload_name).open("wb"))
                merge_payloads(src_fh, out, payloads or {}, drop_set, str(src))
                out.flush()
                os.fsync(out.fileno())
            with (folder / index_name).open("wb") as fh:
                count = write_index(fh, source, index.entries)
                fh.flush()
                os.fsync(fh.fileno())
            manifest = {
                "version": gen,
                "index": index_name,
                "payloads": payload_name,
                "records": count,
                "saved_at": self._clock.now().isoformat(),
            }
            with _flocked(folder / ".guard"):
                current = self._manifest(source)
                if (None if current is None else str(current["version"])) != index.version:
                    raise self._records_conflict(source)
                _atomic_write(folder / "manifest.json", orjson.dumps(manifest))
        except BaseException:
            for f in new_files:
                with contextlib.suppress(OSError):
                    f.unlink()
            raise
        if old is not None:
            for name in (old["index"], old["payloads"]):
                with contextlib.suppress(OSError):
                    (folder / str(name)).unlink()
        index.version = gen
        return gen

    @staticmethod
    def _records_conflict(source: str) -> DocumentConflictError:
        return DocumentConflictError(
            f"records of source {source!r} were saved by another run since they were loaded;"
            " reload and plan again"
        )

    def get_payloads(self, source: str, external_ids: Collection[str]) -> dict[str, Any]:
        if not external_ids:
            return {}
        folder = self._records_dir(source)
        for _ in range(5):
            manifest = self._manifest(source)
            if manifest is None:
                return {}
            path = folder / str(manifest["payloads"])
            try:
                with path.open("rb") as fh:
                    return read_payloads(fh, external_ids, str(path))
            except FileNotFoundError:
                continue
        raise StateError(f"payloads of source {source!r} keep changing while being read; retry")

    # -- documents ---------------------------------------------------------------------

    def _doc_path(self, key: str) -> Path:
        return self.root / "documents" / check_document_key(key)

    def get_document(self, key: str) -> tuple[dict[str, Any], str] | None:
        path = self._doc_path(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateError(f"cannot read document {key!r} at {path}: {exc}") from exc
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise StateError(f"document {key!r} at {path} is not valid JSON: {exc}") from exc
        if not isinstance(doc, dict):
            raise StateError(f"document {key!r} at {path} is not a JSON object")
        return doc, _etag(data)

    def put_document(
        self,
        key: str,
        document: Mapping[str, Any],
        *,
        if_match: str | None = None,
        if_none_match: bool = False,
    ) -> str:
        path = self._doc_path(key)
        data = orjson.dumps(document, option=orjson.OPT_INDENT_2)
        with _flocked(self.root / "documents" / ".guard"):
            exists = path.exists()
            if if_none_match and exists:
                raise DocumentConflictError(f"document {key!r} already exists")
            if if_match is not None:
                current = path.read_bytes() if exists else None
                if current is None or _etag(current) != if_match:
                    raise DocumentConflictError(
                        f"document {key!r} changed since it was read; re-read and retry"
                    )
            _atomic_write(path, data)
        return _etag(data)

    def delete_document(self, key: str, *, if_match: str | None = None) -> bool:
        path = self._doc_path(key)
        with _flocked(self.root / "documents" / ".guard"):
            try:
                current = path.read_bytes()
            except FileNotFoundError:
                if if_match is not None:
                    raise DocumentConflictError(f"document {key!r} no longer exists") from None
                return False
            if if_match is not None and _etag(current) != if_match:
                raise DocumentConflictError(f"document {key!r} changed since it was read")
            path.unlink()
        return True

    def list_documents(self, prefix: str = "") -> list[str]:
        return self._list(self.root / "documents", prefix)

    @staticmethod
    def _list(base: Path, prefix: str) -> list[str]:
        if not base.is_dir():
            return []
        out: list[str] = []
        for dirpath, _dirs, files in os.walk(base):
            rel_dir = Path(dirpath).relative_to(base).as_posix()
            for name in files:
                if name.startswith("."):
                    continue  # temp and guard files
                key = name if rel_dir == "." else f"{rel_dir}/{name}"
                if key.startswith(prefix):
                    out.append(key)
        return sorted(out)

    # -- lock --------------------------------------------------------------------------

    def _lock_path(self, source: str) -> Path:
        return self.root / "locks" / f"{check_source_name(source)}.lock"

    def _read_lock(self, path: Path) -> dict[str, Any] | None:
        try:
            raw = orjson.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, orjson.JSONDecodeError):
            return {}  # half-written or garbage: treated as expired
        return raw if isinstance(raw, dict) else {}

    def _lock_record(self, owner: str, token: str) -> bytes:
        now = self._clock.now()
        return orjson.dumps(
            {
                "owner": owner,
                "token": token,
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "acquired_at": now.isoformat(),
                "expires_at": (now + self._lock_ttl).isoformat(),
            }
        )

    def _expired(self, held: Mapping[str, Any]) -> bool:
        try:
            expires = datetime.fromisoformat(str(held["expires_at"]))
        except (KeyError, ValueError):
            return True
        return expires <= self._clock.now()

    def _acquire(self, source: str, owner: str) -> str:
        path = self._lock_path(source)
        token = uuid.uuid4().hex
        with _flocked(path.parent / ".guard"):
            held = self._read_lock(path)
            if held is not None:
                if not self._expired(held):
                    raise ConcurrentRunError(
                        f"source {source!r} is locked by {held.get('owner', '?')} until"
                        f" {held.get('expires_at', '?')}; another run is in progress — retry when"
                        f" it has finished (or delete {path} if you are sure it crashed)"
                    )
                path.unlink()  # stale: the holder stopped renewing
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                raise ConcurrentRunError(f"source {source!r} was locked just now") from None
            with os.fdopen(fd, "wb") as fh:
                fh.write(self._lock_record(owner, token))
        return token

    def _renew_lock(self, source: str, token: str) -> bool:
        path = self._lock_path(source)
        with _flocked(path.parent / ".guard"):
            held = self._read_lock(path)
            if not held or held.get("token") != token:
                return False
            _atomic_write(path, self._lock_record(str(held.get("owner", "")), token))
        return True

    def _release(self, source: str, token: str) -> None:
        path = self._lock_path(source)
        with _flocked(path.parent / ".guard"):
            held = self._read_lock(path)
            if held and held.get("token") == token:
                path.unlink()

    @contextlib.contextmanager
    def _locked(self, source: str, owner: str) -> Iterator[SourceLock]:
        token = self._acquire(source, owner)
        held = _LocalLock(self, source, owner, token)
        if self._heartbeat:
            held.start(self._heartbeat_interval)
        try:
            yield held
        finally:
            held.stop()
            self._release(source, token)

    def lock(self, source: str, *, owner: str | None = None) -> AbstractContextManager[SourceLock]:
        return self._locked(source, owner or f"{socket.gethostname()}:{os.getpid()}")

    # -- artifacts ---------------------------------------------------------------------

    def _artifact_path(self, path: str) -> Path:
        return self.root / "reports" / check_document_key(path)

    def write_artifact(self, path: str, data: bytes, *, content_type: str | None = None) -> str:
        target = self._artifact_path(path)
        _atomic_write(target, data)
        return str(target)

    def read_artifact(self, path: str) -> bytes:
        target = self._artifact_path(path)
        try:
            return target.read_bytes()
        except FileNotFoundError:
            raise StateError(f"no report file {path!r} (looked at {target})") from None

    def list_artifacts(self, prefix: str = "") -> list[str]:
        return self._list(self.root / "reports", prefix)

    def artifact_location(self, path: str) -> str:
        return str(self._artifact_path(path))

    # -- call counts -------------------------------------------------------------------

    def _counts_path(self) -> Path:
        return self.root / "counters" / "calls.json"

    def _read_counts(self) -> dict[str, int]:
        try:
            raw = orjson.loads(self._counts_path().read_bytes())
        except FileNotFoundError:
            return {}
        except (OSError, orjson.JSONDecodeError) as exc:
            raise StateError(f"call counter {self._counts_path()} is unreadable: {exc}") from exc
        return {str(k): int(v) for k, v in raw.items()} if isinstance(raw, dict) else {}

    def load_call_counts(self) -> dict[str, int]:
        return self._read_counts()

    def add_call_counts(
        self, delta: Mapping[str, int], *, prune: Collection[str] = ()
    ) -> dict[str, int]:
        with _flocked(self.root / "counters" / ".guard"):
            counts = self._read_counts()
            for key, calls in delta.items():
                counts[key] = counts.get(key, 0) + int(calls)
            for key in prune:
                counts.pop(key, None)
            _atomic_write(self._counts_path(), orjson.dumps(counts, option=orjson.OPT_SORT_KEYS))
        return counts
