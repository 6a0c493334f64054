"""``StateStore``: what the sync engine remembers between runs, over a storage backend.

One store, every rule once; where the bytes go is the backend's business
(:mod:`connector.state.backend`; a directory in :mod:`connector.state.local`, Azure Blob
Storage in :mod:`connector.state.blob`). What a store keeps, per source (sources never
share records):

- a **record index**: externalId → :class:`~connector.state.base.RecordEntry`. The index
  is small per record so a million of them fit in memory comfortably;
- the **last payload sent** per record, kept *out* of the index in a compressed file of
  one line per record. Only the payloads a run needs (leavers to disable, failed records
  to re-send) are read back, with :meth:`StateStore.get_payloads`; a save streams the
  old file and merges the new payloads in;
- the index and the payload file are committed together behind a small manifest. New
  files get fresh names and the manifest is replaced with a conditional write, so
  readers see the old state or the new one and a concurrent save loses cleanly.

Besides records: JSON **documents** with ETag-conditional writes (run journals), an
exclusive per-source **lock** renewed by a heartbeat, report **artifacts**, and the
**call counts** behind the Graph client's daily budget (:class:`StoreCallBudget`).

Layout (identical names in a state directory and in the Blob ``state`` container)::

    records/<source>/manifest.json            which index + payload files are current
    records/<source>/index-<gen>.jsonl.gz     the record index
    records/<source>/payloads-<gen>.jsonl.gz  last payload sent per record
    documents/<key>                           JSON documents (run journals, markers)
    counters/calls.json                       call counts (hourly buckets)
    locks/<source>                            per-source run lock (the backend's form)

and report artifacts at ``<path>`` in the reports backend.

All methods are synchronous: they are short I/O calls, and the engine can hand them to a
thread from async code when it matters.
"""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from asyncio import to_thread
from collections.abc import Callable, Collection, Iterator, Mapping
from collections.abc import Set as AbstractSet
from contextlib import AbstractContextManager
from typing import IO, Any, Literal, TypeVar

import orjson

from connector.clock import Clock, SystemClock
from connector.errors import DocumentConflictError, StateError
from connector.state._codec import (
    merge_payloads,
    read_index,
    read_index_runs,
    read_payloads,
    scan_payloads,
    write_index,
)
from connector.state.backend import StorageBackend
from connector.state.base import (
    PayloadUpdates,
    RecordIndex,
    SourceLock,
    check_document_key,
    check_source_name,
)

__all__ = ["COUNTS_NAME", "RecordVersion", "StateStore", "StoreCallBudget"]

COUNTS_NAME = "counters/calls.json"
"""The call counter shared by every run of the app."""

RecordVersion = Literal["generation", "etag"]
"""What names a committed record index: the generation written into the manifest, or
the manifest's etag. Journals keep the version a run was planned from, so each store
keeps the token it has always used (directory: generation; Blob: etag)."""

_JSON = "application/json"
_READ_ATTEMPTS = 5
_COUNTER_RETRIES = 50

_T = TypeVar("_T")


def _records(source: str, file: str) -> str:
    return f"records/{source}/{file}"


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise StateError(f"{what} is corrupt: {exc}") from exc
    if not isinstance(value, dict):
        raise StateError(f"{what} is corrupt: not a JSON object")
    return value


def _records_conflict(source: str) -> DocumentConflictError:
    return DocumentConflictError(
        f"records of source {source!r} were saved by another run since they were loaded;"
        " reload and plan again"
    )


class StateStore:
    """Where the sync engine keeps everything that must outlive a run."""

    def __init__(
        self,
        backend: StorageBackend,
        reports: StorageBackend,
        *,
        clock: Clock | None = None,
        heartbeat: bool = True,
        record_version: RecordVersion = "etag",
    ) -> None:
        """``backend`` keeps the state, ``reports`` the report artifacts. ``heartbeat``:
        renew held locks from a background thread (tests turn it off to drive time)."""
        self.backend = backend
        self.reports = reports
        self._clock: Clock = clock or SystemClock()
        self._heartbeat = heartbeat
        self._record_version = record_version

    # -- records -----------------------------------------------------------------------

    def _manifest(self, source: str) -> tuple[dict[str, Any], str] | None:
        name = _records(check_source_name(source), "manifest.json")
        got = self.backend.get(name)
        if got is None:
            return None
        return _json_object(got[0], self.backend.describe(name)), got[1]

    def _version(self, manifest: Mapping[str, Any], etag: str) -> str:
        return str(manifest["version"]) if self._record_version == "generation" else etag

    def _read_committed(
        self,
        source: str,
        file: Literal["index", "payloads"],
        read: Callable[[IO[bytes], str, str], _T],
        missing: _T,
    ) -> _T:
        """``read(stream, description, version)`` of the source's committed ``file``, or
        ``missing`` if the source was never saved. A save that commits between reading
        the manifest and opening the file removes that file; the new manifest is then
        read, up to ``_READ_ATTEMPTS`` times before a :class:`StateError`."""
        for _ in range(_READ_ATTEMPTS):
            got = self._manifest(source)
            if got is None:
                return missing
            name = _records(source, str(got[0][file]))
            with self.backend.reader(name) as src:
                if src is None:
                    continue  # a concurrent save replaced it; read the new manifest
                return read(src, self.backend.describe(name), self._version(*got))
        what = "records" if file == "index" else "payloads"
        raise StateError(f"{what} of source {source!r} keep changing while being read; retry")

    def load_records(self, source: str) -> RecordIndex:
        """The source's record index (empty, ``version=None``, if never saved)."""

        def read(src: IO[bytes], where: str, version: str) -> RecordIndex:
            return RecordIndex(source=source, entries=read_index(src, where), version=version)

        return self._read_committed(source, "index", read, RecordIndex(source=source))

    def record_runs(self, source: str, external_ids: AbstractSet[str]) -> dict[str, str | None]:
        """The run that last sent each of ``external_ids`` the record index holds (others
        left out), the index streamed: only these records are kept, not the index."""

        def read(src: IO[bytes], where: str, _version: str) -> dict[str, str | None]:
            return read_index_runs(src, external_ids, where)

        return self._read_committed(source, "index", read, {})

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
        source = check_source_name(index.source)
        old = self._manifest(source)
        if (None if old is None else self._version(*old)) != index.version:
            raise _records_conflict(source)
        gen = uuid.uuid4().hex
        index_file, payload_file = f"index-{gen}.jsonl.gz", f"payloads-{gen}.jsonl.gz"
        new_names = [_records(source, index_file), _records(source, payload_file)]
        try:
            self._write_payloads(source, old, new_names[1], payloads, drop)
            with self.backend.writer(new_names[0]) as out:
                count = write_index(out, source, index.entries)
            manifest = {
                "version": gen,
                "index": index_file,
                "payloads": payload_file,
                "records": count,
                "saved_at": self._clock.now().isoformat(),
            }
            old_etag = None if old is None else old[1]
            try:
                etag = self.backend.put(
                    _records(source, "manifest.json"),
                    orjson.dumps(manifest),
                    content_type=_JSON,
                    if_match=old_etag,
                    if_none_match=old_etag is None,
                )
            except DocumentConflictError:
                raise _records_conflict(source) from None
        except BaseException:
            for name in new_names:
                self.backend.delete_quietly(name)
            raise
        if old is not None:
            for key in ("index", "payloads"):
                self.backend.delete_quietly(_records(source, str(old[0][key])))
        index.version = gen if self._record_version == "generation" else etag
        return index.version

    def _write_payloads(
        self,
        source: str,
        old: tuple[dict[str, Any], str] | None,
        name: str,
        payloads: PayloadUpdates | None,
        drop: Collection[str],
    ) -> None:
        """Stream the committed payload file into ``name`` with ``payloads`` merged in."""
        drop_set = drop if isinstance(drop, set | frozenset) else set(drop)
        src_name = None if old is None else _records(source, str(old[0]["payloads"]))
        with contextlib.ExitStack() as stack:
            src = None
            if src_name is not None:
                src = stack.enter_context(self.backend.reader(src_name))
                if src is None:  # replaced by a concurrent save since the manifest was read
                    raise _records_conflict(source)
            out = stack.enter_context(self.backend.writer(name))
            where = "" if src_name is None else self.backend.describe(src_name)
            merge_payloads(src, out, payloads or {}, drop_set, where)

    def get_payloads(self, source: str, external_ids: Collection[str]) -> dict[str, Any]:
        """The last payload sent for each of ``external_ids`` that has one (streams the
        payload file once; memory is proportional to what is asked for)."""
        if not external_ids:
            return {}

        def read(src: IO[bytes], where: str, _version: str) -> dict[str, Any]:
            return read_payloads(src, external_ids, where)

        return self._read_committed(source, "payloads", read, {})

    def spool_payloads(
        self, source: str, external_ids: Collection[str], sink: Callable[[str, bytes], None]
    ) -> None:
        """Hand each of ``external_ids``' last payload to ``sink`` as its JSON bytes
        (streams the payload file once; nothing is decoded or kept here)."""
        if not external_ids:
            return

        def read(src: IO[bytes], where: str, _version: str) -> None:
            for ext, blob in scan_payloads(src, external_ids, where):
                sink(ext, blob)

        self._read_committed(source, "payloads", read, None)

    # -- documents ---------------------------------------------------------------------

    def get_document(self, key: str) -> tuple[dict[str, Any], str] | None:
        """``(document, etag)``, or None if there is no document at ``key``."""
        name = f"documents/{check_document_key(key)}"
        got = self.backend.get(name)
        if got is None:
            return None
        what = f"document {key!r} at {self.backend.describe(name)}"
        return _json_object(got[0], what), got[1]

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
        name = f"documents/{check_document_key(key)}"
        data = orjson.dumps(document, option=orjson.OPT_INDENT_2)
        try:
            return self.backend.put(
                name, data, content_type=_JSON, if_match=if_match, if_none_match=if_none_match
            )
        except DocumentConflictError:
            raise DocumentConflictError(
                f"document {key!r} "
                + ("already exists" if if_none_match else "changed since it was read")
                + "; re-read and retry"
            ) from None

    def delete_document(self, key: str, *, if_match: str | None = None) -> bool:
        """Delete; False if it did not exist. A failed ``if_match`` raises a conflict."""
        return self.backend.delete(f"documents/{check_document_key(key)}", if_match=if_match)

    def list_documents(self, prefix: str = "") -> list[str]:
        """Keys starting with ``prefix`` (plain string prefix), sorted."""
        base = "documents/"
        return [name[len(base) :] for name in self.backend.list(base + prefix)]

    # -- lock --------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self, source: str, owner: str) -> Iterator[SourceLock]:
        held = self.backend.acquire_lock(
            f"locks/{check_source_name(source)}", source=source, owner=owner
        )
        if self._heartbeat:
            held.start(self.backend.heartbeat_interval)
        try:
            yield held
        finally:
            held.stop()
            held.release()

    def lock(self, source: str, *, owner: str | None = None) -> AbstractContextManager[SourceLock]:
        """Exclusive lock on ``source`` for the duration of a ``with`` block.

        Raises :class:`connector.errors.ConcurrentRunError` at once if another holder
        has it (no waiting: the other run will pick up any work left).
        """
        return self._locked(source, owner or f"{socket.gethostname()}:{os.getpid()}")

    # -- artifacts (reports) -----------------------------------------------------------

    def write_artifact(self, path: str, data: bytes, *, content_type: str | None = None) -> str:
        """Write a report file at ``path`` (e.g. ``employees/<run>/report.html``);
        returns where it is (a file path, or the blob URL)."""
        self.reports.put(check_document_key(path), data, content_type=content_type)
        return self.reports.location(path)

    def artifact_writer(
        self, path: str, *, content_type: str | None = None
    ) -> AbstractContextManager[IO[bytes]]:
        """Write a large artifact as a stream (it is stored when the block completes;
        a plan of a million records or a run's reports are never whole in memory)."""
        return self.reports.writer(check_document_key(path), content_type=content_type)

    @contextlib.contextmanager
    def artifact_reader(self, path: str) -> Iterator[IO[bytes]]:
        """Read a large artifact as a stream; :class:`StateError` if missing."""
        with self.reports.reader(check_document_key(path)) as src:
            if src is None:
                raise StateError(
                    f"no report file {path!r} (looked at {self.reports.describe(path)})"
                )
            yield src

    def read_artifact(self, path: str) -> bytes:
        """Read an artifact back; :class:`StateError` if missing."""
        got = self.reports.get(check_document_key(path))
        if got is None:
            raise StateError(f"no report file {path!r} (looked at {self.reports.describe(path)})")
        return got[0]

    def list_artifacts(self, prefix: str = "") -> list[str]:
        """Artifact paths starting with ``prefix``, sorted."""
        return self.reports.list(prefix)

    def artifact_location(self, path: str) -> str:
        """Where ``path`` is or would be (file path or blob URL), without I/O."""
        return self.reports.location(check_document_key(path))

    # -- call counts -------------------------------------------------------------------

    def _read_counts(self) -> tuple[dict[str, int], str | None]:
        got = self.backend.get(COUNTS_NAME)
        if got is None:
            return {}, None
        try:
            raw = orjson.loads(got[0])
        except orjson.JSONDecodeError as exc:
            where = self.backend.describe(COUNTS_NAME)
            raise StateError(f"call counter {where} is corrupt: {exc}") from exc
        counts = {str(k): int(v) for k, v in raw.items()} if isinstance(raw, dict) else {}
        return counts, got[1]

    def load_call_counts(self) -> dict[str, int]:
        """Calls made per hourly bucket key (``YYYY-MM-DDTHH``), as stored."""
        return self._read_counts()[0]

    def add_call_counts(
        self, delta: Mapping[str, int], *, prune: Collection[str] = ()
    ) -> dict[str, int]:
        """Atomically add ``delta`` to the stored counts (concurrent runs never lose a
        call) and remove the ``prune`` keys; returns the counts now stored."""
        for _ in range(_COUNTER_RETRIES):
            counts, etag = self._read_counts()
            for key, calls in delta.items():
                counts[key] = counts.get(key, 0) + int(calls)
            for key in prune:
                counts.pop(key, None)
            try:
                self.backend.put(
                    COUNTS_NAME,
                    orjson.dumps(counts, option=orjson.OPT_SORT_KEYS),
                    content_type=_JSON,
                    if_match=etag,
                    if_none_match=etag is None,
                )
            except DocumentConflictError:
                continue  # another run counted at the same moment: re-read and re-add
            return counts
        raise StateError(
            f"the call counter kept changing under {_COUNTER_RETRIES} attempts; retry the run"
        )


class StoreCallBudget:
    """The Graph client's ``CallBudgetStore`` (:mod:`connector.pacing`) on a state store.

    The budget loads counts, adds to them and saves the whole mapping. Saving it
    verbatim would lose calls made by a concurrent run in between, so this adapter
    saves the *difference* from what it last loaded or saved, applied atomically with
    :meth:`StateStore.add_call_counts`; buckets the budget pruned are pruned too. The
    store's reads and writes run in a worker thread, so the event loop keeps pacing the
    calls of other tasks meanwhile; the budget awaits each (its lock keeps them in order)
    before the call it counts is sent.
    """

    def __init__(self, store: StateStore) -> None:
        self._store = store
        self._base: dict[str, int] = {}

    async def load(self) -> Mapping[str, int]:
        self._base = await to_thread(self._store.load_call_counts)
        return dict(self._base)

    async def save(self, counts: Mapping[str, int]) -> None:
        delta = {k: v - self._base.get(k, 0) for k, v in counts.items()}
        delta = {k: v for k, v in delta.items() if v}
        prune = [k for k in self._base if k not in counts]
        await to_thread(self._store.add_call_counts, delta, prune=prune)
        # The budget keeps its own counts; the next save sends what it adds after this.
        self._base = {k: int(v) for k, v in counts.items()}
