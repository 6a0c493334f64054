"""Markers in ``approvals``: approve a held run, discard one, resume a blocked one.

An operator drops ``<run id>`` (approve), ``<run id>.discard`` or ``<run id>.resume``
in the ``approvals`` container; the timer acts on it and files it with its outcome.
Who approved or discarded (``by``, ``reason``) goes to the run's journal, not to logs.
"""

from __future__ import annotations

import logging

from connector.errors import ConcurrentRunError, ConnectorError, RunError
from connector.functions.dropzone import DropZone
from connector.functions.markers import ApprovalMarker, MarkerAction
from connector.functions.outcomes import ApprovalOutcome
from connector.functions.telemetry import Telemetry
from connector.sync.engine import Engine
from connector.sync.journal import RunState

__all__ = ["MARKER_DISCARDABLE_STATES", "Approvals"]

log = logging.getLogger("connector.functions")

#: States a discard marker in ``approvals`` may discard: the run has sent nothing yet. A
#: run already uploading (or waiting, or blocked, with batches delivered) is left alone:
#: stopping it half-way is an administrator's call (``connector runs discard``, or a
#: ``discards/<run id>`` state document), not one for the approvals container.
MARKER_DISCARDABLE_STATES = frozenset({RunState.RECEIVED, RunState.PLANNED, RunState.HELD})

_DEFAULT_BY = "approvals container"


class Approvals:
    """Acts on the markers in ``approvals`` through the engine."""

    def __init__(self, zone: DropZone, engine: Engine, telemetry: Telemetry) -> None:
        self.zone = zone
        self.engine = engine
        self.telemetry = telemetry

    async def process(self, busy: set[str] | None = None) -> list[ApprovalOutcome]:
        """Approve or discard the runs named by markers in ``approvals``, then file them.

        Discard markers are handled first, and an approval marker for a run that also has
        a discard marker in this pass is never acted on (``overridden_by_discard``): when
        an operator asked for both, not sending is the cautious choice. Idempotent: a
        marker for a run already approved or discarded (by an earlier marker, the CLI or a
        state document) is filed without doing anything. A marker for a busy source stays
        for the next pass (and so does an approval waiting on a busy discard).
        """
        markers = self.zone.approval_markers()
        discarding = {m.run_id for m in markers if m.action is MarkerAction.DISCARD}
        # Discards first; otherwise oldest first, as listed (the sort is stable).
        markers.sort(key=lambda m: m.action is not MarkerAction.DISCARD)
        busy_discards: set[str] = set()
        out: list[ApprovalOutcome] = []
        for marker in markers:
            result = await self._handle(marker, discarding, busy_discards)
            out.append(result)
            if result.outcome == "busy":
                if result.action is MarkerAction.DISCARD:
                    busy_discards.add(marker.run_id)
                source = self._run_source(marker.run_id)
                if busy is not None and source is not None:
                    busy.add(source)
                continue  # the marker stays: the next pass tries again
            self.zone.file_approval_marker(marker, result.outcome)
            log.info(
                "reconcile: %s marker for run %s: %s (state=%s)",
                result.action,
                marker.run_id,
                result.outcome,
                result.state,
            )
        return out

    async def _handle(
        self, marker: ApprovalMarker, discarding: set[str], busy_discards: set[str]
    ) -> ApprovalOutcome:
        action = marker.action
        if action is MarkerAction.INVALID:
            return ApprovalOutcome(marker.run_id, "invalid_marker", action=action)
        if action is MarkerAction.DISCARD:
            return self.discard(marker)
        if marker.run_id in discarding:
            code = "busy" if marker.run_id in busy_discards else "overridden_by_discard"
            return ApprovalOutcome(
                marker.run_id, code, self._run_state(marker.run_id), action=action
            )
        if action is MarkerAction.RESUME:
            return await self.resume(marker)
        return await self.approve(marker)

    def _run_source(self, run_id: str) -> str | None:
        """The run's source from its journal (a run id cannot be split reliably: dated
        copies and retries add ``-`` parts, and source names may hold ``-``)."""
        try:
            return self.engine.get_run(run_id).source
        except (RunError, ConnectorError):
            return None

    def _run_state(self, run_id: str) -> str | None:
        try:
            return self.engine.get_run(run_id).state.value
        except (RunError, ConnectorError):
            return None

    async def approve(self, marker: ApprovalMarker) -> ApprovalOutcome:
        """Approve a held run (any other state files the marker untouched)."""
        run_id = marker.run_id
        try:
            journal = self.engine.get_run(run_id)
        except (RunError, ConnectorError):
            return ApprovalOutcome(run_id, "unknown_run")
        state = journal.state.value
        if state != RunState.HELD:
            code = "already_approved" if journal.approved_by else "not_held"
            return ApprovalOutcome(run_id, code, state)
        try:
            summary = await self.engine.approve(run_id, by=marker.by or _DEFAULT_BY)
        except ConcurrentRunError:
            return ApprovalOutcome(run_id, "busy", state)
        except RunError as exc:
            log.warning("reconcile: run %s cannot be approved (%s)", run_id, type(exc).__name__)
            return ApprovalOutcome(run_id, "refused", state)
        self.telemetry.record_run(summary, "resume")
        return ApprovalOutcome(run_id, "approved", summary.state)

    async def resume(self, marker: ApprovalMarker) -> ApprovalOutcome:
        """Resume a blocked run (the timer never retries one: the cause needs fixing first).

        The engine applies runs in order, so a resumed run of a ``delta`` source may end
        queued behind an older one, and the runs queued behind it follow it.
        """
        run_id = marker.run_id
        resume = MarkerAction.RESUME
        try:
            journal = self.engine.get_run(run_id)
        except (RunError, ConnectorError):
            return ApprovalOutcome(run_id, "unknown_run", action=resume)
        state = journal.state.value
        if state != RunState.BLOCKED:
            return ApprovalOutcome(run_id, "not_blocked", state, resume)
        try:
            summary = await self.engine.resume(run_id)
        except ConcurrentRunError:
            return ApprovalOutcome(run_id, "busy", state, resume)
        self.telemetry.record_run(summary, "resume")
        return ApprovalOutcome(run_id, "resumed", summary.state, resume)

    def discard(self, marker: ApprovalMarker) -> ApprovalOutcome:
        """Discard the run a discard marker names, if it has sent nothing yet.

        The state is checked by the engine under the source's lock
        (:data:`MARKER_DISCARDABLE_STATES`), so a run approved and started meanwhile is
        not stopped half-way. The engine records ``discarded by <by> (reason: <reason>)``
        in the run's journal (``discardedReason`` and the timeline) and its report.
        """
        run_id = marker.run_id
        discard = MarkerAction.DISCARD
        try:
            journal = self.engine.get_run(run_id)
        except (RunError, ConnectorError):
            return ApprovalOutcome(run_id, "unknown_run", action=discard)
        state = journal.state.value
        if state == RunState.DISCARDED or journal.discarded_reason:
            return ApprovalOutcome(run_id, "already_discarded", state, discard)
        try:
            summary = self.engine.discard(
                run_id,
                by=marker.by or _DEFAULT_BY,
                reason=marker.reason,
                allowed_states=MARKER_DISCARDABLE_STATES,
            )
        except ConcurrentRunError:
            return ApprovalOutcome(run_id, "busy", state, discard)
        except RunError as exc:  # its state changed since it was read
            log.warning("reconcile: run %s cannot be discarded (%s)", run_id, type(exc).__name__)
            return ApprovalOutcome(run_id, "not_discardable", self._run_state(run_id), discard)
        return ApprovalOutcome(run_id, "discarded", summary.state, discard)
