"""Delta planning: joiners, movers, unchanged and leavers, and the mass-change guard.

Pure functions over plain data: no I/O, no clock. The pipeline loads the source's
:class:`~connector.state.base.RecordIndex`, streams the mapped records of an extract
through :func:`plan_delta`, fetches the leavers' last payloads from the store, fills
them in with :func:`attach_leaver_payloads`, and asks :func:`check_guard` whether the
plan may be sent.

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
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Literal, Protocol

import orjson

from connector.state.base import FINGERPRINT_SIZE, Outcome, RecordIndex

__all__ = [
    "Change",
    "ChangeKind",
    "DeltaPlan",
    "GuardThresholds",
    "GuardViolation",
    "HoldReason",
    "MappedRecordLike",
    "attach_leaver_payloads",
    "check_guard",
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


@dataclass(slots=True)
class DeltaPlan:
    """What a run will send, and the counts the journal and the guard need."""

    mode: Mode
    leaver_policy: LeaverPolicy
    changes: list[Change] = field(default_factory=list)
    """Joiners, movers, retries and re-sends, in file order."""
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
    def to_send(self) -> list[Change]:
        """Every record to upload, changes first then leavers (only those with data)."""
        return self.changes + [c for c in self.leavers if c.data is not None]

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
    memory grows with the changes, not with the file. ``rejected_ids``: externalIds of
    rows the extract rejected; they are neither planned nor leavers.
    """
    plan = DeltaPlan(mode=mode, leaver_policy=leaver_policy)
    entries = index.entries
    seen: set[str] = set()
    retry_outcomes: set[str] = set()
    if retry_failed:
        retry_outcomes.add(Outcome.FAILED.value)
    if retry_unconfirmed:
        retry_outcomes.add(Outcome.UNCONFIRMED.value)
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
        entry = entries.get(ext)
        kind: ChangeKind | None
        sent_active = data.get("active")
        active = sent_active is not False
        deactivation = False
        if entry is None:
            kind = ChangeKind.JOINER
            plan.joiners += 1
        elif entry.fingerprint != fp:
            kind = ChangeKind.MOVER
            plan.movers += 1
            if entry.active and not active:
                deactivation = True
                plan.deactivations += 1
        elif full_resend:
            kind = ChangeKind.RESEND
            plan.resends += 1
        elif entry.outcome in retry_outcomes:
            kind = ChangeKind.RETRY
            plan.retries += 1
        else:
            kind = None
            plan.unchanged += 1
        if kind is not None:
            if sent_active.__class__ is not bool:
                raise _no_active(rec.line)
            plan.changes.append(
                Change(kind, ext, rec.line, data, fp, active=active, deactivation=deactivation),
            )

    if mode == "full":
        rejected = rejected_ids if isinstance(rejected_ids, set | frozenset) else set(rejected_ids)
        for ext, entry in entries.items():
            if not entry.active or ext in seen or ext in rejected:
                continue
            if leaver_policy == "disable":
                plan.leavers.append(
                    Change(ChangeKind.LEAVER, ext, None, None, entry.fingerprint, active=False)
                )
            else:
                plan.ignored_leavers.append(ext)
    return plan


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


class GuardThresholds(Protocol):
    """The guard's limits (:class:`connector.config.Thresholds` has this shape)."""

    @property
    def max_leavers(self) -> int | None: ...

    @property
    def max_leavers_percent(self) -> float | None: ...

    @property
    def max_changes(self) -> int | None: ...

    @property
    def max_changes_percent(self) -> float | None: ...

    @property
    def min_row_ratio(self) -> float | None: ...

    @property
    def max_rejected_share(self) -> float | None: ...


@dataclass(frozen=True, slots=True)
class GuardViolation:
    """One threshold exceeded, with the numbers."""

    code: str
    """``too_many_leavers`` (leavers + deactivations), ``too_many_changes``,
    ``too_few_rows`` or ``too_many_rejected``."""
    value: float
    limit: float
    message: str


@dataclass(frozen=True, slots=True)
class HoldReason:
    """Why a run is held: every threshold it exceeded."""

    violations: tuple[GuardViolation, ...]

    @property
    def code(self) -> str:
        return self.violations[0].code

    @property
    def message(self) -> str:
        return "; ".join(v.message for v in self.violations)

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "violations": [
                {"code": v.code, "value": v.value, "limit": v.limit, "message": v.message}
                for v in self.violations
            ],
        }


def _pct(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.1f} %" if whole else "n/a"


def check_guard(
    plan: DeltaPlan,
    previous_population: int,
    rows_in_file: int,
    thresholds: GuardThresholds,
    *,
    rejected_rows: int = 0,
) -> HoldReason | None:
    """The mass-change guard: a :class:`HoldReason` if the plan must wait for an operator.

    ``previous_population``: records last sent active (``index.active_count()``);
    ``rows_in_file``: data rows read from the extract (accepted + rejected);
    ``rejected_rows``: how many of those were rejected.

    Limits are "more than": ``max_leavers=500`` holds at 501. Percent limits compare
    with the previous population and do not apply to a source's first run (no
    population yet); absolute limits always apply.

    The leaver limits count every account the plan would disable: leavers (``full``
    mode, ``leavers: disable``) **plus deactivations** (movers last sent active whose
    new record is inactive, in either mode), so a file that marks everyone terminated
    is held just like an empty one. Changes are joiners + movers (deactivations
    included) + leavers; retries and re-sends asked for by an operator are not. The
    row-count check applies in ``full`` mode only.
    """
    leavers = 0
    if plan.mode == "full" and plan.leaver_policy == "disable":
        leavers = len(plan.leavers) + len(plan.leavers_without_payload)
    pop = previous_population
    out = _leaver_violations(plan, leavers, pop, thresholds)
    out += _change_violations(plan, leavers, pop, thresholds)
    out += _row_violations(plan, pop, rows_in_file, rejected_rows, thresholds)
    return HoldReason(tuple(out)) if out else None


def _leaver_violations(
    plan: DeltaPlan, leavers: int, pop: int, thresholds: GuardThresholds
) -> list[GuardViolation]:
    """Accounts the plan would disable (leavers + deactivations) over the limits."""
    out: list[GuardViolation] = []
    deactivations = plan.deactivations
    disabling = leavers + deactivations
    if deactivations:
        what = (
            f"{leavers} leavers and {deactivations} deactivations would disable"
            f" {disabling} accounts"
        )
    else:
        what = f"{leavers} leavers would be disabled"
    if thresholds.max_leavers is not None and disabling > thresholds.max_leavers:
        out.append(
            GuardViolation(
                "too_many_leavers",
                disabling,
                thresholds.max_leavers,
                f"{what}, more than the limit of {thresholds.max_leavers}"
                f" ({_pct(disabling, pop)} of {pop} active records)",
            )
        )
    pct = thresholds.max_leavers_percent
    if pct is not None and pop > 0 and disabling * 100.0 > pct * pop:
        out.append(
            GuardViolation(
                "too_many_leavers",
                100.0 * disabling / pop,
                pct,
                f"{what}: {_pct(disabling, pop)} of {pop} active records, more than the"
                f" limit of {pct:g} %",
            )
        )
    return out


def _change_violations(
    plan: DeltaPlan, leavers: int, pop: int, thresholds: GuardThresholds
) -> list[GuardViolation]:
    """Records the plan would change (joiners + movers + leavers) over the limits."""
    out: list[GuardViolation] = []
    deactivations = plan.deactivations
    changes = plan.joiners + plan.movers + leavers
    detail = f"{plan.joiners} joiners, {plan.movers} movers"
    if deactivations:
        detail += f" (of which {deactivations} deactivations)"
    detail += f", {leavers} leavers"
    if thresholds.max_changes is not None and changes > thresholds.max_changes:
        out.append(
            GuardViolation(
                "too_many_changes",
                changes,
                thresholds.max_changes,
                f"{changes} records would change ({detail}), more than the limit of"
                f" {thresholds.max_changes}",
            )
        )
    cpct = thresholds.max_changes_percent
    if cpct is not None and pop > 0 and changes * 100.0 > cpct * pop:
        out.append(
            GuardViolation(
                "too_many_changes",
                100.0 * changes / pop,
                cpct,
                f"{changes} records would change ({detail}): {_pct(changes, pop)} of {pop}"
                f" active records, more than the limit of {cpct:g} %",
            )
        )
    return out


def _row_violations(
    plan: DeltaPlan, pop: int, rows_in_file: int, rejected_rows: int, thresholds: GuardThresholds
) -> list[GuardViolation]:
    """A file much shorter than the population (full mode), or too many rejected rows."""
    out: list[GuardViolation] = []
    ratio = thresholds.min_row_ratio
    if plan.mode == "full" and ratio is not None and pop > 0 and rows_in_file < ratio * pop:
        out.append(
            GuardViolation(
                "too_few_rows",
                rows_in_file / pop,
                ratio,
                f"the file has {rows_in_file} rows, fewer than {ratio:g} × the {pop} active"
                f" records of the previous state (ratio {rows_in_file / pop:.2f}); a truncated"
                " extract?",
            )
        )
    share = thresholds.max_rejected_share
    if share is not None and rows_in_file > 0 and rejected_rows > share * rows_in_file:
        out.append(
            GuardViolation(
                "too_many_rejected",
                rejected_rows / rows_in_file,
                share,
                f"{rejected_rows} of {rows_in_file} rows were rejected"
                f" ({_pct(rejected_rows, rows_in_file)}), more than the limit of {share:.1%}",
            )
        )
    return out
