"""A source's run journals in the state store, written only while its lock is ours.

Part of :class:`~connector.sync.run_store.RunStore`: a journal is one document per run,
read with its etag and replaced only at that etag, so a run that lost its source's lock
(a lease broken or lapsed) stops without writing and the new holder continues from the
journal. Acknowledged batches beyond the latest chunk are sealed into artifacts before
the journal that names them is written (:mod:`connector.sync.acks`).
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

from connector.clock import Clock
from connector.errors import DocumentConflictError, LockLostError, RunError
from connector.state.backend import HeldLock
from connector.state.base import SourceLock
from connector.state.store import StateStore
from connector.sync.acks import ACK_CHUNK_SIZE, SealedChunk
from connector.sync.journal import Journal
from connector.sync.journal_doc import journal_from_doc, journal_to_doc
from connector.sync.run_keys import ack_chunk_key, run_key

__all__ = ["RunJournals", "check_lock", "lock_lost"]


def lock_lost(journal: Journal) -> bool:
    return bool(journal.lock is not None and getattr(journal.lock, "lost", False))


def check_lock(journal: Journal) -> None:
    if lock_lost(journal):
        raise LockLostError(
            f"run {journal.run_id}: the lock on source {journal.source!r} was lost (renewal"
            " failed or another run took it over); stopping without writing — the holder"
            " continues from the journal"
        )


class RunJournals:
    """The journals of a source's runs and the source's lock (part of ``RunStore``)."""

    store: StateStore
    clock: Clock

    def lock(self, source: str, owner: str) -> AbstractContextManager[SourceLock]:
        return self.store.lock(source, owner=owner)

    def load(self, source: str, run_id: str) -> Journal | None:
        """The run's journal (with its etag), None when the run does not exist."""
        got = self.store.get_document(run_key(source, run_id))
        return None if got is None else self._journal(got)

    def require(self, source: str, run_id: str) -> Journal:
        journal = self.load(source, run_id)
        if journal is None:
            raise RunError(f"no run {run_id} for source {source}; see `connector runs list`")
        return journal

    def create(self, journal: Journal) -> None:
        """Write a new run's journal (refused if one exists)."""
        journal.etag = self.store.put_document(
            run_key(journal.source, journal.run_id), journal_to_doc(journal), if_none_match=True
        )

    def save(self, journal: Journal) -> None:
        """Write the journal (small: counters, the latest acknowledgements, never
        per-record data), only while the source's lock is still ours; the new etag is kept
        on ``journal``. Every :data:`~connector.sync.acks.ACK_CHUNK_SIZE` acknowledgements
        are first sealed into a chunk (written once, before the journal that names it).
        During a send window the same steps run off the event loop
        (:class:`~connector.sync.journal_writer.JournalWriter`)."""
        check_lock(journal)
        for chunk in self.chunks_to_seal(journal):
            self.write_chunk(journal, chunk)
            journal.batches.sealed(chunk)
        journal.etag = self.write_journal(journal, self.journal_doc(journal))

    def chunks_to_seal(self, journal: Journal) -> list[SealedChunk]:
        """The chunks a save writes first (each marked sealed once it is written)."""
        return journal.batches.to_seal(ACK_CHUNK_SIZE)

    def journal_doc(self, journal: Journal) -> dict[str, Any]:
        """The document a save writes now (stamped ``updatedAt``): a snapshot, so the
        journal may change while it is written."""
        journal.updated_at = self.clock.now()
        return journal_to_doc(journal)

    def write_chunk(self, journal: Journal, chunk: SealedChunk) -> None:
        """Write one sealed chunk of acknowledgements (the caller then marks it sealed)."""
        check_lock(journal)
        self.store.write_artifact(
            ack_chunk_key(journal.source, journal.run_id, chunk.name),
            gzip.compress(chunk.body, compresslevel=5),
            content_type="application/gzip",
        )

    def write_journal(self, journal: Journal, doc: dict[str, Any]) -> str:
        """Write ``doc`` as the run's journal at the journal's etag; the new etag.

        Reads only the journal's source, run id, etag and lock (nothing else changes
        them while a save runs), so it may run in another thread than the one that
        changes the journal."""
        check_lock(journal)
        key = run_key(journal.source, journal.run_id)
        try:
            if journal.etag is None:
                return self.store.put_document(key, doc, if_none_match=True)
            return self.store.put_document(key, doc, if_match=journal.etag)
        except DocumentConflictError as exc:
            if journal.lock is None:
                raise
            # Written by another run while this one holds the source's lock: the lock was
            # taken over (a lease broken or lapsed before the heartbeat noticed). Stop as
            # for any lost lock: nothing more is written, the new holder continues.
            if isinstance(journal.lock, HeldLock):
                journal.lock.lost = True
            raise LockLostError(
                f"run {journal.run_id}: another run wrote its journal while this one held"
                f" the lock on source {journal.source!r} (the lock was taken over);"
                " stopping without writing — the holder continues from the journal"
            ) from exc

    def _journal(self, got: tuple[dict[str, Any], str]) -> Journal:
        journal = journal_from_doc(got[0])
        journal.etag = got[1]
        source, run_id = journal.source, journal.run_id

        def read(name: str) -> bytes:
            return gzip.decompress(self.store.read_artifact(ack_chunk_key(source, run_id, name)))

        journal.batches.reader = read
        return journal

    def runs(self, source: str) -> Iterator[Journal]:
        """Every run of ``source`` (in key order)."""
        for key in self.store.list_documents(run_key(source, "")):
            got = self.store.get_document(key)
            if got is not None:
                yield self._journal(got)

    def count_runs(self, source: str, run_id_prefix: str) -> int:
        """Runs of ``source`` whose id starts with ``run_id_prefix`` (child run numbers)."""
        return len(self.store.list_documents(run_key(source, run_id_prefix)))
