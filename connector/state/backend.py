"""The storage seam under the state store: named byte blobs, conditional writes, a lock.

:class:`~connector.state.store.StateStore` holds every rule about *what* is kept (record
index manifests, documents, artifacts, call counts, locks); a :class:`StorageBackend`
only keeps bytes under ``/``-separated names. Two implementations:
:class:`~connector.state.local.LocalBackend` (a directory: atomic renames and ``flock``)
and :class:`~connector.state.blob.BlobBackend` (an Azure Blob container: ETags and
leases). A store uses one backend for its state and one for its report artifacts.

An ETag is an opaque string that changes whenever the bytes stored under a name
change; conditional writes compare it. A failed condition is a
:class:`~connector.errors.DocumentConflictError`, any other storage failure a
:class:`~connector.errors.StateError`.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from typing import IO, Protocol, runtime_checkable

__all__ = ["HeldLock", "StorageBackend"]


class HeldLock(ABC):
    """A lock a backend granted: who holds it, and the daemon thread that keeps renewing
    it until released. Subclasses say how one renewal is made, how a failing one is
    retried (``_renew_with_retries`` returns False once the lock is lost, and the thread
    then stops) and how the lock is given back."""

    def __init__(self, source: str, owner: str) -> None:
        self._source = source
        self._owner = owner
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lost = False

    @property
    def source(self) -> str:
        return self._source

    @property
    def owner(self) -> str:
        return self._owner

    @property
    def lost(self) -> bool:
        """True once the lock could not be renewed or was taken over: stop writing."""
        return self._lost

    @lost.setter
    def lost(self, value: bool) -> None:
        self._lost = value

    @abstractmethod
    def renew(self) -> None:
        """Extend the lock now; :class:`~connector.errors.ConcurrentRunError` if lost."""

    @abstractmethod
    def _renew_with_retries(self, interval: float) -> bool: ...

    @abstractmethod
    def release(self) -> None:
        """Give the lock back (quietly: a lock that already lapsed needs nothing)."""

    def _beat(self, interval: float) -> None:
        while not self._stop.wait(interval):
            if not self._renew_with_retries(interval):
                return

    def start(self, interval: float) -> None:
        """Renew every ``interval`` real seconds from a daemon thread until :meth:`stop`."""
        self._thread = threading.Thread(
            target=self._beat, args=(interval,), name=f"lock-{self._source}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


@runtime_checkable
class StorageBackend(Protocol):
    """Bytes under names, with the few guarantees the state store builds on."""

    @property
    def heartbeat_interval(self) -> float:
        """Real seconds between two renewals of a held lock."""
        ...

    def describe(self, name: str) -> str:
        """``name`` as a person would look for it (a file path, ``container/name``)."""
        ...

    def location(self, name: str) -> str:
        """Where ``name`` is or would be (a file path or a blob URL), without I/O."""
        ...

    def get(self, name: str) -> tuple[bytes, str] | None:
        """``(data, etag)``, or None if nothing is stored under ``name``."""
        ...

    def put(
        self,
        name: str,
        data: bytes,
        *,
        content_type: str | None = None,
        if_match: str | None = None,
        if_none_match: bool = False,
    ) -> str:
        """Store ``data`` atomically (readers see the old bytes or the new ones); returns
        the new etag. ``if_match``: only over this etag; ``if_none_match``: only if
        nothing is stored yet."""
        ...

    def delete(self, name: str, *, if_match: str | None = None) -> bool:
        """Remove ``name``; False if it was not there (a conflict if ``if_match`` was
        given: the caller expected it)."""
        ...

    def delete_quietly(self, name: str) -> None:
        """Remove ``name`` if possible, ignoring every failure (clean-up of leftovers)."""
        ...

    def list(self, prefix: str) -> list[str]:
        """Names starting with ``prefix`` (a plain string prefix), sorted."""
        ...

    def reader(self, name: str) -> AbstractContextManager[IO[bytes] | None]:
        """A binary stream of a large object (None if missing), for streaming reads."""
        ...

    def writer(
        self, name: str, *, content_type: str | None = None
    ) -> AbstractContextManager[IO[bytes]]:
        """A binary stream whose bytes are stored under ``name`` when the block exits
        without an exception (unconditionally: large objects get fresh names)."""
        ...

    def acquire_lock(self, name: str, *, source: str, owner: str) -> HeldLock:
        """Take the exclusive lock called ``name`` for ``source`` at once, or raise
        :class:`~connector.errors.ConcurrentRunError` if another holder has it."""
        ...
