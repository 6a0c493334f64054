"""A newer ``full`` extract taking over the unsent remainder of a run still sending.

A first load that takes ten days of call budget must not hold up every later file for
ten days. In ``full`` mode a newer extract carries everyone, so it supersedes an older
run that is still sending (waiting for the budget, or blocked): the older run keeps what
it delivered (it goes to ``uploaded`` and is reconciled, its superseded reason kept), and
the newer run is planned against the record index, which holds exactly the acknowledged
part. Nothing acknowledged is sent again unless it changed; the unsent remainder is sent
from the newer file (or, for people no longer in it, not at all).

The mass-change guard would see that remainder as changes of the newer file (a day-two
file of a ten-day load looks like 90 % joiners) and hold it, so the older run would go on
for days after all. The remainder already passed the guard (or was approved) with the
older run: :func:`guard_over_remainder` asks the guard again counting only what the
newer file changes beyond it, against the population the older run was building.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from connector.sync.delta import (
    Change,
    ChangeKind,
    DeltaPlan,
    LeaverPolicy,
    Mode,
)
from connector.sync.guard import GuardThresholds, HoldReason, check_guard

__all__ = ["Pending", "guard_over_remainder"]

_LEAVERS = "too_many_leavers"


@dataclass(frozen=True, slots=True)
class Pending:
    """One operation of the planned newer run, or of an older run's unsent remainder."""

    kind: str
    external_id: str
    fingerprint: bytes
    active: bool


def guard_over_remainder(
    *,
    mode: Mode,
    leaver_policy: LeaverPolicy,
    counts: Mapping[str, int],
    ops: Iterable[Pending],
    remainder: Mapping[str, Pending],
    population: int,
    rows: int,
    rejected_rows: int,
    thresholds: GuardThresholds,
) -> tuple[dict[str, Any] | None, int]:
    """The guard's decision for a newer run (``counts``: its planned counts; ``ops``: its
    stored plan), not counting operations an older run's unsent ``remainder`` carries
    already with the same data. Returns the hold (None: it passes) and how many
    operations were carried over.

    ``population`` is the records last sent active: the leaver limits compare with it
    (the accounts that exist). The change and row limits compare with the population
    the older run was building (its remainder's joiners added, its deactivations taken
    off), so a truncated newer file is still held for its row count.
    """
    carried = {"joiner": 0, "mover": 0, "deactivation": 0, "leaver": 0}
    for op in ops:
        old = remainder.get(op.external_id)
        if old is None or old.fingerprint != op.fingerprint or old.active != op.active:
            continue
        kind = op.kind if op.kind in carried else "mover"
        carried[kind] += 1
        if kind == "mover" and not op.active:
            carried["deactivation"] += 1
    building = sum(1 for p in remainder.values() if p.active and p.kind == "joiner")
    ending = sum(1 for p in remainder.values() if not p.active and p.kind != "joiner")
    leavers = max(0, counts.get("leavers", 0) - carried["leaver"])
    plan = DeltaPlan(
        mode=mode,
        leaver_policy=leaver_policy,
        leavers=[_placeholder(k) for k in range(leavers)],
        leavers_without_payload=[""] * counts.get("leavers_without_payload", 0),
        joiners=max(0, counts.get("joiners", 0) - carried["joiner"]),
        movers=max(0, counts.get("movers", 0) - carried["mover"]),
        deactivations=max(0, counts.get("deactivations", 0) - carried["deactivation"]),
    )
    # Disabling is measured against the accounts that exist (sent active); changes and
    # the row count against the population the older run was building.
    building_pop = max(0, population + building - ending)
    now = check_guard(plan, population, rows, thresholds, rejected_rows=rejected_rows)
    then = check_guard(plan, building_pop, rows, thresholds, rejected_rows=rejected_rows)
    violations = [v for v in (now.violations if now else ()) if v.code == _LEAVERS] + [
        v for v in (then.violations if then else ()) if v.code != _LEAVERS
    ]
    hold = HoldReason(tuple(violations)).to_dict() if violations else None
    return hold, sum(carried[k] for k in ("joiner", "mover", "leaver"))


def _placeholder(k: int) -> Change:
    """A leaver for counting (the guard reads only how many there are)."""
    return Change(ChangeKind.LEAVER, f"#{k}", None, None, b"", False)
