"""One SCIM operation applied to the directory, and the log entry that says what happened.

Documented behaviour modelled here: matching ``externalId`` <-> ``employeeId``; the service
decides create / update / disable itself; only ``work`` emails/phones/addresses are read
(``schema.flatten_record``); ``active:false`` disables (and, assumed from issue #16, so
does an update that omits ``active``); a UPN already in use fails the record; a manager
not yet known is skipped with ``UnableToResolveReferenceAttributeValue``; results appear
only in the provisioning logs. Assumptions (see docs/emulator.md): error codes for a UPN
conflict and a missing UPN, "skipped" for a record that changes nothing.

``process_operation`` runs the steps in order: read the record through the job's schema,
refuse it for its UPN, resolve its manager, then create the user or update it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from connector.emulator.job import JobRuntime
from connector.emulator.log_entry import ErrorInfo, LogEntry, display_name
from connector.emulator.schema import (
    ACTIVE,
    EXTERNAL_ID,
    MANAGER,
    USER_NAME,
    CompiledSchema,
    flatten_record,
)
from connector.emulator.tenant import DirectoryUser, EmulatorState

__all__ = ["UPN_CONFLICT_CODE", "process_operation"]

UPN_ATTRIBUTE = "userPrincipalName"
UPN_CONFLICT_CODE = "AzureActiveDirectoryConflictEntryPrimaryAttributes"
INVALID_UPN_CODE = "AzureActiveDirectoryInvalidUserPrincipalName"
MISSING_UPN_CODE = "AzureActiveDirectoryRequiredAttributeMissing"
REDUNDANT = "RedundantExport"
_ABSENT: Any = object()
"""What the record omits (as opposed to ``None``, a value sent as null)."""

Modified = list[tuple[str, Any, Any]]


def process_operation(
    state: EmulatorState, job: JobRuntime, data: dict[str, Any], cycle_id: str
) -> LogEntry:
    """Apply one record to the directory and return its log entry (not yet stored)."""
    started = time.perf_counter()
    now = state.clock.now()
    ext = str(data[EXTERNAL_ID])
    user = state.users.get(ext)
    flat, wanted, active, manager_ref = _read_record(state, job.schema, data, user)
    record = _Record(
        ext, flat, wanted, active, manager_ref, user is not None, cycle_id, now, started
    )
    refusal = _upn_refusal(state, job, record, user)
    if refusal is not None:
        action = "create" if user is None else "update"
        return record.entry(state, job, action, "failure", refusal, [], user)
    manager = _manager_change(state, job, record.manager_ref)
    if user is None:
        user, modified = _create(state, job, record, manager, now)
        # An unresolved manager is a step detail; the entry itself is a success.
        return record.entry(
            state,
            job,
            "create",
            "success",
            None,
            modified,
            user,
            manager.skipped,
            manager.reference,
        )
    action, modified = _update(state, job, user, record, manager, now)
    if manager.skipped:
        return record.entry(
            state, job, action, "success", None, modified, user, manager.skipped, manager.reference
        )
    if not modified:
        return record.entry(
            state,
            job,
            "other",
            "skipped",
            ErrorInfo(
                REDUNDANT, "The user was skipped: every attribute already has the sent value."
            ),
            [],
            user,
        )
    return record.entry(state, job, action, "success", None, modified, user)


# --- reading the record ---------------------------------------------------------


@dataclass(slots=True)
class _Record:
    """One record being applied: what it says as the job's schema reads it (the target
    attributes it sets, ``None`` clearing one; its ``active`` and manager reference,
    ``_ABSENT`` when omitted), and what its log entry needs (cycle, time, whether it
    matched a user)."""

    external_id: str
    flat: dict[str, Any]
    wanted: dict[str, Any]
    active: Any
    manager_ref: Any
    matched: bool
    cycle_id: str
    now: datetime
    started: float

    def entry(
        self,
        state: EmulatorState,
        job: JobRuntime,
        action: str,
        status: str,
        error: ErrorInfo | None,
        modified: Modified,
        target: DirectoryUser | None,
        skipped: tuple[str, ...] = (),
        reference: str | None = None,
    ) -> LogEntry:
        """The record's log entry (not yet stored)."""
        wanted = self.wanted
        attrs = target.attributes if target else wanted
        seq, entry_id, change_id = state.new_entry_ids()
        return LogEntry(
            seq=seq,
            id=entry_id,
            activity=self.now,
            job_id=job.id,
            cycle_id=self.cycle_id,
            change_id=change_id,
            action=action,
            status=status,
            error=error,
            modified=modified,
            source_id=self.external_id,
            source_display=display_name(wanted) or display_name(attrs),
            target_id=target.object_id if target else None,
            target_display=display_name(attrs),
            service_principal_id=job.service_principal_id,
            tenant_id=state.config.tenant_id,
            duration_ms=max(1, int((time.perf_counter() - self.started) * 1000)),
            skipped_attributes=skipped,
            matched=self.matched,
            pending_reference=reference,
        )


def _read_record(
    state: EmulatorState,
    schema: CompiledSchema,
    data: dict[str, Any],
    user: DirectoryUser | None,
) -> tuple[dict[str, Any], dict[str, Any], Any, Any]:
    """The record as the job's schema reads it: (every sent attribute by source name, the
    target attributes it sets, ``active``, the manager reference). Only attributes the
    schema applies are read. JSON null or ``""`` clears an attribute
    only when its source attribute flows null values (``userName`` never clears); with
    ``clear_omitted_flow_null_attributes`` an omitted flow-null attribute of an existing
    user is cleared too (documented for "Clear attribute values")."""
    flat, _ignored = flatten_record(data)
    values = {k: v for k, v in flat.items() if schema.applies(k)}
    active = values.pop(ACTIVE, _ABSENT)
    values.pop(EXTERNAL_ID, None)
    manager_ref = values.pop(MANAGER, _ABSENT)
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
    return flat, wanted, active, manager_ref


# --- the UPN rules --------------------------------------------------------------


def _upn_refusal(
    state: EmulatorState, job: JobRuntime, record: _Record, user: DirectoryUser | None
) -> ErrorInfo | None:
    """Why the record's ``userName`` stops it, or None: missing on a create, a domain
    that is not verified (compared case-insensitively; no ``@`` fails the same way), or
    held by another user (case-insensitive, as Entra UPNs are: "Duplicate UPN -> create
    fails"). A record without ``userName`` keeps an existing user's UPN."""
    wanted = record.wanted
    upn = wanted.get(UPN_ATTRIBUTE)
    if upn is None:
        wanted.pop(UPN_ATTRIBUTE, None)
        if user is not None:
            return None
        return ErrorInfo(
            MISSING_UPN_CODE,
            f"The required attribute {UPN_ATTRIBUTE} (source userName) has no value.",
            recommended_action="Send userName with a UPN in a verified domain.",
        )
    if user is not None and upn == user.attributes.get(UPN_ATTRIBUTE):
        return None
    upn_text = str(upn)
    domain = upn_text.rsplit("@", 1)[1].lower() if "@" in upn_text else ""
    if domain not in job.verified_domains:
        return ErrorInfo(
            INVALID_UPN_CODE,
            f"The userPrincipalName domain '{domain or '(none)'}' does not exist or is"
            " not a verified domain of this tenant.",
            recommended_action="Use a UPN suffix that is a verified domain.",
        )
    holder = state.upn_index.get(upn_text.lower())
    if holder is not None and holder != record.external_id:
        return ErrorInfo(
            UPN_CONFLICT_CODE,
            "Another object already uses this userPrincipalName (held by the user"
            f" with employeeId '{holder}').",
            recommended_action="Make userName unique (e.g. append a number).",
        )
    return None


# --- the manager reference ------------------------------------------------------


@dataclass(slots=True)
class _ManagerChange:
    """What the record does to the manager. ``external_id`` and ``pending`` are ``_ABSENT``
    when it leaves them alone and ``None`` when it clears them; an unresolved reference is
    ``pending`` and skips the ``manager`` attribute."""

    external_id: Any = _ABSENT
    pending: Any = _ABSENT
    object_id: str | None = None
    skipped: tuple[str, ...] = ()

    @property
    def reference(self) -> str | None:
        """The unresolved manager's externalId, named in the export step's description."""
        return self.pending if isinstance(self.pending, str) else None


_NO_MANAGER_CHANGE = _ManagerChange()


def _manager_change(state: EmulatorState, job: JobRuntime, manager_ref: Any) -> _ManagerChange:
    """Resolve ``manager.value`` against users already processed. Unknown: skipped with
    ``UnableToResolveReferenceAttributeValue`` (documented) and remembered, so the record
    sent again sets it. Null or ``""`` clears it only when ``manager`` flows null values."""
    if manager_ref is _ABSENT:
        return _NO_MANAGER_CHANGE
    if manager_ref is None or manager_ref == "":
        if MANAGER in job.schema.flow_nulls:
            return _ManagerChange(external_id=None, pending=None)
        return _NO_MANAGER_CHANGE
    ref = str(manager_ref)
    mgr = _manager(state, job, ref)
    if mgr is None:
        return _ManagerChange(pending=ref, skipped=("manager",))
    return _ManagerChange(external_id=ref, pending=None, object_id=mgr.object_id)


def _manager(state: EmulatorState, job: JobRuntime, ref: str) -> DirectoryUser | None:
    """The manager a reference resolves to. A job to on-premises AD resolves only against
    users it has processed itself (Microsoft Q&A 5830481: the service "does not resolve
    reference attributes like manager by querying AD directly ... only ... objects that
    have already been processed")."""
    if job.on_premises and ref not in job.processed:
        return None
    return state.users.get(ref)


# --- create ---------------------------------------------------------------------


def _create(
    state: EmulatorState,
    job: JobRuntime,
    record: _Record,
    manager: _ManagerChange,
    now: datetime,
) -> tuple[DirectoryUser, Modified]:
    """A new user: enabled as ``active`` says, else ``new_user_enabled_without_active``
    (created disabled by default: assumed by analogy with issue #16)."""
    active = record.active
    enabled = active if isinstance(active, bool) else state.config.new_user_enabled_without_active
    ext = record.external_id
    attrs = {k: v for k, v in record.wanted.items() if v is not None}
    user = DirectoryUser(
        object_id=state.new_object_id(),
        external_id=ext,
        account_enabled=enabled,
        attributes={"employeeId": ext, **attrs},
        created=now,
        modified=now,
    )
    modified: Modified = [("employeeId", None, ext)]
    modified += [(k, None, v) for k, v in attrs.items()]
    modified.append(_enabled_change(job, None, enabled))
    if isinstance(manager.external_id, str):
        user.manager = manager.external_id
        modified.append(("manager", None, manager.object_id))
    if isinstance(manager.pending, str):
        user.pending_manager = manager.pending
    state.users[ext] = user
    state.upn_index[str(attrs[UPN_ATTRIBUTE]).lower()] = ext
    return user, modified


# --- update ---------------------------------------------------------------------


def _update(
    state: EmulatorState,
    job: JobRuntime,
    user: DirectoryUser,
    record: _Record,
    manager: _ManagerChange,
    now: datetime,
) -> tuple[str, Modified]:
    """Apply what differs; the action is ``disable`` when the user is disabled, else
    ``update`` (re-enabling too: the action enum has no "enable")."""
    modified = _apply_attributes(state, user, record.wanted)
    action = _apply_active(state, job, user, record, modified)
    _apply_manager(state, user, manager, modified)
    if modified:
        user.modified = now
    return action, modified


def _apply_attributes(
    state: EmulatorState, user: DirectoryUser, wanted: dict[str, Any]
) -> Modified:
    """Set or clear each attribute that differs; keep the UPN index in step."""
    modified: Modified = []
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
        state.upn_index[str(new_upn).lower()] = user.external_id
    return modified


def _apply_active(
    state: EmulatorState,
    job: JobRuntime,
    user: DirectoryUser,
    record: _Record,
    modified: Modified,
) -> str:
    """Enable or disable as ``active`` says (an omitted ``active`` may disable, see
    ``_omitted_active_disables``); returns the entry's action."""
    active = record.active
    if active is _ABSENT and _omitted_active_disables(state, job.schema, record.flat):
        active = False
    if isinstance(active, bool) and active != user.account_enabled:
        modified.append(_enabled_change(job, user.account_enabled, active))
        user.account_enabled = active
        if not active:
            return "disable"
    return "update"


def _apply_manager(
    state: EmulatorState, user: DirectoryUser, manager: _ManagerChange, modified: Modified
) -> None:
    """Set (or clear) a resolved manager; remember or forget an unresolved one."""
    if manager.external_id is not _ABSENT and manager.external_id != user.manager:
        old_object = state.users[user.manager].object_id if user.manager in state.users else None
        modified.append(("manager", old_object, manager.object_id))
        user.manager = manager.external_id
    if manager.pending is not _ABSENT:
        user.pending_manager = manager.pending


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
