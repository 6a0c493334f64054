"""The ``StateStore`` seam: what the sync engine remembers between runs, and where.

One protocol, two implementations (:mod:`connector.state.local` on a directory,
:mod:`connector.state.blob` on Azure Blob Storage), held to the same test suite.

What a store keeps, per source (sources never share records):

- a **record index**: externalId → :class:`RecordEntry` (fingerprint of the mapped
  record, active flag, last outcome, when and by which run it was last sent). The
  index is small per record so a million of them fit in memory comfortably;
- the **last payload sent** per record, kept *out* of the index in a compressed file
  of one line per record. Only the payloads a run needs (leavers to disable, failed
  records to re-send) are read back, with :meth:`StateStore.get_payloads`; a save
  streams the old file and merges the new payloads in;
- the index and the payload file are committed together, atomically, behind a small
  manifest whose version is checked on save (optimistic concurrency).

Besides records: JSON **documents** with ETag-style optimistic concurrency (run
journals), an exclusive per-source **lock**, report **artifacts**, and the **call
counts** behind the Graph client's daily budget (:class:`StoreCallBudget`).

All methods are synchronous: they are short I/O calls, and the engine can hand them
to a thread from async code when it matters.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Collection, Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from connector.errors import StateError

__all__ = [
    "DOCUMENT_KEY_PATTERN",
    "FINGERPRINT_SIZE",
    "SOURCE_NAME_PATTERN",
    "HeartbeatLock",
    "Outcome",
    "PayloadUpdates",
    "RecordEntry",
    "RecordIndex",
    "SourceLock",
    "StateStore",
    "StoreCallBudget",
    "check_document_key",
    "check_source_name",
]

PayloadUpdates = Mapping[str, Mapping[str, Any]] | Iterable[tuple[str, Mapping[str, Any]]]
"""Payloads to store: externalId → payload, or a stream of (externalId, payload) pairs."""

FINGERPRINT_SIZE = 16
"""Bytes in a record fingerprint (BLAKE2b-128 of the canonical mapped record)."""

SOURCE_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
"""Source names become path segments and blob name prefixes, so they stay plain."""

DOCUMENT_KEY_PATTERN = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$")
"""Document keys and artifact paths: ``/``-separated segments, no ``..``, no leading ``/``."""


class Outcome(StrEnum):
    """What we last know about a record we sent (from the upload, then from the logs)."""

    SENT = "sent"
    """Accepted by bulkUpload (202); no provisioning-log entry matched yet."""
    CREATED = "created"
    UPDATED = "updated"
    DISABLED = "disabled"
    SKIPPED = "skipped"
    FAILED = "failed"
    UNCONFIRMED = "unconfirmed"
    """No log entry appeared before the reconciliation deadline."""


@dataclass(slots=True)
class RecordEntry:
    """What the engine remembers about one externalId of one source.

    ``fingerprint`` is the 16-byte hash of the mapped record as last *accepted* by the
    service (see :func:`connector.sync.delta.fingerprint`); ``active`` whether that record
    was sent as active; ``sent_at`` Unix seconds (UTC) of the last send, kept as an
    int rather than a datetime to keep a million entries small.
    """

    fingerprint: bytes
    active: bool = True
    outcome: str = Outcome.SENT.value
    error_code: str | None = None
    sent_at: int | None = None
    run_id: str | None = None

    @property
    def sent_time(self) -> datetime | None:
        """``sent_at`` as an aware UTC datetime."""
        return None if self.sent_at is None else datetime.fromtimestamp(self.sent_at, UTC)


@dataclass(slots=True)
class RecordIndex:
    """A source's record index as loaded from a store.

    ``version`` identifies the committed state it was read from (``None`` when the
    source has never been saved); :meth:`StateStore.save_records` refuses to commit over
    a different version. Mutate ``entries`` in place, then save.
    """

    source: str
    entries: dict[str, RecordEntry] = field(default_factory=dict)
    version: str | None = None

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, external_id: object) -> bool:
        return external_id in self.entries

    def get(self, external_id: str) -> RecordEntry | None:
        return self.entries.get(external_id)

    def active_count(self) -> int:
        """Records last sent as active: the population the guard compares against."""
        return sum(1 for e in self.entries.values() if e.active)


class SourceLock(Protocol):
    """A held per-source lock. Released when its context manager exits."""

    @property
    def source(self) -> str: ...

    @property
    def owner(self) -> str: ...

    @property
    def lost(self) -> bool:
        """True once the lock could not be renewed or was taken over: stop writing."""
        ...

    def renew(self) -> None:
        """Extend the lock now (a background heartbeat also renews it while held)."""
        ...


class HeartbeatLock:
    """What both stores' held locks share: who holds it, and the daemon thread that keeps
    renewing it until released. Subclasses define ``_renew_with_retries(interval)``,
    returning False once the lock is lost (the thread then stops)."""

    def __init__(self, source: str, owner: str) -> None:
        self._source = source
        self._owner = owner
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def source(self) -> str:
        return self._source

    @property
    def owner(self) -> str:
        return self._owner

    def _renew_with_retries(self, interval: float) -> bool:
        raise NotImplementedError

    def _beat(self, interval: float) -> None:
        while not self._stop.wait(interval):
            if not self._renew_with_retries(interval):
                return

    def start(self, interval: float) -> None:
        self._thread = threading.Thread(
            target=self._beat, args=(interval,), name=f"lock-{self._source}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


@runtime_checkable
class StateStore(Protocol):
    """Where the sync engine keeps everything that must outlive a run."""

    # -- records -----------------------------------------------------------------------

    def load_records(self, source: str) -> RecordIndex:
        """The source's record index (empty, ``version=None``, if never saved)."""
        ...

    def save_records(
        self,
        index: RecordIndex,
        *,
        payloads: PayloadUpdates | None = None,
        drop: Collection[str] = (),
    ) -> str:
        """Commit ``index`` and merge ``payloads`` (externalId → last payload sent, or a
        stream of such pairs, consumed before the index is written) into the stored
        payloads; ``drop`` removes payloads (of records removed from the index).

        Atomic: readers see the old state or the new one, never a mix. Raises
        :class:`DocumentConflictError` if the stored version is no longer
        ``index.version``. Returns the new version and sets ``index.version`` to it.
        """
        ...

    def get_payloads(self, source: str, external_ids: Collection[str]) -> dict[str, Any]:
        """The last payload sent for each of ``external_ids`` that has one (streams the
        payload file once; memory is proportional to what is asked for)."""
        ...

    # -- documents ---------------------------------------------------------------------

    def get_document(self, key: str) -> tuple[dict[str, Any], str] | None:
        """``(document, etag)``, or None if there is no document at ``key``."""
        ...

    def put_document(
        self,
        key: str,
        document: Mapping[str, Any],
        *,
        if_match: str | None = None,
        if_none_match: bool = False,
    ) -> str:
        """Write a JSON document atomically; returns its new etag.

        ``if_match``: only if the current etag is this one. ``if_none_match``: only if
        no document exists (create). Otherwise unconditional. A failed condition raises
        :class:`DocumentConflictError`.
        """
        ...

    def delete_document(self, key: str, *, if_match: str | None = None) -> bool:
        """Delete; False if it did not exist. A failed ``if_match`` raises a conflict."""
        ...

    def list_documents(self, prefix: str = "") -> list[str]:
        """Keys starting with ``prefix`` (plain string prefix), sorted."""
        ...

    # -- lock --------------------------------------------------------------------------

    def lock(self, source: str, *, owner: str | None = None) -> AbstractContextManager[SourceLock]:
        """Exclusive lock on ``source`` for the duration of a ``with`` block.

        Raises :class:`connector.errors.ConcurrentRunError` at once if another holder
        has it (no waiting: the other run will pick up any work left).
        """
        ...

    # -- artifacts (reports) -----------------------------------------------------------

    def write_artifact(self, path: str, data: bytes, *, content_type: str | None = None) -> str:
        """Write a report file at ``path`` (e.g. ``employees/<run>/report.html``);
        returns where it is (a file path, or the blob URL)."""
        ...

    def read_artifact(self, path: str) -> bytes:
        """Read an artifact back; :class:`StateError` if missing."""
        ...

    def list_artifacts(self, prefix: str = "") -> list[str]:
        """Artifact paths starting with ``prefix``, sorted."""
        ...

    def artifact_location(self, path: str) -> str:
        """Where ``path`` is or would be (file path or blob URL), without I/O."""
        ...

    # -- call counts -------------------------------------------------------------------

    def load_call_counts(self) -> dict[str, int]:
        """Calls made per hourly bucket key (``YYYY-MM-DDTHH``), as stored."""
        ...

    def add_call_counts(
        self, delta: Mapping[str, int], *, prune: Collection[str] = ()
    ) -> dict[str, int]:
        """Atomically add ``delta`` to the stored counts (concurrent runs never lose a
        call) and remove the ``prune`` keys; returns the counts now stored."""
        ...


class StoreCallBudget:
    """The Graph client's ``CallBudgetStore`` (:mod:`connector.pacing`) on a state store.

    The budget loads counts, adds to them and saves the whole mapping. Saving it
    verbatim would lose calls made by a concurrent run in between, so this adapter
    saves the *difference* from what it last loaded or saved, applied atomically with
    :meth:`StateStore.add_call_counts`; buckets the budget pruned are pruned too.
    """

    def __init__(self, store: StateStore) -> None:
        self._store = store
        self._base: dict[str, int] = {}

    async def load(self) -> Mapping[str, int]:
        self._base = self._store.load_call_counts()
        return dict(self._base)

    async def save(self, counts: Mapping[str, int]) -> None:
        delta = {k: v - self._base.get(k, 0) for k, v in counts.items()}
        delta = {k: v for k, v in delta.items() if v}
        prune = [k for k in self._base if k not in counts]
        self._store.add_call_counts(delta, prune=prune)
        # The budget keeps its own counts; the next save sends what it adds after this.
        self._base = {k: int(v) for k, v in counts.items()}


def check_source_name(source: str) -> str:
    """``source`` if it is a safe name, else :class:`StateError` saying the rule."""
    if not SOURCE_NAME_PATTERN.fullmatch(source):
        raise StateError(
            f"source name {source!r} is not allowed: use 1-64 letters, digits, '-' or '_',"
            " starting with a letter or digit"
        )
    return source


def check_document_key(key: str) -> str:
    """``key`` if it is a safe document key / artifact path, else :class:`StateError`."""
    if not DOCUMENT_KEY_PATTERN.fullmatch(key) or ".." in key.split("/"):
        raise StateError(
            f"key {key!r} is not allowed: use '/'-separated segments of letters, digits,"
            " '.', '-' or '_', not starting with '/' or '.'"
        )
    return key
