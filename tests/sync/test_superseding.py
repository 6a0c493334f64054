"""The guard of a newer full run that takes over an older run's unsent remainder."""

from __future__ import annotations

from typing import Any

from connector.config_source import Thresholds
from connector.sync.superseding import Pending, guard_over_remainder

FP = b"\x01" * 16


def joiners(n: int, start: int = 0, fp: bytes = FP) -> list[Pending]:
    return [Pending("joiner", f"E{k:05}", fp, True) for k in range(start, start + n)]


def decide(ops: list[Pending], remainder: list[Pending], counts: dict[str, int], pop: int) -> Any:
    return guard_over_remainder(
        mode="full",
        leaver_policy="disable",
        counts=counts,
        ops=ops,
        remainder={p.external_id: p for p in remainder},
        population=pop,
        rows=pop + counts.get("joiners", 0),
        rejected_rows=0,
        thresholds=Thresholds(),
    )


def test_the_remainder_an_older_run_carries_is_not_counted_again() -> None:
    remainder = joiners(900, start=100)
    ops = remainder + joiners(3, start=5000)
    hold, carried = decide(ops, remainder, {"joiners": 903}, pop=100)
    assert hold is None
    assert carried == 900


def test_real_changes_beyond_the_remainder_are_still_held() -> None:
    remainder = joiners(900, start=100)
    leavers = [Pending("leaver", f"E{k:05}", FP, False) for k in range(60)]
    counts = {"joiners": 900, "leavers": 60}
    hold, carried = decide(remainder + leavers, remainder, counts, pop=100)
    assert carried == 900
    assert hold is not None
    assert hold["code"] == "too_many_leavers"  # 60 of the 100 sent: held as before


def test_a_remainder_record_whose_data_changed_counts_as_a_change() -> None:
    remainder = joiners(900, start=100)
    changed = joiners(900, start=100, fp=b"\x02" * 16)
    hold, carried = decide(changed, remainder, {"joiners": 900}, pop=100)
    assert carried == 0
    assert hold is not None
    assert hold["code"] == "too_many_changes"


def test_a_truncated_newer_file_is_held_for_its_row_count() -> None:
    remainder = joiners(900, start=100)
    hold, _ = guard_over_remainder(
        mode="full",
        leaver_policy="disable",
        counts={"joiners": 300},
        ops=remainder[:300],
        remainder={p.external_id: p for p in remainder},
        population=100,
        rows=400,  # of the 1,000 the older run was building
        rejected_rows=0,
        thresholds=Thresholds(),
    )
    assert hold is not None
    assert hold["code"] == "too_few_rows"
