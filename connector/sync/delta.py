"""Delta planning: joiners, movers, unchanged and leavers.

Pure functions over plain data: no clock, no store. The pipeline loads the source's
:class:`~connector.state.base.RecordIndex`, streams the mapped records of an extract
through :func:`plan_delta`, fetches the leavers' last payloads from the store, fills
them in with :func:`attach_leaver_payloads`, and asks
:func:`connector.sync.guard.check_guard` whether the plan may be sent. The changes are
kept compact (:class:`ChangeList`: columns, payloads spooled to a temporary file), so
a plan of a million joiners costs tens of megabytes.

Rules:

- new externalId → **joiner**; fingerprint changed → **mover**; same fingerprint →
  **unchanged** (not sent), unless its last outcome was ``failed`` (and
  ``retry_failed``) or ``unconfirmed`` (and ``retry_unconfirmed``), or ``full_resend``;
- a row whose mapped ``active`` is false is an ordinary change (the service disables).
  A mover that was last sent *active* and is now inactive is also counted as a
  **deactivation** (a subset of the movers): for the guard it disables an account just
  like a leaver, so a file marking everyone terminated is held like an empty file;
- ``full`` mode only: an externalId that was last sent *active* and is absent from the
  file is a **leaver**. It is disabled by re-sending its last payload with
  ``active: false`` — the complete record, because with "Flow null values" an omitted
  attribute is cleared (Entra docs, *clear attribute values*: "include the complete
  source user record in every bulk request"). Rows the extract rejected still count
  as present: a bad date on a line must never disable that person;
- ``delta`` mode: absence means nothing.

The fingerprint is BLAKE2b-128 over the canonical JSON of the mapped record (sorted
keys) minus the source's ``ignore_attributes``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Literal, Protocol

import orjson

from connector.state.base import FINGERPRINT_SIZE, Outcome, RecordEntry, RecordIndex
from connector.sync.op_table import OpTable, RowView
from connector.sync.references import manager_of

__all__ = [
    "Change",
    "ChangeKind",
    "ChangeList",
    "DeltaPlan",
    "MappedRecordLike",
    "attach_leaver_payloads",
    "disabled_payload",
    "fingerprint",
    "plan_delta",
    "strip_ignored",
    "with_active",
]

Mode = Literal["full", "delta"]
LeaverPolicy = Literal["disable", "ignore"]


class MappedRecordLike(Protocol):
    """The shape of :class:`connector.records.MappedRecord`: one accepted, mapped row."""

    @property
    def line(self) -> int: ...

    @property
    def external_id(self) -> str: ...

    @property
    def data(self) -> Mapping[str, Any]: ...


class ChangeKind(StrEnum):
    """Why a record is in the plan."""

    JOINER = "joiner"
    MOVER = "mover"
    RETRY = "retry"
    """Unchanged, re-sent because its last outcome was failed/unconfirmed and asked for."""
    RESEND = "resend"
    """Unchanged, re-sent because of ``full_resend``."""
    LEAVER = "leaver"


@dataclass(frozen=True, slots=True)
class Change:
    """One record to send. ``data`` is the complete SCIM user to POST.

    For a leaver, ``line`` is None and ``data`` is None until
    :func:`attach_leaver_payloads` fills in the stored last payload with ``active: false``.
    ``fingerprint`` is what the index holds once the service accepted ``data``.
    """

    kind: ChangeKind
    external_id: str
    line: int | None
    data: Mapping[str, Any] | None
    fingerprint: bytes
    active: bool
    deactivation: bool = False
    """A mover last sent active whose new record is inactive: it disables an account."""


class ChangeList(RowView[Change]):
    """Changes in order, kept compact (an :class:`~connector.sync.op_table.OpTable`):
    a :class:`Change` with its data is made only when one is read."""

    def __init__(self, table: OpTable | None = None) -> None:
        self.table = table if table is not None else OpTable()

    @classmethod
    def of(cls, changes: Iterable[Change]) -> ChangeList:
        if isinstance(changes, ChangeList):
            return changes
        out = cls()
        out.extend(changes)
        return out

    def append(self, change: Change) -> None:
        self.table.add(
            change.kind.value,
            change.external_id,
            change.line,
            change.fingerprint,
            change.active,
            change.data,
            deactivation=change.deactivation,
            manager=manager_of(change.data),
        )

    def extend(self, changes: Iterable[Change]) -> None:
        for c in changes:
            self.append(c)

    def with_data(self) -> ChangeList:
        """The changes that carry data (all of them, usually: then this list itself)."""
        t = self.table
        rows = [k for k in range(len(t)) if t.payload_size(k) >= 0]
        return self if len(rows) == len(t) else ChangeList(t.take(rows))

    def __len__(self) -> int:
        return len(self.table)

    def _row(self, i: int) -> Change:
        t = self.table
        return Change(
            ChangeKind(t.kind(i)),
            t.ext[i],
            t.line(i),
            t.data(i),
            t.fingerprint(i),
            t.active(i),
            t.deactivation(i),
        )


@dataclass(slots=True)
class DeltaPlan:
    """What a run will send, and the counts the journal and the guard need."""

    mode: Mode
    leaver_policy: LeaverPolicy
    changes: Sequence[Change] = field(default_factory=ChangeList)
    """Joiners, movers, retries and re-sends, in file order (a :class:`ChangeList`)."""
    leavers: list[Change] = field(default_factory=list)
    """Leavers to disable (policy ``disable``); data filled by :func:`attach_leaver_payloads`."""
    ignored_leavers: list[str] = field(default_factory=list)
    """Leavers only reported (policy ``ignore``)."""
    leavers_without_payload: list[str] = field(default_factory=list)
    """Leavers with no stored payload: not sent (a partial record could clear attributes)."""
    duplicates: list[tuple[int, str]] = field(default_factory=list)
    """(line, externalId) of repeated ids after the first occurrence; not planned."""
    joiners: int = 0
    movers: int = 0
    """Changed records, deactivations included."""
    deactivations: int = 0
    """Of the movers, those last sent active whose new record is inactive."""
    retries: int = 0
    resends: int = 0
    unchanged: int = 0
    rows: int = 0
    """Records planned from (accepted rows, duplicates included)."""

    @property
    def leaver_ids(self) -> list[str]:
        return [c.external_id for c in self.leavers]

    @property
    def disabling(self) -> int:
        """Accounts this plan would disable: leavers (with or without a stored payload)
        plus deactivations. What the leaver limits of the guard count."""
        return len(self.leavers) + len(self.leavers_without_payload) + self.deactivations

    @property
    def to_send(self) -> ChangeList:
        """Every record to upload, changes first then leavers (only those with data)."""
        changes = ChangeList.of(self.changes)
        leavers = [c for c in self.leavers if c.data is not None]
        if not leavers:
            return changes
        out = ChangeList(changes.table.take(range(len(changes))))
        out.extend(leavers)
        return out

    def counts(self) -> dict[str, int]:
        """Counts for journals and reports. ``deactivations`` is a subset of ``movers``."""
        return {
            "rows": self.rows,
            "joiners": self.joiners,
            "movers": self.movers,
            "deactivations": self.deactivations,
            "retries": self.retries,
            "resends": self.resends,
            "unchanged": self.unchanged,
            "leavers": len(self.leavers),
            "ignored_leavers": len(self.ignored_leavers),
            "leavers_without_payload": len(self.leavers_without_payload),
            "duplicates": len(self.duplicates),
        }


def strip_ignored(data: Mapping[str, Any], ignore: Collection[str]) -> Mapping[str, Any]:
    """``data`` without the ``ignore`` attributes (a copy only where something is removed).

    An attribute is named as in SCIM: ``title``, ``name.givenName``, or a namespaced
    one with its schema URN followed by ``:`` and the attribute, e.g.
    ``urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter``
    (sub-attributes after a ``.``).
    """
    if not ignore:
        return data
    out: Mapping[str, Any] = data
    for attr in ignore:
        out = _without(out, _attribute_path(attr, out))
    return out


def _attribute_path(attr: str, data: Mapping[str, Any]) -> list[str]:
    if attr.startswith("urn:"):
        # The longest key that is a URN prefix of ``attr`` is the namespace.
        best = ""
        for key in data:
            if attr.startswith(key + ":") and len(key) > len(best):
                best = key
        if best:
            return [best, *attr[len(best) + 1 :].split(".")]
        return [attr]
    return attr.split(".")


def _without(data: Mapping[str, Any], path: list[str]) -> Mapping[str, Any]:
    head = path[0]
    if head not in data:
        return data
    if len(path) == 1:
        return {k: v for k, v in data.items() if k != head}
    child = data[head]
    if not isinstance(child, Mapping):
        return data
    new_child = _without(child, path[1:])
    if new_child is child:
        return data
    return {**data, head: new_child}


def fingerprint(data: Mapping[str, Any], ignore: Collection[str] = ()) -> bytes:
    """16-byte hash of the canonical mapped record, ignoring ``ignore`` attributes."""
    stripped = strip_ignored(data, ignore)
    try:
        canonical = orjson.dumps(stripped, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        # Values orjson cannot encode (integers beyond 64 bits, odd types): the slower
        # standard encoder, still canonical for the same data.
        canonical = json.dumps(
            stripped, sort_keys=True, separators=(",", ":"), default=repr, ensure_ascii=False
        ).encode()
    return hashlib.blake2b(canonical, digest_size=FINGERPRINT_SIZE).digest()


def disabled_payload(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The complete last payload with ``active: false``: how a leaver is disabled."""
    return {**payload, "active": False}


def with_active(payload: Mapping[str, Any], active: bool) -> Mapping[str, Any]:
    """``payload`` as it is when it carries a boolean ``active``, else with ``active``.

    For payloads sent again from storage (retries, reference re-sends): one stored
    before every mapping had to map ``active`` may lack it, and an update without
    ``active`` disables the account (AzureAD/entra-id-inbound-provisioning issue #16, a
    user's report). ``active`` is what the index recorded for the record.
    """
    if payload.get("active").__class__ is bool:
        return payload
    return {**payload, "active": active}


def _no_active(line: int | None) -> ValueError:
    where = f"line {line}" if line is not None else "a stored record"
    return ValueError(
        f"the record of {where} has no true/false active; every record sent must carry it"
        " (the mapping compiler guarantees it for mapped records)"
    )


def plan_delta(
    records: Iterable[MappedRecordLike],
    index: RecordIndex,
    *,
    mode: Mode,
    leaver_policy: LeaverPolicy,
    ignore_attributes: Collection[str] = (),
    rejected_ids: Collection[str] = (),
    full_resend: bool = False,
    retry_failed: bool = False,
    retry_unconfirmed: bool = False,
) -> DeltaPlan:
    """Compare an extract's mapped records with the source's index.

    Streams ``records`` once and keeps only what is sent (plus the set of ids seen), so
    memory grows with the changes, not with the file; each change is a few columns, its
    payload spooled to a temporary file (:class:`ChangeList`). ``rejected_ids``: externalIds of
    rows the extract rejected; they are neither planned nor leavers.
    """
    plan = DeltaPlan(mode=mode, leaver_policy=leaver_policy)
    changes = ChangeList()
    plan.changes = changes
    add = changes.table.add
    entries = index.entries
    seen: set[str] = set()
    retry_outcomes = _retry_outcomes(retry_failed=retry_failed, retry_unconfirmed=retry_unconfirmed)
    ignore = tuple(ignore_attributes)

    for rec in records:
        plan.rows += 1
        ext = rec.external_id
        if ext in seen:
            plan.duplicates.append((rec.line, ext))
            continue
        seen.add(ext)
        data = rec.data
        fp = fingerprint(data, ignore)
        sent_active = data.get("active")
        active = sent_active is not False
        kind, deactivation = _classify(
            plan, entries.get(ext), fp, active, full_resend=full_resend, retry=retry_outcomes
        )
        if kind is not None:
            if sent_active.__class__ is not bool:
                raise _no_active(rec.line)
            add(
                kind.value,
                ext,
                rec.line,
                fp,
                active,
                data,
                deactivation=deactivation,
                manager=manager_of(data),
            )

    if mode == "full":
        _find_leavers(plan, entries, seen, rejected_ids)
    return plan


def _retry_outcomes(*, retry_failed: bool, retry_unconfirmed: bool) -> frozenset[str]:
    """The last outcomes whose unchanged records are sent again."""
    outcomes: set[str] = set()
    if retry_failed:
        outcomes.add(Outcome.FAILED.value)
    if retry_unconfirmed:
        outcomes.add(Outcome.UNCONFIRMED.value)
    return frozenset(outcomes)


def _classify(
    plan: DeltaPlan,
    entry: RecordEntry | None,
    fp: bytes,
    active: bool,
    *,
    full_resend: bool,
    retry: frozenset[str],
) -> tuple[ChangeKind | None, bool]:
    """Why a record present in the file is sent (None: unchanged, not sent) and whether it
    is a deactivation; counted on ``plan``."""
    if entry is None:
        plan.joiners += 1
        return ChangeKind.JOINER, False
    if entry.fingerprint != fp:
        plan.movers += 1
        if entry.active and not active:
            plan.deactivations += 1
            return ChangeKind.MOVER, True
        return ChangeKind.MOVER, False
    if full_resend:
        plan.resends += 1
        return ChangeKind.RESEND, False
    if entry.outcome in retry:
        plan.retries += 1
        return ChangeKind.RETRY, False
    plan.unchanged += 1
    return None, False


def _find_leavers(
    plan: DeltaPlan,
    entries: Mapping[str, RecordEntry],
    seen: Collection[str],
    rejected_ids: Collection[str],
) -> None:
    """``full`` mode: records last sent active that the file no longer has (rows it
    rejected still count as present) are leavers, disabled or only reported."""
    rejected = rejected_ids if isinstance(rejected_ids, set | frozenset) else set(rejected_ids)
    for ext, entry in entries.items():
        if not entry.active or ext in seen or ext in rejected:
            continue
        if plan.leaver_policy == "disable":
            plan.leavers.append(
                Change(ChangeKind.LEAVER, ext, None, None, entry.fingerprint, active=False)
            )
        else:
            plan.ignored_leavers.append(ext)


def attach_leaver_payloads(
    plan: DeltaPlan,
    payloads: Mapping[str, Mapping[str, Any]],
    *,
    ignore_attributes: Collection[str] = (),
) -> DeltaPlan:
    """Fill each leaver's ``data`` with its stored last payload set to ``active: false``.

    ``payloads`` is what :meth:`StateStore.get_payloads` returned for
    ``plan.leaver_ids``. Leavers with no stored payload move to
    ``leavers_without_payload`` and are not sent. Returns a new plan.
    """
    leavers: list[Change] = []
    missing = list(plan.leavers_without_payload)
    for change in plan.leavers:
        stored = payloads.get(change.external_id)
        if stored is None:
            missing.append(change.external_id)
            continue
        data = disabled_payload(stored)
        leavers.append(replace(change, data=data, fingerprint=fingerprint(data, ignore_attributes)))
    return replace(plan, leavers=leavers, leavers_without_payload=missing)
