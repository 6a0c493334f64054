"""Manager references: send managers before their reports, re-send what was skipped.

Documented (Entra inbound provisioning, see ``docs/sync.md``): ``manager.value`` holds
the manager's ``externalId``; the service resolves it only against users it has
already processed, otherwise the user is written and the manager attribute is skipped
with ``UnableToResolveReferenceAttributeValue`` (a warning in the provisioning logs).

Our assumptions (not documented): the job processes bulk requests in the order they
were accepted and the operations of one request in order — so a report sent in a
later request than its manager, once the manager's request was acknowledged, finds the
manager; a record skipped for an unresolved manager exists in the directory (only the
attribute was skipped), so it can itself be the manager others resolve against.

Pure functions, no I/O: the engine orders each plan with :func:`reference_levels` and
picks the records to re-send after reconciliation with :func:`select_reference_resends`.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from connector.scim import ENTERPRISE_USER_SCHEMA
from connector.state.base import Outcome, RecordEntry

__all__ = [
    "DEFAULT_MAX_REFERENCE_RESENDS",
    "UNRESOLVED_REFERENCE",
    "ResendCandidate",
    "count_resends",
    "manager_of",
    "order_by_level",
    "reference_levels",
    "select_reference_resends",
]

UNRESOLVED_REFERENCE = "UnableToResolveReferenceAttributeValue"
"""The skip reason the service logs when ``manager.value`` names no processed user."""

DEFAULT_MAX_REFERENCE_RESENDS = 2
"""Automatic re-sends of one record (with the same data) for an unresolved manager."""

_EXISTS = frozenset({Outcome.CREATED.value, Outcome.UPDATED.value})


def manager_of(data: Mapping[str, Any] | None) -> str | None:
    """The manager's externalId in a SCIM user (enterprise ``manager.value``), if any.

    A bare string in place of the ``{"value": …}`` object is tolerated, as the service
    does; an empty value is no reference.
    """
    if not data:
        return None
    ext = data.get(ENTERPRISE_USER_SCHEMA)
    if not isinstance(ext, Mapping):
        return None
    ref = ext.get("manager")
    if isinstance(ref, Mapping):
        ref = ref.get("value")
    if ref is None or isinstance(ref, Mapping | list):
        return None
    text = str(ref).strip()
    return text or None


def reference_levels(
    items: Sequence[tuple[str, str | None]],
    needs_wait: Callable[[str], bool],
    *,
    position: Mapping[str, int] | None = None,
) -> list[int]:
    """The level of each ``(externalId, manager externalId)`` in the manager chain.

    A record whose manager is not in ``items``, or is but ``needs_wait(manager)`` is
    False (it exists in the directory already, e.g. a mover), is level 0; otherwise its
    level is one more than its manager's. A cycle of managers (A manages B manages A)
    is cut where it closes, following ``items`` in order, so the result is
    deterministic: one member of the cycle goes first and the rest resolve against it
    (the first one's own reference is re-sent after reconciliation). Iterative: a chain
    of any length is fine. ``position`` (externalId → its first index in ``items``) is
    worked out when not given.
    """
    if position is None:
        first: dict[str, int] = {}
        for k, (ext, _) in enumerate(items):
            first.setdefault(ext, k)
        position = first
    levels: list[int | None] = [None] * len(items)
    for start in range(len(items)):
        if levels[start] is not None:
            continue
        chain: list[int] = []
        on_chain: set[int] = set()
        cur: int | None = start
        base = 0
        while cur is not None:
            known = levels[cur]
            if known is not None:
                base = known + 1
                break
            chain.append(cur)
            on_chain.add(cur)
            mgr = items[cur][1]
            nxt = position.get(mgr) if mgr is not None else None
            if nxt is None or nxt == cur or mgr is None or not needs_wait(mgr):
                break
            if nxt in on_chain:
                break  # a cycle: cut it here, the manager's edge is dropped
            cur = nxt
        # chain[-1] has no (waiting) manager in the plan, or sits on a known level.
        for depth, idx in enumerate(reversed(chain)):
            levels[idx] = base + depth
    return [lv or 0 for lv in levels]


def order_by_level(count: int, levels: Sequence[int]) -> Sequence[int]:
    """Indices ``0..count-1`` sorted by level, keeping the original order within a level
    (a counting sort: levels are small; one level is the identity, nothing allocated)."""
    top = max(levels[:count], default=0)
    if top == 0:
        return range(count)
    buckets = [array("q") for _ in range(top + 1)]
    for k in range(count):
        buckets[levels[k]].append(k)
    out = array("q")
    for bucket in buckets:
        out.extend(bucket)
    return out


@dataclass(frozen=True, slots=True)
class ResendCandidate:
    """A record skipped for an unresolved manager whose manager now exists."""

    external_id: str
    manager: str
    run_id: str | None
    """The run whose send was skipped."""


def select_reference_resends(
    entries: Mapping[str, RecordEntry],
    payloads: Mapping[str, Mapping[str, Any]],
    resent: Mapping[str, tuple[str, int]],
    *,
    max_resends: int = DEFAULT_MAX_REFERENCE_RESENDS,
) -> tuple[list[ResendCandidate], dict[str, str]]:
    """Records to re-send because their manager reference can resolve now.

    ``entries``: the source's record index; ``payloads``: the last accepted payload of
    each skipped record; ``resent``: externalId → (fingerprint hex, automatic re-sends
    already made with that data). A record is re-sent when its last outcome is
    ``skipped`` with :data:`UNRESOLVED_REFERENCE`, its manager is in the index with a
    confirmed outcome (created or updated, or itself skipped for a reference — it was
    written), and fewer than ``max_resends`` re-sends were made with the same data.
    Never when the manager is unknown to the source, failed, disabled or unconfirmed.

    Returns the candidates (sorted by externalId) and, for every skipped record left
    alone, why (for the journal).
    """
    chosen: list[ResendCandidate] = []
    left: dict[str, str] = {}
    for ext in sorted(entries):
        entry = entries[ext]
        if entry.outcome != Outcome.SKIPPED.value or entry.error_code != UNRESOLVED_REFERENCE:
            continue
        mgr = manager_of(payloads.get(ext))
        if mgr is None:
            left[ext] = "no manager in the last payload"
            continue
        mgr_entry = entries.get(mgr)
        if mgr_entry is None:
            left[ext] = "manager unknown to this source"
            continue
        exists = mgr_entry.outcome in _EXISTS or (
            mgr_entry.outcome == Outcome.SKIPPED.value
            and mgr_entry.error_code == UNRESOLVED_REFERENCE
        )
        if not exists:
            left[ext] = f"manager not confirmed ({mgr_entry.outcome})"
            continue
        fp, count = resent.get(ext, ("", 0))
        if fp == entry.fingerprint.hex() and count >= max_resends:
            left[ext] = f"re-sent {count} times already"
            continue
        chosen.append(ResendCandidate(ext, mgr, entry.run_id))
    return chosen, left


def count_resends(
    resent: Mapping[str, tuple[str, int]], sent: Iterable[tuple[str, bytes]]
) -> dict[str, tuple[str, int]]:
    """``resent`` after one more automatic re-send of each ``(externalId, fingerprint)``;
    a record whose data changed since starts counting again."""
    out = dict(resent)
    for ext, fp in sent:
        old_fp, n = out.get(ext, ("", 0))
        out[ext] = (fp.hex(), n + 1 if old_fp == fp.hex() else 1)
    return out
