"""Who a run changes and how: a pure view over its plan and the records' last payloads.

A held run must say whom it would disable and what it would change before an admin
approves it. The stored plan (:class:`~connector.sync.plans.PlannedOp`) holds what each
record will be sent as; the last payload the directory accepted for it (the record
index, or the plan of the run that last sent it) is what it is now. Comparing the two,
attribute by attribute, gives the view. Nothing here reads or writes storage.

Attributes are named by their SCIM path: ``name.givenName``,
``emails[type eq "work"].value``, the enterprise extension's
``urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from connector.csv_out import csv_parts
from connector.sync.plans import PlannedOp

__all__ = [
    "AttributeChange",
    "ChangeView",
    "RecordChange",
    "build_held_csv",
    "change_view",
    "diff_payloads",
    "display_name",
    "flatten_payload",
    "iter_held_csv",
    "record_change",
    "short_attribute",
]

_SKIPPED_KEYS = frozenset({"schemas"})


@dataclass(frozen=True, slots=True)
class AttributeChange:
    """One attribute whose value the run changes (``None``: absent on that side)."""

    attribute: str
    old: str | None
    new: str | None


@dataclass(frozen=True, slots=True)
class RecordChange:
    """One planned record: who it is, what the run does to it, which attributes change."""

    external_id: str
    display_name: str
    action: str
    disables: bool
    """The run sets ``active: false`` on an account that is active now (or not known)."""
    changes: tuple[AttributeChange, ...] = ()


@dataclass(frozen=True, slots=True)
class ChangeView:
    """A run's records by what happens to them, counts first.

    Built with a bound (``keep``, :func:`change_view`), it lists only the records a page
    shows, so its size does not grow with the run; the counts are always of them all."""

    disables: Sequence[RecordChange] = ()
    """Records the run disables (bounded: the first ``keep``)."""
    movers: Sequence[RecordChange] = ()
    """Records updated but not disabled (their changed attributes; bounded: the first
    movers with a changed attribute, until ``keep`` changed attributes are listed)."""
    joiners: int = 0
    others: int = 0
    counts: Mapping[str, int] = field(default_factory=dict)
    attributes: int = 0
    """Changed attributes of all the movers."""

    @property
    def total(self) -> int:
        changed = self.counts.get("disable", 0) + self.counts.get("update", 0)
        return changed + self.joiners + self.others


def _leaf_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def flatten_payload(payload: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """``{SCIM path: text}`` of every leaf of a SCIM payload (``schemas`` left out).

    Lists of objects with a ``type`` are keyed by it (``emails[type eq "work"].value``),
    other lists by position; the enterprise extension keeps its URN as the prefix.
    """
    out: dict[str, str] = {}
    for key, value in payload.items():
        if not prefix and key in _SKIPPED_KEYS:
            continue
        path = f"{prefix}{key}"
        sep = ":" if key.startswith("urn:") else "."
        if isinstance(value, Mapping):
            out.update(flatten_payload(value, path + sep))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, Mapping):
                    tag = item.get("type")
                    at = f'{path}[type eq "{tag}"]' if tag is not None else f"{path}[{i}]"
                    rest = {k: v for k, v in item.items() if k != "type"}
                    out.update(flatten_payload(rest, at + "."))
                else:
                    out[f"{path}[{i}]"] = _leaf_text(item)
        else:
            out[path] = _leaf_text(value)
    return out


def short_attribute(path: str) -> str:
    """A SCIM path as a page shows it: an extension's URN cut to its name
    (``urn:…:extension:enterprise:2.0:User:department`` → ``enterprise:department``)."""
    if not path.startswith("urn:") or ":extension:" not in path:
        return path
    rest = path.split(":extension:", 1)[1].split(":")
    return f"{rest[0]}:{rest[-1]}" if len(rest) > 1 else path


def diff_payloads(
    old: Mapping[str, Any] | None, new: Mapping[str, Any]
) -> tuple[AttributeChange, ...]:
    """Attributes whose value differs between the last payload and the planned one, in
    the planned payload's order (then attributes only the old one has)."""
    before = flatten_payload(old) if old is not None else {}
    after = flatten_payload(new)
    changes = [AttributeChange(k, before.get(k), v) for k, v in after.items() if before.get(k) != v]
    changes += [AttributeChange(k, v, None) for k, v in before.items() if k not in after]
    return tuple(changes)


def display_name(payload: Mapping[str, Any] | None) -> str:
    """``displayName``, else given and family name, else ``userName``; empty if none."""
    if not payload:
        return ""
    shown = payload.get("displayName")
    if shown:
        return str(shown)
    name = payload.get("name")
    if isinstance(name, Mapping):
        parts = [str(name[k]) for k in ("givenName", "familyName") if name.get(k)]
        if parts:
            return " ".join(parts)
    return str(payload.get("userName") or "")


def record_change(op: PlannedOp, previous: Mapping[str, Any] | None) -> RecordChange:
    """What ``op`` does to its record, given the last payload the service accepted."""
    was_active = previous is None or previous.get("active", True) is not False
    disables = op.kind != "joiner" and not op.active and was_active
    changes = () if op.kind == "joiner" else diff_payloads(previous, op.data)
    name = display_name(op.data) or display_name(previous)
    return RecordChange(op.external_id, name, op.kind, disables, changes)


def change_view(
    ops: Iterable[PlannedOp], previous: Mapping[str, Mapping[str, Any]], *, keep: int | None = None
) -> ChangeView:
    """Disables and movers (with changed attributes) of a plan; ``previous`` maps an
    external id to the last payload the service accepted for it. ``keep``: list at most
    that many disables and changed attributes of movers (None: every record)."""
    disables: list[RecordChange] = []
    movers: list[RecordChange] = []
    joiners = others = n_disables = n_movers = attributes = listed = 0
    for op in ops:
        if op.kind == "joiner":
            joiners += 1
            continue
        change = record_change(op, previous.get(op.external_id))
        if change.disables:
            n_disables += 1
            if keep is None or len(disables) < keep:
                disables.append(change)
        elif op.kind == "mover":
            n_movers += 1
            attributes += len(change.changes)
            if keep is None or (listed < keep and change.changes):
                movers.append(change)
                listed += len(change.changes)
        else:
            others += 1
    counts = {"disable": n_disables, "update": n_movers, "create": joiners, "re-send": others}
    return ChangeView(disables, movers, joiners, others, counts, attributes)


_COLUMNS = ("change", "externalId", "displayName", "action", "attribute", "oldValue", "newValue")


def iter_held_csv(
    ops: Collection[PlannedOp], previous: Mapping[str, Mapping[str, Any]]
) -> Iterator[bytes]:
    """held.csv, a block of rows at a time: one row per disabled record, then one per
    changed attribute of a mover (a mover without one: a row with no attribute), each in
    plan order. ``ops`` is read twice, one record at a time; nothing is kept.

    Columns: ``change, externalId, displayName, action, attribute, oldValue, newValue``;
    cells a spreadsheet would evaluate are prefixed with ``'``."""
    return csv_parts(_COLUMNS, _held_rows(ops, previous))


def build_held_csv(ops: Collection[PlannedOp], previous: Mapping[str, Mapping[str, Any]]) -> bytes:
    """:func:`iter_held_csv`'s bytes."""
    return b"".join(iter_held_csv(ops, previous))


def _held_rows(
    ops: Collection[PlannedOp], previous: Mapping[str, Mapping[str, Any]]
) -> Iterator[tuple[object, ...]]:
    for op in ops:
        if op.kind != "joiner" and not op.active:  # only an inactive record can be disabled
            rec = record_change(op, previous.get(op.external_id))
            if rec.disables:
                row = ("disable", rec.external_id, rec.display_name, rec.action, "active")
                yield (*row, "true", "false")
    for op in ops:
        if op.kind == "mover":
            rec = record_change(op, previous.get(op.external_id))
            if rec.disables:
                continue
            for ch in rec.changes or (AttributeChange("", None, None),):
                row = ("update", rec.external_id, rec.display_name, rec.action, ch.attribute)
                yield (*row, ch.old, ch.new)
