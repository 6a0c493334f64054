"""The state store on a local directory (CLI and demo default).

Layout under the root directory: the store's names (:mod:`connector.state.store`) as
paths, report artifacts under ``reports/``, and a lock as a small JSON file
``locks/<source>.lock`` saying who holds it until when, and which process on which host
(:mod:`connector.state.holder`). A lock not renewed within its TTL is stale; a lock whose
holder process is certainly gone from this host (killed, crashed, machine rebooted) is
taken over at once.

Every write goes to a temporary file in the same folder and is renamed into place, so a
crash leaves the old file or the new one. Read-compare-write sequences (conditional
writes, the lock) are serialised between processes with ``flock`` on a guard file. A
directory store is for one machine: ``flock`` is not reliable on network file systems —
use the Blob store there.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

import orjson

from connector.clock import Clock, SystemClock
from connector.errors import ConcurrentRunError, DocumentConflictError, StateError
from connector.state.backend import HeldLock
from connector.state.holder import holder_gone, this_process
from connector.state.store import StateStore

__all__ = ["DEFAULT_LOCK_TTL", "LocalBackend", "LocalStateStore", "state_guard"]

DEFAULT_LOCK_TTL = timedelta(minutes=5)
"""A lock not renewed for this long is stale and may be taken over (holder crashed)."""

log = logging.getLogger(__name__)


def _etag(data: bytes) -> str:
    return '"' + hashlib.blake2b(data, digest_size=16).hexdigest() + '"'


def _atomic_write(path: Path, data: bytes) -> None:
    with _atomic_file(path) as fh:
        fh.write(data)


@contextlib.contextmanager
def _atomic_file(path: Path) -> Iterator[IO[bytes]]:
    """A file written beside ``path`` and renamed onto it once the block completes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
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


def state_guard(name: str) -> str:
    """The guard file serialising writes to ``name``: one per source under ``records/``
    (manifest commits of different sources never wait for each other), one per top
    folder otherwise (``documents/.guard``, ``counters/.guard``, ``locks/.guard``)."""
    parts = name.split("/")
    depth = 2 if parts[0] == "records" and len(parts) > 2 else 1
    return "/".join([*parts[:depth], ".guard"])


class _LocalLock(HeldLock):
    """A held lock file; the heartbeat rewrites it with a later expiry."""

    def __init__(
        self, backend: LocalBackend, name: str, source: str, owner: str, token: str
    ) -> None:
        super().__init__(source, owner)
        self._backend = backend
        self._name = name
        self.token = token

    def renew(self) -> None:
        if not self._backend._renew_lock(self._name, self.token):
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

    def release(self) -> None:
        self._backend._release_lock(self._name, self.token)


class LocalBackend:
    """Names as files under ``root``; see the module docstring for the guarantees."""

    def __init__(
        self,
        root: Path,
        *,
        clock: Clock | None = None,
        lock_ttl: timedelta = DEFAULT_LOCK_TTL,
        heartbeat_interval: float | None = None,
        guard: Callable[[str], str] | None = state_guard,
    ) -> None:
        """``guard``: the guard file of a name, or None for a folder that only takes
        unconditional writes (report artifacts: no guard files among the reports)."""
        self.root = root
        self._clock: Clock = clock or SystemClock()
        self._lock_ttl = lock_ttl
        self._heartbeat_interval = heartbeat_interval or lock_ttl.total_seconds() / 3
        self._guard = guard

    @property
    def heartbeat_interval(self) -> float:
        return self._heartbeat_interval

    def _path(self, name: str) -> Path:
        return self.root / name

    def describe(self, name: str) -> str:
        return str(self._path(name))

    def location(self, name: str) -> str:
        return str(self._path(name))

    def _guarded(self, name: str) -> contextlib.AbstractContextManager[None]:
        if self._guard is None:
            return contextlib.nullcontext()
        return _flocked(self.root / self._guard(name))

    # -- bytes -------------------------------------------------------------------------

    def get(self, name: str) -> tuple[bytes, str] | None:
        path = self._path(name)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateError(f"cannot read {path}: {exc}") from exc
        return data, _etag(data)

    def put(
        self,
        name: str,
        data: bytes,
        *,
        content_type: str | None = None,
        if_match: str | None = None,
        if_none_match: bool = False,
    ) -> str:
        path = self._path(name)
        if self._guard is None and (if_match is not None or if_none_match):
            raise ValueError(f"conditional write to {path} in an unguarded folder")
        with self._guarded(name):
            exists = path.exists()
            if if_none_match and exists:
                raise DocumentConflictError(f"{path} already exists")
            if if_match is not None:
                current = path.read_bytes() if exists else None
                if current is None or _etag(current) != if_match:
                    raise DocumentConflictError(
                        f"{path} changed since it was read; re-read and retry"
                    )
            _atomic_write(path, data)
        return _etag(data)

    def delete(self, name: str, *, if_match: str | None = None) -> bool:
        path = self._path(name)
        with self._guarded(name):
            try:
                current = path.read_bytes()
            except FileNotFoundError:
                if if_match is not None:
                    raise DocumentConflictError(f"{path} no longer exists") from None
                return False
            if if_match is not None and _etag(current) != if_match:
                raise DocumentConflictError(f"{path} changed since it was read")
            path.unlink()
        return True

    def delete_quietly(self, name: str) -> None:
        with contextlib.suppress(OSError):
            self._path(name).unlink()

    def list(self, prefix: str) -> list[str]:
        """Walks only the folder ``prefix`` names (the whole root if it names none or an
        odd one); dot files (temporary and guard files) are the backend's own and never
        listed."""
        segments = prefix.split("/")[:-1]
        plain = all(seg not in ("", ".", "..") for seg in segments)
        base = self.root.joinpath(*segments) if plain else self.root
        if not base.is_dir():
            return []
        out: list[str] = []
        for dirpath, _dirs, files in os.walk(base):
            rel_dir = Path(dirpath).relative_to(self.root).as_posix()
            for file in files:
                if file.startswith("."):
                    continue
                name = file if rel_dir == "." else f"{rel_dir}/{file}"
                if name.startswith(prefix):
                    out.append(name)
        return sorted(out)

    @contextlib.contextmanager
    def reader(self, name: str) -> Iterator[IO[bytes] | None]:
        try:
            fh = self._path(name).open("rb")
        except FileNotFoundError:
            yield None
            return
        with fh:
            yield fh

    @contextlib.contextmanager
    def writer(self, name: str, *, content_type: str | None = None) -> Iterator[IO[bytes]]:
        """Writes beside ``name`` and renames it into place when the block completes (a
        report rewritten as a stream is never seen half written)."""
        with _atomic_file(self._path(name)) as fh:
            yield fh

    # -- lock --------------------------------------------------------------------------

    def _lock_path(self, name: str) -> Path:
        return self._path(name + ".lock")

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
                **this_process().record(),
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

    def _holder_gone(self, held: Mapping[str, Any], source: str) -> bool:
        """The unexpired lock's holder process is gone (crashed or killed on this host):
        it is taken over at once instead of after the TTL."""
        if not holder_gone(held, this_process()):
            return False
        log.warning(
            "source %s: the lock holder (process %s on this host) is gone; taking the lock over",
            source,
            held.get("pid"),
        )
        return True

    def acquire_lock(self, name: str, *, source: str, owner: str) -> HeldLock:
        path = self._lock_path(name)
        token = uuid.uuid4().hex
        with _flocked(path.parent / ".guard"):
            held = self._read_lock(path)
            if held is not None:
                if not self._expired(held) and not self._holder_gone(held, source):
                    raise ConcurrentRunError(
                        f"source {source!r} is locked by {held.get('owner', '?')} until"
                        f" {held.get('expires_at', '?')}; another run is in progress — retry when"
                        f" it has finished (or delete {path} if you are sure it crashed)"
                    )
                path.unlink()  # stale: the holder stopped renewing, or its process is gone
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                raise ConcurrentRunError(f"source {source!r} was locked just now") from None
            with os.fdopen(fd, "wb") as fh:
                fh.write(self._lock_record(owner, token))
        return _LocalLock(self, name, source, owner, token)

    def _renew_lock(self, name: str, token: str) -> bool:
        path = self._lock_path(name)
        with _flocked(path.parent / ".guard"):
            held = self._read_lock(path)
            if not held or held.get("token") != token:
                return False
            _atomic_write(path, self._lock_record(str(held.get("owner", "")), token))
        return True

    def _release_lock(self, name: str, token: str) -> None:
        path = self._lock_path(name)
        with _flocked(path.parent / ".guard"):
            held = self._read_lock(path)
            if held and held.get("token") == token:
                path.unlink()


class LocalStateStore(StateStore):
    """The state store on a directory: state at ``root``, reports at ``root/reports``."""

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
        clock = clock or SystemClock()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StateError(f"cannot create state directory {self.root}: {exc}") from exc
        state = LocalBackend(
            self.root, clock=clock, lock_ttl=lock_ttl, heartbeat_interval=heartbeat_interval
        )
        reports = LocalBackend(self.root / "reports", clock=clock, guard=None)
        super().__init__(
            state, reports, clock=clock, heartbeat=heartbeat, record_version="generation"
        )

    def __repr__(self) -> str:
        return f"LocalStateStore({str(self.root)!r})"
