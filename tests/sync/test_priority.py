"""The priority order of a run that needs more than a day's call budget."""

from __future__ import annotations

from connector.sync.priority import (
    OpKey,
    group_barriers,
    group_counts,
    priority_group,
    priority_order,
    priority_text,
    with_group_barriers,
)


def ordered(keys: list[OpKey]) -> list[str]:
    return [keys[i].external_id for i in priority_order(keys)]


def test_leavers_and_deactivations_go_first_then_joiners_then_movers() -> None:
    keys = [
        OpKey("joiner", True, 0, "J1"),
        OpKey("mover", True, 0, "M1"),
        OpKey("leaver", False, 0, "L1"),
        OpKey("mover", False, 0, "D1"),  # a deactivation
        OpKey("joiner", True, 0, "J2"),
        OpKey("retry", True, 0, "R1"),
    ]
    assert ordered(keys) == ["L1", "D1", "J1", "J2", "M1", "R1"]
    assert group_counts(keys) == {"leavers": 2, "joiners": 2, "movers": 2}


def test_an_inactive_record_of_a_first_load_counts_as_a_deactivation() -> None:
    # the account may already exist in the directory (a takeover): disable it first
    assert priority_group("joiner", False) == 0


def test_a_joiner_whose_manager_is_a_joiner_still_follows_its_manager() -> None:
    keys = [
        OpKey("joiner", True, 0, "BOSS"),
        OpKey("joiner", True, 1, "MID", "BOSS"),
        OpKey("joiner", True, 2, "LOW", "MID"),
        OpKey("leaver", False, 0, "GONE"),
    ]
    assert ordered(keys) == ["GONE", "BOSS", "MID", "LOW"]


def test_a_mover_whose_manager_is_a_joiner_comes_after_the_joiner() -> None:
    keys = [OpKey("mover", True, 1, "M", "NEW"), OpKey("joiner", True, 0, "NEW")]
    assert ordered(keys) == ["NEW", "M"]


def test_a_joiner_chain_a_deactivation_waits_for_moves_up_with_it() -> None:
    keys = [
        OpKey("joiner", True, 0, "TOP"),
        OpKey("joiner", True, 1, "NEWBOSS", "TOP"),
        OpKey("mover", False, 2, "DEACT", "NEWBOSS"),
        OpKey("leaver", False, 0, "L"),
        OpKey("joiner", True, 0, "OTHER"),
    ]
    order = ordered(keys)
    assert order == ["TOP", "L", "NEWBOSS", "DEACT", "OTHER"]
    assert order.index("TOP") < order.index("NEWBOSS") < order.index("DEACT")
    assert group_counts(keys) == {"leavers": 2, "joiners": 3, "movers": 0}  # as they are


def test_priority_order_is_idempotent() -> None:
    keys = [
        OpKey("mover", True, 0, "M"),
        OpKey("joiner", True, 1, "J2", "J1"),
        OpKey("joiner", True, 0, "J1"),
        OpKey("leaver", False, 0, "L"),
    ]
    once = [keys[i] for i in priority_order(keys)]
    assert priority_order(once) == list(range(len(once)))


def test_priority_text_names_the_groups_in_order() -> None:
    counts = {"leavers": 120, "joiners": 9000, "movers": 40}
    assert priority_text(counts) == (
        "sent in priority order: 120 leavers/deactivations first, then 9,000 joiners,"
        " then 40 movers"
    )
    assert priority_text({"leavers": 0, "joiners": 5, "movers": 2}) == (
        "sent in priority order: 5 joiners first, then 2 movers"
    )


def test_no_batch_of_a_later_group_goes_before_the_earlier_groups_are_acknowledged() -> None:
    # batches: 0-1 deactivations (1 waits for its managers in 0), 2 holds the last
    # deactivations and the first joiners, 3-4 joiners, 5-6 movers
    lowest = bytes([0, 0, 0, 1, 1, 2, 2])
    deps: list[tuple[int, ...]] = [(), (0,), (), (), (), (), (4,)]
    out = with_group_barriers(deps, lowest)
    assert out[:3] == [(), (0,), ()]  # the first group waits only for its managers
    assert out[3] == (0, 1, 2)  # the first joiners' batch: every batch with a deactivation
    assert out[4] == (3,)  # the other joiners wait for that one
    assert out[5] == (0, 1, 2, 3, 4)
    assert out[6] == (4, 5)


def test_a_batch_lowest_group_counts_a_manager_moved_up_with_its_deactivation() -> None:
    keys = [
        OpKey("leaver", False, 0, "L1"),
        OpKey("joiner", True, 0, "BOSS"),  # manages D1: moved up into the first group
        OpKey("mover", False, 1, "D1", "BOSS"),
        OpKey("joiner", True, 0, "J1"),
    ]
    plan = [keys[i] for i in priority_order(keys)]
    assert [k.external_id for k in plan] == ["L1", "BOSS", "D1", "J1"]
    assert group_barriers(plan, [0, 1, 2, 3, 4]) == bytes([0, 0, 0, 1])
