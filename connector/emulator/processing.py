"""The provisioning worker: takes operations from job buckets and applies them, in order.

Documented behaviour modelled here: matching ``externalId`` <-> ``employeeId``; the service
decides create / update / disable itself; only ``work`` emails/phones/addresses are
read; ``active:false`` disables (and, assumed from issue #16, so does an update that
omits ``active``); a UPN already in use fails the record; a manager not
yet known is skipped with ``UnableToResolveReferenceAttributeValue``; results appear only
in the provisioning logs. Assumptions (see docs/emulator.md): error codes for a UPN
conflict and a missing UPN, "skipped" for a record that changes nothing, a cycle =
one pass over what the bucket holds when the pass starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
import uuid
from datetime import datetime
from typing import Any

from connector.emulator.model import (
    DirectoryUser,
    EmulatorState,
    ErrorInfo,
    JobRuntime,
    LogEntry,
    iso,
)
from connector.emulator.schema import (
    ACTIVE,
    EXTERNAL_ID,
    MANAGER,
    USER_NAME,
    CompiledSchema,
    flatten_record,
)

__all__ = ["UPN_CONFLICT_CODE", "Worker", "process_operation", "run_cycle"]

log = logging.getLogger(__name__)

UPN_ATTRIBUTE = "userPrincipalName"
UPN_CONFLICT_CODE = "AzureActiveDirectoryConflictEntryPrimaryAttributes"
INVALID_UPN_CODE = "AzureActiveDirectoryInvalidUserPrincipalName"
MISSING_UPN_CODE = "AzureActiveDirectoryRequiredAttributeMissing"
REDUNDANT = "RedundantExport"
_ABSENT: Any = object()


def _display(attrs: dict[str, Any]) -> str | None:
    value = attrs.get("displayName")
    return value if isinstance(value, str) else None


def process_operation(
    state: EmulatorState, job: JobRuntime, data: dict[str, Any], cycle_id: str
) -> LogEntry:
    """Apply one record to the directory and return its log entry (not yet stored)."""
    started = time.perf_counter()
    now = state.clock.now()
    ext = str(data[EXTERNAL_ID])
    schema = job.schema
    flat, _ignored = flatten_record(data)
    values = {k: v for k, v in flat.items() if schema.applies(k)}
    active = values.pop(ACTIVE, _ABSENT)
    values.pop(EXTERNAL_ID, None)
    manager_ref = values.pop(MANAGER, _ABSENT)
    user = state.users.get(ext)
    matched = user is not None

    wanted: dict[str, Any] = {}
    for src, value in values.items():
        if value is None or value == "":
            if src in schema.flow_nulls and src != USER_NAME:
                wanted[schema.target_of(src)] = None
            continue
        wanted[schema.target_of(src)] = value
    if user is not None and state.config.clear_omitted_flow_null_attributes:
        for src in schema.flow_nulls:
            if src not in flat and src not in (USER_NAME, EXTERNAL_ID, ACTIVE, MANAGER):
                wanted.setdefault(schema.target_of(src), None)

    def entry(
        action: str,
        status: str,
        error: ErrorInfo | None,
        modified: list[tuple[str, Any, Any]],
        target: DirectoryUser | None,
        skipped: tuple[str, ...] = (),
        reference: str | None = None,
    ) -> LogEntry:
        attrs = target.attributes if target else wanted
        seq, entry_id, change_id = state.new_entry_ids()
        return LogEntry(
            seq=seq,
            id=entry_id,
            activity=now,
            job_id=job.id,
            cycle_id=cycle_id,
            change_id=change_id,
            action=action,
            status=status,
            error=error,
            modified=modified,
            source_id=ext,
            source_display=_display(wanted) or _display(attrs),
            target_id=target.object_id if target else None,
            target_display=_display(attrs),
            service_principal_id=job.service_principal_id,
            tenant_id=state.config.tenant_id,
            duration_ms=max(1, int((time.perf_counter() - started) * 1000)),
            skipped_attributes=skipped,
            matched=matched,
            pending_reference=reference,
        )

    planned_action = "create" if user is None else "update"
    upn = wanted.get(UPN_ATTRIBUTE)
    if upn is None:
        wanted.pop(UPN_ATTRIBUTE, None)
        if user is None:
            return entry(
                planned_action,
                "failure",
                ErrorInfo(
                    MISSING_UPN_CODE,
                    f"The required attribute {UPN_ATTRIBUTE} (source userName) has no value.",
                    recommended_action="Send userName with a UPN in a verified domain.",
                ),
                [],
                None,
            )
    elif user is None or upn != user.attributes.get(UPN_ATTRIBUTE):
        upn_text = str(upn)
        domain = upn_text.rsplit("@", 1)[1].lower() if "@" in upn_text else ""
        if domain not in job.verified_domains:
            return entry(
                planned_action,
                "failure",
                ErrorInfo(
                    INVALID_UPN_CODE,
                    f"The userPrincipalName domain '{domain or '(none)'}' does not exist or is"
                    " not a verified domain of this tenant.",
                    recommended_action="Use a UPN suffix that is a verified domain.",
                ),
                [],
                user,
            )
        holder = state.upn_index.get(upn_text.lower())
        if holder is not None and holder != ext:
            return entry(
                planned_action,
                "failure",
                ErrorInfo(
                    UPN_CONFLICT_CODE,
                    "Another object already uses this userPrincipalName (held by the user"
                    f" with employeeId '{holder}').",
                    recommended_action="Make userName unique (e.g. append a number).",
                ),
                [],
                user,
            )

    skipped: tuple[str, ...] = ()
    manager_object: str | None = None
    manager_ext: str | Any | None = _ABSENT
    pending: str | Any | None = _ABSENT
    if manager_ref is not _ABSENT:
        if manager_ref is None or manager_ref == "":
            if MANAGER in schema.flow_nulls:
                manager_ext, pending = None, None
        else:
            ref = str(manager_ref)
            mgr = _manager(state, job, ref)
            if mgr is None:
                skipped = ("manager",)
                pending = ref
            else:
                manager_ext, pending, manager_object = ref, None, mgr.object_id

    if user is None:
        enabled = (
            active if isinstance(active, bool) else state.config.new_user_enabled_without_active
        )
        attrs = {k: v for k, v in wanted.items() if v is not None}
        user = DirectoryUser(
            object_id=state.new_object_id(),
            external_id=ext,
            account_enabled=enabled,
            attributes={"employeeId": ext, **attrs},
            created=now,
            modified=now,
        )
        modified: list[tuple[str, Any, Any]] = [("employeeId", None, ext)]
        modified += [(k, None, v) for k, v in attrs.items()]
        modified.append(_enabled_change(job, None, enabled))
        if isinstance(manager_ext, str):
            user.manager = manager_ext
            modified.append(("manager", None, manager_object))
        if isinstance(pending, str):
            user.pending_manager = pending
        state.users[ext] = user
        state.upn_index[str(attrs[UPN_ATTRIBUTE]).lower()] = ext
        # An unresolved manager is a step detail; the entry itself is a success.
        return entry("create", "success", None, modified, user, skipped, _ref(pending))

    modified = []
    old_upn = user.attributes.get(UPN_ATTRIBUTE)
    for key, value in wanted.items():
        old = user.attributes.get(key)
        if old == value:
            continue
        modified.append((key, old, value))
        if value is None:
            user.attributes.pop(key, None)
        else:
            user.attributes[key] = value
    new_upn = user.attributes.get(UPN_ATTRIBUTE)
    if new_upn != old_upn:
        if isinstance(old_upn, str):
            state.upn_index.pop(old_upn.lower(), None)
        state.upn_index[str(new_upn).lower()] = ext
    action = "update"
    if active is _ABSENT and _omitted_active_disables(state, schema, flat):
        active = False
    if isinstance(active, bool) and active != user.account_enabled:
        modified.append(_enabled_change(job, user.account_enabled, active))
        user.account_enabled = active
        if not active:
            action = "disable"
    if manager_ext is not _ABSENT and manager_ext != user.manager:
        old_object = state.users[user.manager].object_id if user.manager in state.users else None
        modified.append(("manager", old_object, manager_object))
        user.manager = manager_ext
    if pending is not _ABSENT:
        user.pending_manager = pending
    if modified:
        user.modified = now
    if skipped:
        return entry(action, "success", None, modified, user, skipped, _ref(pending))
    if not modified:
        return entry(
            "other",
            "skipped",
            ErrorInfo(
                REDUNDANT, "The user was skipped: every attribute already has the sent value."
            ),
            [],
            user,
        )
    return entry(action, "success", None, modified, user)


def _manager(state: EmulatorState, job: JobRuntime, ref: str) -> DirectoryUser | None:
    """The manager a reference resolves to. A job to on-premises AD resolves only against
    users it has processed itself (Microsoft Q&A 5830481: the service "does not resolve
    reference attributes like manager by querying AD directly ... only ... objects that
    have already been processed")."""
    if job.on_premises and ref not in job.processed:
        return None
    return state.users.get(ref)


def _omitted_active_disables(
    state: EmulatorState, schema: CompiledSchema, flat: dict[str, Any]
) -> bool:
    """An update whose record omits ``active`` disables the user, when the job maps
    ``active`` (assumed from a user's report, AzureAD/entra-id-inbound-provisioning
    issue #16: the service "behaves as though it were a PUT performing full replacements
    instead of partial updates for the SCIM active attribute"; not documented by
    Microsoft). An explicit ``active: null`` is not an omission and changes nothing."""
    return (
        state.config.disable_on_update_without_active
        and ACTIVE not in flat
        and schema.applies(ACTIVE)
    )


def _enabled_change(job: JobRuntime, old: bool | None, new: bool) -> tuple[str, Any, Any]:
    """The modified property for ``active``: Entra's ``accountEnabled``; on-premises AD's
    ``accountDisabled`` holds the inverse (Entra FAQ: "If you are provisioning to
    on-premises Active Directory, then map that source attribute to the accountDisabled
    attribute")."""
    if job.on_premises:
        return ("accountDisabled", None if old is None else not old, not new)
    return ("accountEnabled", old, new)


def _ref(pending: Any) -> str | None:
    return pending if isinstance(pending, str) else None


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
                source_display=_display(user.attributes),
                target_id=user.object_id,
                target_display=_display(user.attributes),
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
    ended = state.clock.now()
    exported = counts["create"] + counts["update"] + counts["disable"]
    execution = {
        "activityIdentifier": cycle_id,
        "countEntitled": done,
        "countEntitledForProvisioning": done,
        "countEscrowed": counts["failure"],
        "countEscrowedRaw": counts["failure"],
        "countExported": exported,
        "countExports": exported,
        "countImported": done,
        "countImportedDeltas": done,
        "countImportedReferenceDeltas": 0,
        "error": None,
        "state": "EntryLevelErrors" if counts["failure"] else "Succeeded",
        "timeBegan": iso(began),
        "timeEnded": iso(ended),
    }
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
