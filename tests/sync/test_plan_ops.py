"""The compact plan: columns plus spooled payloads, the same stored format, the same batches."""

from __future__ import annotations

import gzip
import io
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from connector.scim import (
    ENTERPRISE_USER_SCHEMA,
    BulkOperation,
    build_bulk_requests,
    make_bulk_id,
)
from connector.state.base import Outcome, RecordEntry, RecordIndex
from connector.sync.delta import Change, ChangeKind, ChangeList, fingerprint, plan_delta
from connector.sync.op_table import OpTable, PayloadMap
from connector.sync.plans import (
    PlannedOp,
    PlanOps,
    batches_of,
    decode_plan,
    encode_plan,
    order_plan,
    read_plan,
)


def user(ext: str, manager: str | None = None, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "externalId": ext,
        "userName": f"{ext.lower()}@example.test",
        "active": True,
        "displayName": f"Person {ext} — ü",
        **extra,
    }
    if manager is not None:
        data[ENTERPRISE_USER_SCHEMA] = {"manager": {"value": manager}}
    return data


def change(ext: str, manager: str | None = None, line: int = 2, **extra: Any) -> Change:
    data = user(ext, manager, **extra)
    return Change(ChangeKind.JOINER, ext, line, data, fingerprint(data), True)


def ops_of(n: int) -> list[PlannedOp]:
    out = []
    for k in range(n):
        data = user(f"E{k:05d}", title="x" * (k % 7))
        out.append(PlannedOp("mover", f"E{k:05d}", k + 2, fingerprint(data), True, data, "r1", 0))
    return out


def test_a_plan_round_trips_through_its_stored_form_in_order() -> None:
    ops = ops_of(120)
    ops[5] = PlannedOp("leaver", "E00005", None, b"\x02" * 16, False, {"active": False}, None, 3)
    back = decode_plan(encode_plan(ops))
    assert isinstance(back, PlanOps)
    assert [op.external_id for op in back] == [op.external_id for op in ops]
    assert list(back) == ops
    assert (back[5].line, back[5].level, back[5].prev) == (None, 3, None)
    assert back[7].data == ops[7].data
    assert back[-1].external_id == "E00119"


def test_the_stored_lines_are_the_format_every_version_wrote() -> None:
    op = ops_of(1)[0]
    [line] = gzip.decompress(encode_plan([op])).splitlines()
    assert orjson.loads(line) == [
        "mover",
        "E00000",
        2,
        op.fingerprint.hex(),
        True,
        op.data,
        "r1",
        0,
    ]


def test_plans_stored_before_previous_runs_and_levels_still_load() -> None:
    data = user("A")
    fp = fingerprint(data).hex()
    old = b"\n".join(
        [
            orjson.dumps(["joiner", "A", 2, fp, True, data]),  # before prev and levels
            orjson.dumps(["mover", "B", 3, fp, False, user("B"), "run-1"]),  # before levels
            b"",
        ]
    )
    plan = read_plan(io.BytesIO(gzip.compress(old)))
    assert [(op.external_id, op.prev, op.level) for op in plan] == [
        ("A", None, 0),
        ("B", "run-1", 0),
    ]
    assert plan[0].data == data
    assert plan[1].active is False


def test_batches_are_the_bytes_build_bulk_requests_makes() -> None:
    ops = ops_of(173)
    expected = list(
        build_bulk_requests(
            BulkOperation(make_bulk_id(op.external_id, op.line), op.external_id, op.data)
            for op in ops
        )
    )
    plan = PlanOps.of(ops)
    assert batches_of(plan) == expected
    assert plan.batches()[-1] == expected[-1]
    assert plan.members() == [list(p.external_ids) for p in expected]
    assert [len(m) for m in plan.members()] == [50, 50, 50, 23]


def test_batches_split_at_the_byte_cap_as_before() -> None:
    big = [
        PlannedOp("joiner", f"B{k}", k, b"\x01" * 16, True, user(f"B{k}", note="y" * 60_000))
        for k in range(9)
    ]
    expected = list(
        build_bulk_requests(
            BulkOperation(make_bulk_id(op.external_id, op.line), op.external_id, op.data)
            for op in big
        )
    )
    assert len(expected) > 1
    assert batches_of(big) == expected


def test_each_batch_carries_its_lowest_and_highest_level() -> None:
    changes = [change("C", "B"), change("B", "A"), change("A")] + [
        change(f"X{k}") for k in range(60)
    ]
    plan = order_plan(changes)
    assert [op.external_id for op in plan][:3] == ["A", "X0", "X1"]
    assert [(op.external_id, op.level) for op in plan][-2:] == [("B", 1), ("C", 2)]
    assert plan.batch_levels() == [(0, 0), (0, 2)]


def test_each_batch_waits_only_for_the_batches_holding_its_managers() -> None:
    managers = [change(f"M{k:03d}") for k in range(100)]  # level 0: batches 0 and 1
    reports = [change(f"P{k:03d}", f"M{k % 50:03d}") for k in range(100)]  # managers in batch 0
    plan = order_plan(reports + managers)
    assert plan.batch_levels() == [(0, 0), (0, 0), (1, 1), (1, 1)]
    assert plan.batch_deps() == [(), (), (0,), (0,)]  # not batch 1: it holds none of them
    stored = decode_plan(encode_plan(plan))  # the manager column is read back from payloads
    assert stored.batch_deps() == plan.batch_deps()


def test_a_manager_in_the_same_batch_is_no_wait_and_a_chain_waits_link_by_link() -> None:
    chain = [change("C", "B"), change("B", "A"), change("A")] + [change(f"X{k}") for k in range(60)]
    plan = order_plan(chain)  # batch 0: A, X0..X48; batch 1: X49..X59, B, C
    assert plan.batch_deps() == [(), (0,)]  # C's manager B is in its own batch
    deep = [change(f"L{k}", f"L{k - 1}" if k else None) for k in range(3)]
    fill = [change(f"F{k}") for k in range(49)]
    ops = order_plan(fill + deep)  # L0 ends batch 0; L1 and L2 share batch 1
    assert ops.batch_deps() == [(), (0,)]


def test_a_plan_with_one_level_has_no_dependencies() -> None:
    plan = PlanOps.of(ops_of(160))
    assert plan.batch_deps() == [(), (), (), ()]


def test_a_waiting_record_whose_manager_is_not_found_waits_for_every_lower_level() -> None:
    ops = ops_of(120)
    for k in range(100, 120):  # level 1, but no manager in the plan to wait for
        op = ops[k]
        ext, fp = op.external_id, op.fingerprint
        ops[k] = PlannedOp("joiner", ext, op.line, fp, True, op.data, level=1)
    assert PlanOps.of(ops).batch_deps() == [(), (), (0, 1)]


def test_order_plan_keeps_file_order_within_a_level_and_names_the_previous_run() -> None:
    index = RecordIndex("employees")
    index.entries["M"] = RecordEntry(b"\x03" * 16, True, Outcome.CREATED.value, run_id="run-0")
    mover = user("M")
    changes = [
        change("R1", "M"),
        Change(ChangeKind.MOVER, "M", 3, mover, fingerprint(mover), True),
        change("R2", "M"),
    ]
    plan = order_plan(changes, index)
    # M exists already (a mover): its reports need not wait for it
    assert [(op.external_id, op.level, op.prev) for op in plan] == [
        ("R1", 0, None),
        ("M", 0, "run-0"),
        ("R2", 0, None),
    ]
    assert [op.kind for op in order_plan(changes, index, kind="retry")] == ["retry"] * 3


def test_a_change_list_gives_back_the_changes_it_was_given() -> None:
    changes = [change("A", "M", line=4), change("B")]
    leaver = Change(ChangeKind.LEAVER, "L", None, None, b"\x04" * 16, False)
    listed = ChangeList.of([*changes, leaver])
    assert list(listed) == [*changes, leaver]
    assert listed[1] == changes[1]
    assert listed.table.manager(0) == "M"
    assert list(listed.with_data()) == changes
    assert listed != []
    assert ChangeList() == []


def test_the_delta_keeps_no_payload_objects_per_change() -> None:
    @dataclass
    class Rec:
        line: int
        external_id: str
        data: dict[str, Any]

    def records(n: int) -> Iterator[Rec]:
        for k in range(n):
            ext = f"E{k:07d}"
            yield Rec(k + 2, ext, user(ext, "E0000000", title="Engineer " * 40))

    n = 20_000
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        plan = plan_delta(records(n), RecordIndex("employees"), mode="full", leaver_policy="ignore")
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(plan.changes) == n
    # each change: its externalId and a few columns; its ~600-byte payload is spooled
    assert held / n < 200


def test_a_payload_map_decodes_on_lookup_from_a_spool_or_a_plan() -> None:
    plan = PlanOps.of(ops_of(3))
    found = PayloadMap()
    found.add("X", orjson.dumps({"userName": "x"}))
    found.add_table(plan.table, {"E00001"})
    assert found["X"] == {"userName": "x"}
    assert found.get("E00001") == plan[1].data
    assert "E00002" not in found  # in the plan, but not asked for
    assert sorted(found) == ["E00001", "X"]
    with pytest.raises(KeyError):
        found["nobody"]


def test_an_op_table_refuses_a_malformed_fingerprint() -> None:
    with pytest.raises(ValueError, match="fingerprint"):
        OpTable().add("joiner", "A", 2, b"short", True, {"a": 1})


def test_a_stored_plan_names_the_manager_each_waiting_record_is_ordered_after() -> None:
    boss = change("BOSS")
    report = change("LOW", manager="BOSS", line=3)
    back = decode_plan(encode_plan(order_plan([report, boss])))
    rows = {back.table.ext[i]: i for i in range(len(back))}
    # the priority order moves a manager up with its reports: it reads this column
    assert back.table.manager(rows["LOW"]) == "BOSS"
    assert back.table.level(rows["LOW"]) == 1
    assert back.table.manager(rows["BOSS"]) is None
