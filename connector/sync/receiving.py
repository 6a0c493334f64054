"""A delivered file's run: already received, received again, or new.

A file whose run exists and got past planning (or sent anything) was already received:
nothing to do. A run that stopped before sending anything (a mapping error since fixed,
a crash while planning) is received again and planned again from the file. Otherwise a
new run is recorded (``received``). :meth:`Receiver.receive` writes under the source's
lock the engine holds; :meth:`Receiver.dry_run` says what a real delivery would do and
writes nothing.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import TypeGuard

from connector.config import Source
from connector.extract_time import ordering_warning
from connector.state.base import SourceLock
from connector.sync.context import SyncContext
from connector.sync.journal import Journal, RunState
from connector.sync.ordering import RunOrder
from connector.sync.planning import Planner
from connector.sync.reporting import Reporter
from connector.sync.summary import RunSummary

__all__ = ["Arrival", "Receiver", "already_received"]

log = logging.getLogger(__name__)

_REPLANNABLE = (RunState.FAILED, RunState.RECEIVED, RunState.PLANNED)
"""States of a run that stopped before sending anything: its file is planned again."""
Arrival = tuple[datetime, datetime | None]
"""When the bytes arrived, and the file's own time (blob creation / modification), if known."""


def already_received(existing: Journal | None) -> TypeGuard[Journal]:
    """The delivered file's run exists and is past planning or sent something."""
    return existing is not None and (existing.state not in _REPLANNABLE or bool(existing.batches))


class Receiver:
    """Finds or records the run of a delivered file."""

    def __init__(
        self, ctx: SyncContext, order: RunOrder, planner: Planner, reporter: Reporter
    ) -> None:
        self.ctx = ctx
        self.order = order
        self.planner = planner
        self.reporter = reporter

    def dry_run(
        self, src: Source, name: str, path: Path, run_id: str, arrival: Arrival, full: bool
    ) -> RunSummary:
        """What a real delivery would do, counted; nothing written."""
        seen, existing = self.order.delivery(src, run_id, name, *arrival)
        extract = src.extract_time_of(name, *arrival)
        if already_received(existing):
            # What a real sync would do: nothing, the file was already received.
            summary = self.reporter.summary(existing)
            summary.duplicate = summary.dry_run = True
            summary.batches_total = summary.batches_done = 0
            return summary
        summary = self.planner.dry_run(src, name, path, seen, full_resend=full)
        summary.ordering_warning = ordering_warning(extract.basis)
        return summary

    def receive(
        self,
        src: Source,
        run_id: str,
        name: str,
        arrival: Arrival,
        lock: SourceLock,
        existing: Journal | None,
    ) -> Journal:
        """The run to plan: ``existing`` received again (it stopped before sending
        anything: delivering the same file again plans it again), else a new run."""
        if existing is not None:
            existing.lock = lock
            existing.receive_again(self.ctx.clock.now(), f"file {name} received again")
            self.ctx.runs.save(existing)
            return existing
        received, file_time = arrival
        extract = src.extract_time_of(name, received, file_time)
        journal = Journal(
            run_id=run_id,
            source=src.name,
            state=RunState.RECEIVED,
            file=name,
            kind="extract",
            received_at=received,
            extract_at=extract.at,
            extract_basis=extract.basis,
            lock=lock,
        )
        clock = self.ctx.clock
        journal.event(clock.now(), f"file {name}")
        if extract.basis == "arrival":
            journal.event(clock.now(), "ordered by arrival time (no date in the file name)")
            log.warning("run %s: no extract time in the file name; ordered by arrival", run_id)
        self.ctx.runs.create(journal)
        log.info("run %s: received for source %s", run_id, src.name)
        return journal
