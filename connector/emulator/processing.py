"""The provisioning worker: takes uploads from job buckets in order and applies their
operations (``operation.process_operation``) in cycles.

A cycle is one pass over what the bucket holds when the pass starts, whole uploads, up to
``cycle_max_operations`` (assumed: the cycle size and order are not documented); its
counts become the job's ``status.lastExecution`` (synchronizationTaskExecution fields).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import uuid
from datetime import datetime
from typing import Any

from connector.emulator.clock import iso
from connector.emulator.job import JobRuntime
from connector.emulator.log_entry import LogEntry, display_name
from connector.emulator.operation import process_operation
from connector.emulator.tenant import EmulatorState

__all__ = ["Worker", "run_cycle"]

log = logging.getLogger(__name__)


def _resolve_pending(state: EmulatorState, job: JobRuntime, cycle_id: str) -> int:
    """Optional escrow retry: set managers that have appeared since they were skipped."""
    count = 0
    now = state.clock.now()
    for user in state.users.values():
        ref = user.pending_manager
        if ref is None or ref not in state.users:
            continue
        mgr = state.users[ref]
        user.pending_manager = None
        user.manager = ref
        user.modified = now
        seq, entry_id, change_id = state.new_entry_ids()
        state.logs.append(
            LogEntry(
                seq=seq,
                id=entry_id,
                activity=now,
                job_id=job.id,
                cycle_id=cycle_id,
                change_id=change_id,
                action="update",
                status="success",
                error=None,
                modified=[("manager", None, mgr.object_id)],
                source_id=user.external_id,
                source_display=display_name(user.attributes),
                target_id=user.object_id,
                target_display=display_name(user.attributes),
                service_principal_id=job.service_principal_id,
                tenant_id=state.config.tenant_id,
                duration_ms=1,
            )
        )
        count += 1
    return count


async def run_cycle(state: EmulatorState, job: JobRuntime) -> int:
    """One provisioning cycle: drain what the bucket holds now (up to the cycle cap)."""
    cycle_id = str(uuid.uuid4())
    began: datetime = state.clock.now()
    cap = state.config.cycle_max_operations
    counts = {"create": 0, "update": 0, "disable": 0, "other": 0, "failure": 0}
    done = 0
    while job.queue and done < cap and job.runnable:
        upload = job.queue.popleft()
        job.queued_operations -= len(upload.operations)
        for op in upload.operations:
            result = process_operation(state, job, op["data"], cycle_id)
            state.logs.append(result)
            counts["failure" if result.status == "failure" else result.action] += 1
            if result.status != "failure":
                job.processed.add(result.source_id)
        done += len(upload.operations)
        await asyncio.sleep(0)
    if state.config.auto_resolve_references:
        counts["update"] += _resolve_pending(state, job, cycle_id)
    exported = counts["create"] + counts["update"] + counts["disable"]
    execution = _execution(cycle_id, began, state.clock.now(), done, counts["failure"], exported)
    job.last_execution = execution
    job.failed_operations += counts["failure"]
    if not counts["failure"]:
        job.last_successful_execution = execution
        if exported:
            job.last_execution_with_exports = execution
    job.successive_failures = job.successive_failures + 1 if done and not exported else 0
    job.cycles += 1
    job.cycle_completed()
    log.debug("job %s cycle %s processed %d operations", job.id, cycle_id, done)
    return done


def _execution(
    cycle_id: str, began: datetime, ended: datetime, done: int, failures: int, exported: int
) -> dict[str, Any]:
    """The cycle as a synchronizationTaskExecution: ``countImported`` = operations of the
    cycle, ``countExported`` = ``countExports`` = creates + updates + disables,
    ``countEscrowed`` = failures ("countExported: Count of exported entries";
    "countExports: Count of entries that were expected to be exported")."""
    return {
        "activityIdentifier": cycle_id,
        "countEntitled": done,
        "countEntitledForProvisioning": done,
        "countEscrowed": failures,
        "countEscrowedRaw": failures,
        "countExported": exported,
        "countExports": exported,
        "countImported": done,
        "countImportedDeltas": done,
        "countImportedReferenceDeltas": 0,
        "error": None,
        "state": "EntryLevelErrors" if failures else "Succeeded",
        "timeBegan": iso(began),
        "timeEnded": iso(ended),
    }


class Worker:
    """Background task on the server loop: wakes on uploads and job state changes."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        self._wake = asyncio.Event()
        self.idle = asyncio.Event()
        self.idle.set()
        self._task: asyncio.Task[None] | None = None
        self._froze = False

    def ensure_started(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    def wake(self) -> None:
        """Something may be runnable now (an upload arrived or a job was started)."""
        self.ensure_started()
        if any(j.runnable and j.queue for j in self.state.jobs.values()):
            self.idle.clear()
        self._wake.set()

    async def stop(self) -> None:
        """Cancel the task; if it froze the heap (``gc_freeze``), hand it back to the GC."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._froze:
            gc.unfreeze()
            self._froze = False

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while True:
                busy = [j for j in self.state.jobs.values() if j.runnable and j.queue]
                if not busy:
                    break
                for job in busy:
                    try:
                        await run_cycle(self.state, job)
                    except Exception:  # pragma: no cover - a bug must not kill the worker
                        log.exception("job %s: processing cycle failed", job.id)
                        job.queue.clear()
                        job.queued_operations = 0
                    if self.state.config.gc_freeze:
                        # The directory and the logs only grow and hold no reference
                        # cycles: move them out of the cyclic collector's reach, which
                        # otherwise rescans them on every full collection. Process-wide,
                        # hence opt-in (EmulatorConfig.gc_freeze).
                        gc.freeze()
                        self._froze = True
            self.idle.set()
