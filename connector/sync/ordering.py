"""The order runs of a source apply in, and which older run a run must wait for.

``full`` mode: a newer extract that passes the guard supersedes older runs still
planned, held, waiting or blocked (it carries everyone). ``delta`` mode: runs apply
strictly in extract order; a run that cannot go on stops the later ones, which queue
behind it. Only reads runs (the caller supersedes what :meth:`RunOrder.older_to_supersede`
names).
"""

from __future__ import annotations

import logging
from datetime import datetime

from connector.config import Source
from connector.sync.journal import (
    DISCARDABLE_STATES,
    QUEUE_STATES,
    Journal,
    RunState,
    later_copy_run_id,
)
from connector.sync.run_store import RunStore

__all__ = ["RunOrder"]

log = logging.getLogger(__name__)


class RunOrder:
    """Queries over a source's runs in apply order (extract time, receipt, run id)."""

    def __init__(self, runs: RunStore) -> None:
        self.runs = runs

    def open_runs(self, source: str) -> list[Journal]:
        """Runs that still have to be sent, or that hold up later ones (planned, held,
        uploading, blocked), plus unfinished runs with a discard marker; oldest first."""
        found: list[Journal] = []
        discards: set[str] | None = None
        for journal in self.runs.runs(source):
            if journal.state not in QUEUE_STATES:
                if journal.state not in DISCARDABLE_STATES:
                    continue
                if discards is None:
                    discards = self.runs.discard_markers(source)
                if journal.run_id not in discards:
                    continue
            found.append(journal)
        return sorted(found, key=lambda j: j.order)

    def delivery(
        self,
        src: Source,
        run_id: str,
        name: str,
        received: datetime,
        file_time: datetime | None = None,
    ) -> tuple[str, Journal | None]:
        """The run a delivered file belongs to, and its journal if it exists.

        Same bytes and same extract time: a redelivery (no-op). Same bytes but a later
        extract after a newer extract was applied (day 3 back to day 1's content after
        day 2 changed it): a new run, ``<run id>-<extract time>``, else day 2's changes
        would silently stand. Same bytes, later time, nothing applied in between (the
        file uploaded again): still the same run.
        """
        existing = self.runs.load(src.name, run_id)
        if existing is None:
            return run_id, None
        new_at = src.extract_time(name, received, file_time)
        old_at = existing.extract_at
        last = self.runs.last_applied(src.name)
        if old_at is None or new_at <= old_at or last is None or last <= old_at:
            return run_id, existing
        later = later_copy_run_id(run_id, new_at)
        log.info("run %s: same content as run %s, later extract", later, run_id)
        return later, self.runs.load(src.name, later)

    def has_unfinished_runs(self, source: str, journal: Journal) -> bool:
        """Whether another run of ``source`` may still change the record index before this
        one is sent (then its records are kept so it can be planned again)."""
        return any(j.run_id != journal.run_id for j in self.open_runs(source))

    def find_blocker(self, src: Source, journal: Journal) -> Journal | None:
        """An older run of the source this one must wait for, if any.

        ``delta``: any older run not finished sending (planned, held, uploading, blocked):
        this file holds only changes, the older run's are not in it. ``full``: an older run
        still uploading or blocked (a newer run that passes the guard supersedes it
        first, so this is only ever found for a run that cannot supersede).
        """
        mine = journal.order
        states = QUEUE_STATES if src.mode == "delta" else {RunState.UPLOADING, RunState.BLOCKED}
        for other in self.open_runs(src.name):
            if other.run_id == journal.run_id or other.order >= mine:
                continue
            if other.state in states:
                return other
        return None

    def pass_has_work(self, src: Source) -> bool:
        """Whether a pass must take the source's lock (a held run alone needs nothing)."""
        for journal in self.open_runs(src.name):
            if journal.state is not RunState.HELD or self.runs.approval_marker(journal.run_id):
                return True
            if self.runs.discard_marker(journal.run_id) is not None:
                return True
        return False

    def with_batches_left(self, source: str) -> bool:
        """Whether a run of ``source`` is still sending (uploading or blocked)."""
        return any(
            j.state in (RunState.UPLOADING, RunState.BLOCKED) for j in self.runs.runs(source)
        )

    def records_in_unsent_plans(self, source: str) -> set[str]:
        """Records a held or planned run of ``source`` carries (newer data than the last
        payload a reference re-send would repeat): they are left to that run."""
        out: set[str] = set()
        for journal in self.open_runs(source):
            if journal.state in (RunState.HELD, RunState.PLANNED) or journal.queued:
                out.update(op.external_id for op in self.runs.plan_or_empty(journal))
        return out

    def older_to_supersede(self, src: Source, journal: Journal) -> list[Journal]:
        """Older runs a ``full`` run replaces as it is sent (this file carries everyone).
        In ``delta`` mode nothing is superseded: an older run's unsent changes are not in
        a newer file, so runs apply in order."""
        if src.mode != "full":
            return []
        states = {RunState.HELD, RunState.PLANNED, RunState.UPLOADING, RunState.BLOCKED}
        out: list[Journal] = []
        for other in self.runs.runs(src.name):
            if other.run_id == journal.run_id or other.state not in states:
                continue
            if (
                journal.extract_at is not None
                and other.extract_at is not None
                and other.extract_at > journal.extract_at
            ):
                continue
            other.lock = journal.lock
            out.append(other)
        return out
