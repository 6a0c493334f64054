"""The sweep: ingest files still in ``incoming`` well after their upload.

A file's Event Grid event can be lost, or its delivery can give up; the timer's sweep
is the backstop. A file that failed is left alone for a growing delay (a failure
record in ``reports/_connector/sweep.json``), so a permanently broken file cannot block
the ones behind it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from connector.clock import Clock
from connector.functions.dropzone import SWEEP_BLOB, DropZone, IncomingBlob
from connector.functions.outcomes import DropOutcome
from connector.functions.values import as_time

__all__ = [
    "SWEEP_BUDGET_SECONDS",
    "SWEEP_MAX_FILES",
    "SWEEP_MIN_AGE",
    "Ingest",
    "Sweep",
    "sweep_retry_delay",
]

log = logging.getLogger("connector.functions")

#: A file still in ``incoming`` this long after upload was missed by its event (or its
#: delivery gave up); the timer ingests it.
SWEEP_MIN_AGE = timedelta(minutes=10)
#: Files the timer picks up per pass, and the time it may spend on them: the sweep runs
#: last in a pass and must leave the pass well inside ``functionTimeout`` (30 min).
SWEEP_MAX_FILES = 20
SWEEP_BUDGET_SECONDS = 10 * 60.0
#: A file that failed to ingest is retried after 15 min, 30 min, 1 h … at most a day.
_SWEEP_RETRY_BASE = timedelta(minutes=15)
_SWEEP_RETRY_MAX = timedelta(hours=24)

#: Handles one file as a dropped file, by name (it reads the bytes itself) → what became of it.
Ingest = Callable[[str], Awaitable[DropOutcome]]


def sweep_retry_delay(failures: int) -> timedelta:
    """How long the sweep leaves a file alone after its ``failures``-th failure in a row."""
    step: timedelta = _SWEEP_RETRY_BASE * int(2 ** min(10, max(0, failures - 1)))
    return min(step, _SWEEP_RETRY_MAX)


class Sweep:
    """One pass over ``incoming``, with the failure record read and written once."""

    def __init__(self, zone: DropZone, clock: Clock, ingest: Ingest) -> None:
        self.zone = zone
        self.clock = clock
        self.ingest = ingest

    async def run(self) -> list[DropOutcome]:
        """Ingest the files that are due, one at a time, oldest first as listed.

        Names are listed first (no bytes); each file is downloaded only when its turn
        comes. The sweep stops at :data:`SWEEP_MAX_FILES` files or
        :data:`SWEEP_BUDGET_SECONDS`, whichever comes first; the rest wait for the next pass.
        """
        started = self.clock.monotonic()
        now = self.clock.now()
        listed = self.zone.list_incoming()
        failures = self._failures()
        changed = False
        outcomes: list[DropOutcome] = []
        for blob in listed:
            if blob.received_at > now - SWEEP_MIN_AGE:
                continue  # too fresh: its event may still be on the way
            if len(outcomes) >= SWEEP_MAX_FILES:
                break
            if self.clock.monotonic() - started >= SWEEP_BUDGET_SECONDS:
                log.info("reconcile: sweep time budget spent; the rest waits for the next pass")
                break
            record = failures.get(blob.name)
            if record is not None and record.get("etag") == blob.etag:
                retry_at = as_time(record.get("nextAttemptAt"))
                if retry_at is not None and now < retry_at:
                    continue
            outcome = await self._one(blob)
            log.info("reconcile: swept %s", outcome.line())
            outcomes.append(outcome)
            changed = self._record(failures, blob, record, outcome) or changed
        present = {b.name for b in listed}
        for name in [n for n in failures if n not in present]:
            del failures[name]  # gone from incoming: forget it
            changed = True
        if changed:
            self.zone.write_json(*SWEEP_BLOB, {"failures": failures})
        return outcomes

    def _record(
        self,
        failures: dict[str, dict[str, Any]],
        blob: IncomingBlob,
        record: dict[str, Any] | None,
        outcome: DropOutcome,
    ) -> bool:
        """Count a failure (or forget the file's record); whether the record changed."""
        if outcome.action == "failed":
            count = 1
            if record is not None and record.get("etag") == blob.etag:
                count = int(record.get("failures", 0)) + 1
            failures[blob.name] = {
                "etag": blob.etag,
                "failures": count,
                "lastFailureAt": self.clock.now().isoformat(),
                "nextAttemptAt": (self.clock.now() + sweep_retry_delay(count)).isoformat(),
                "error": outcome.detail,
            }
            return True
        return failures.pop(blob.name, None) is not None

    async def _one(self, blob: IncomingBlob) -> DropOutcome:
        try:
            return await self.ingest(blob.name)
        except Exception as exc:  # one stuck file must not block the others
            log.warning("reconcile: %s could not be ingested (%s)", blob.name, type(exc).__name__)
            return DropOutcome(blob.name, "failed", detail=type(exc).__name__)

    def _failures(self) -> dict[str, dict[str, Any]]:
        try:
            doc = self.zone.read_json(*SWEEP_BLOB)
        except Exception:  # a corrupt record must not stop the sweep; it is rewritten
            return {}
        failures = doc.get("failures") if isinstance(doc, dict) else None
        return dict(failures) if isinstance(failures, dict) else {}
