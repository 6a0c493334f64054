"""Priority order for a run that cannot finish within today's call budget.

A first load of a million records is 20,000 bulk requests: ten days at 2,000 calls a day
(documented: "a tenant-level limit of 2,000 API calls per 24-hour period under the Entra
ID P1/P2 license", Entra "API-driven inbound provisioning concepts"). Sent in plain plan
order, the accounts that must be *disabled* could wait until the last day. When a run
needs more calls than today's budget has left, its records are sent in this order:

1. **leavers and deactivations** (any record whose new state is inactive: a leaver, a
   mover whose status turned inactive, or an inactive record of a first load, which may
   be an account that already exists in the directory): the security-relevant part;
2. **joiners** (new active records);
3. **movers** (changed active records, and retries or re-sends of unchanged ones).

Managers still go before the reports that wait for them (``level``, from
:mod:`connector.sync.references`): inside a group by level, and across groups a manager
that a report of an earlier group waits for is moved up into that group (a joiner who
manages a deactivated record goes with the deactivations, just before it). So every
manager is still sent before its reports, and the send window's wait for each batch's
managers (:func:`connector.sync.upload.send_window`) keeps holding.

Managers waiting are not enough to keep the groups in order: a batch of deactivations
whose managers are still in flight waits, and the window would send the batches after it
that wait for nothing, joiners among them, spending today's calls on joiners while
deactivations wait for tomorrow. So the send window's waits of a run sent in priority
order get a barrier between groups (:func:`with_group_barriers`): the first batch of a
later group waits for every earlier batch holding a record of an earlier group, and the
rest of that group waits for that first batch. It costs one round trip per group
boundary (at most two per run).

Pure: a permutation over the operations' kind, active flag, level and manager. The
engine applies it once, before the run's first batch is acknowledged, and stores the
plan in that order (batches are rebuilt from the stored plan, so acknowledged batch
indices keep their meaning).
"""

from __future__ import annotations

from array import array
from collections.abc import Mapping, Sequence
from typing import NamedTuple, overload

from connector.sync.op_table import OpTable
from connector.sync.references import order_by_level

__all__ = [
    "GROUPS",
    "GROUP_NAMES",
    "OpKey",
    "PlanKeys",
    "group_barriers",
    "group_counts",
    "priority_group",
    "priority_note",
    "priority_order",
    "priority_text",
    "with_group_barriers",
]

GROUPS = ("leavers", "joiners", "movers")
"""The priority groups in send order (keys of a run's stored ``sendOrder`` counts)."""
GROUP_NAMES = {"leavers": "leavers/deactivations", "joiners": "joiners", "movers": "movers"}
"""How summaries, timelines and forecasts name each group."""


class OpKey(NamedTuple):
    """What the priority order reads of one planned operation (a tuple: a million of
    them are built before a large run's first send)."""

    kind: str
    active: bool
    level: int
    external_id: str
    manager: str | None = None


class PlanKeys(Sequence[OpKey]):
    """What the priority order reads of each planned operation, built a row at a time
    from the plan's columns (a million keys are never held at once)."""

    def __init__(self, table: OpTable) -> None:
        self._table = table

    def __len__(self) -> int:
        return len(self._table)

    @overload
    def __getitem__(self, i: int) -> OpKey: ...

    @overload
    def __getitem__(self, i: slice) -> Sequence[OpKey]: ...

    def __getitem__(self, i: int | slice) -> OpKey | Sequence[OpKey]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        t = self._table
        level = t.level(i)
        return OpKey(t.kind(i), t.active(i), level, t.ext[i], t.manager(i) if level else None)


def priority_group(kind: str, active: bool) -> int:
    """0: leaver or deactivation (inactive), 1: joiner, 2: mover (or a re-send)."""
    if not active or kind == "leaver":
        return 0
    if kind == "joiner":
        return 1
    return 2


def _groups(keys: Sequence[OpKey]) -> tuple[bytearray, array[int]]:
    """Each operation's group, with managers moved up to the group of a report that waits
    for them (deepest levels first, so a whole chain moves up), and each one's level.

    ``keys`` may be a lazy view over a plan's columns: it is read a row at a time, and
    what is kept is a byte per row, the levels, and positions of managers only.
    """
    n = len(keys)
    groups = bytearray(n)
    levels = array("i", bytes(4 * n))
    managers: dict[str, int] = {}
    for i in range(n):
        k = keys[i]
        groups[i] = priority_group(k.kind, k.active)
        levels[i] = k.level
        if k.level and k.manager is not None:
            managers.setdefault(k.manager, -1)
    if not managers:
        return groups, levels
    for i in range(n):
        ext = keys[i].external_id
        if managers.get(ext) == -1:
            managers[ext] = i
    for i in reversed(order_by_level(n, levels)):
        level = levels[i]
        if level == 0:
            break
        manager = keys[i].manager
        m = managers.get(manager, -1) if manager is not None else -1
        if m >= 0 and levels[m] == level - 1 and groups[i] < groups[m]:
            groups[m] = groups[i]
    return groups, levels


def priority_order(keys: Sequence[OpKey]) -> list[int]:
    """Positions of ``keys`` in priority order (group, then level, then plan order).

    Deterministic and idempotent: applied to a plan already in this order it returns
    ``0..n-1``. A counting sort over (group, level): no tuple per operation.
    """
    groups, levels = _groups(keys)
    top = max(levels, default=0)
    buckets = [array("q") for _ in range(len(GROUPS) * (top + 1))]
    for i, (group, level) in enumerate(zip(groups, levels, strict=True)):
        buckets[group * (top + 1) + level].append(i)
    out: list[int] = []
    for bucket in buckets:
        out.extend(bucket)
    return out


def group_barriers(keys: Sequence[OpKey], bounds: Sequence[int]) -> bytes:
    """Each batch's lowest priority group (``bounds``: the batches' first rows, then the
    plan's length), for a plan already in priority order (managers moved up counted in
    the group they were moved to, as :func:`priority_order` placed them)."""
    groups, _ = _groups(keys)
    return bytes(groups[start] for start in bounds[:-1])


def with_group_barriers(deps: Sequence[tuple[int, ...]], lowest: bytes) -> list[tuple[int, ...]]:
    """The send window's waits (``deps``: each batch's managers' batches) with a barrier
    between priority groups: the first batch whose records all belong to a later group
    waits for every earlier batch holding a record of an earlier group; every later batch
    of that group waits for that first one. ``lowest``: each batch's lowest group
    (:func:`group_barriers`). No batch of a later group is then sent before every batch
    of the earlier groups was acknowledged, and a batch that waits for its managers is
    not overtaken by a later group spending the day's calls.

    Kept small: the first batch of a group names the earlier batches (at most all of
    them, once per group); the others name one batch.
    """
    out = list(deps)
    first: dict[int, int] = {}
    for k, group in enumerate(lowest):
        if group == 0:
            continue
        if group not in first:
            first[group] = k
            barrier = {j for j in range(k) if lowest[j] < group}
        else:
            barrier = {first[group]}
        out[k] = tuple(sorted(barrier.union(out[k])))
    return out


def group_counts(keys: Sequence[OpKey]) -> dict[str, int]:
    """How many leavers/deactivations, joiners and movers the run sends (each counted in
    its own group; a manager moved up is still counted as what it is)."""
    out = dict.fromkeys(GROUPS, 0)
    for k in keys:
        out[GROUPS[priority_group(k.kind, k.active)]] += 1
    return out


def priority_text(counts: Mapping[str, int]) -> str:
    """``sent in priority order: 120 leavers/deactivations first, then 9,000 joiners, then
    40 movers`` (empty groups left out)."""
    parts = [f"{counts.get(g, 0):,} {GROUP_NAMES[g]}" for g in GROUPS if counts.get(g, 0)]
    if not parts:
        return "sent in priority order"
    head = f"{parts[0]} first" if len(parts) > 1 else parts[0]
    return "sent in priority order: " + ", then ".join([head, *parts[1:]])


def priority_note(counts: Mapping[str, int], needed: int, left: int) -> str:
    """The timeline line of a run ordered for the budget: :func:`priority_text` and the
    calls it needs against those left in today's budget."""
    return f"{priority_text(counts)} ({needed} calls needed, {left} left in today's budget)"
