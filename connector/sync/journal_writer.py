"""A run's journal saved off the event loop while its send window runs.

The state store's writes are synchronous (a file, or a blob over HTTP). Made on the
event loop after each acknowledgement, each one held every paced call that was due
meanwhile, and a late call stays late in every later 5-second window. A
:class:`JournalWriter` makes the same writes, in the same order, in a worker thread:

- **one write at a time, in order**: a single task writes; chunks of acknowledgements
  before the journal that names them, as :meth:`RunJournals.save` does;
- **the newest journal wins**: the document is taken from the journal when a write
  starts, so every save asked for while a write is in flight is served by the one
  write after it (the journal then holds every acknowledgement so far);
- **a save is done once it is durable**: the future :meth:`save` returns is done when a
  write that began after it was asked for has succeeded, and holds that write's error
  otherwise (the lost lock, a storage error), raised where the caller awaits it, as the
  synchronous save raised it;
- **nothing is left running**: :meth:`drain` waits for the write in flight; an error no
  caller received is raised there.

The journal is changed only on the event loop (the acknowledgement, the sealed chunks,
the etag after a write); the thread writes a snapshot. The lock is checked before each
write, as before.
"""

from __future__ import annotations

import asyncio
from asyncio import to_thread

from connector.sync.journal import Journal
from connector.sync.journal_store import RunJournals, check_lock

__all__ = ["JournalWriter"]


class JournalWriter:
    """Saves of one journal, made in order by one task, each write in a worker thread."""

    def __init__(self, runs: RunJournals, journal: Journal) -> None:
        self.runs = runs
        self.journal = journal
        self.writes = 0
        self._asked: list[asyncio.Future[None]] = []
        self._task: asyncio.Task[None] | None = None
        self._unreported: BaseException | None = None

    def save(self) -> asyncio.Future[None]:
        """Ask for the journal as it is now to be written: the future is done once a write
        that holds it (or a newer journal) succeeded, or holds that write's error. Asked
        at once, so the acknowledgement is written even if nobody awaits the future."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._unreported is not None:
            exc, self._unreported = self._unreported, None
            done.set_exception(exc)
            return done
        self._asked.append(done)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        return done

    async def drain(self, *, report: bool = True) -> None:
        """Wait until no write is in flight; with ``report``, raise an error that no
        caller of :meth:`save` received (their tasks were cancelled)."""
        if self._task is not None:
            await asyncio.shield(self._task)
        if report and self._unreported is not None:
            exc, self._unreported = self._unreported, None
            raise exc

    async def _run(self) -> None:
        while self._asked:
            served, self._asked = self._asked, []
            try:
                await self._write()
            except Exception as exc:  # every error goes to its callers
                if not _settle(served, exc):
                    self._unreported = exc
            else:
                _settle(served, None)

    async def _write(self) -> None:
        journal = self.journal
        check_lock(journal)
        for chunk in self.runs.chunks_to_seal(journal):
            await to_thread(self.runs.write_chunk, journal, chunk)
            journal.batches.sealed(chunk)
        doc = self.runs.journal_doc(journal)
        journal.etag = await to_thread(self.runs.write_journal, journal, doc)
        self.writes += 1


def _settle(served: list[asyncio.Future[None]], exc: Exception | None) -> bool:
    """Give each waiting caller the result; False when none was waiting any more."""
    told = False
    for done in served:
        if done.done():
            continue
        if exc is None:
            done.set_result(None)
        else:
            done.set_exception(exc)
        told = True
    return told
