"""Manager references: plan order by manager chain, managers before reports, bounded re-sends."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from connector.clock import FakeClock
from connector.scim import ENTERPRISE_USER_SCHEMA, BulkPayload
from connector.state.base import Outcome, RecordEntry
from connector.state.local import LocalStateStore
from connector.sync.journal_doc import journal_to_doc
from connector.sync.references import (
    UNRESOLVED_REFERENCE,
    count_resends,
    manager_of,
    order_by_level,
    reference_levels,
    select_reference_resends,
)
from connector.sync.summary import RunSummary
from connector.sync.wiring import build_engine
from tests.sync.fakes import (
    FakeService,
    FakeTarget,
    config,
    csv_reader,
    people,
    write_extract,
)
from tests.sync.world import World as PipelineWorld

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
FP = b"\x01" * 16


# -- pure functions -------------------------------------------------------------------------


def test_manager_of_reads_the_enterprise_reference() -> None:
    assert manager_of({ENTERPRISE_USER_SCHEMA: {"manager": {"value": "M1"}}}) == "M1"
    assert manager_of({ENTERPRISE_USER_SCHEMA: {"manager": "M2"}}) == "M2"
    assert manager_of({ENTERPRISE_USER_SCHEMA: {"manager": {"value": " "}}}) is None
    assert manager_of({ENTERPRISE_USER_SCHEMA: {"department": "x"}}) is None
    assert manager_of({"userName": "a"}) is None
    assert manager_of(None) is None


def test_levels_follow_the_chain_only_through_records_that_must_wait() -> None:
    items = [("C", "B"), ("B", "A"), ("A", None), ("D", "X"), ("E", "F"), ("F", "A")]
    waits = {"A", "B", "C", "D", "E"}  # F exists already (a mover)
    assert reference_levels(items, waits.__contains__) == [2, 1, 0, 0, 0, 1]


def test_a_cycle_is_cut_where_it_closes_and_the_result_is_deterministic() -> None:
    items = [("A", "B"), ("B", "C"), ("C", "A"), ("S", "S"), ("R", "A")]
    levels = reference_levels(items, lambda _: True)
    # A→B→C→A: following from A, C's edge back to A is dropped: C, B, A.
    assert levels[:3] == [2, 1, 0]
    assert levels[3] == 0  # manages themselves
    assert levels[4] == 3  # reports to A
    assert reference_levels(items, lambda _: True) == levels


def test_a_long_chain_needs_no_recursion() -> None:
    n = 20_000
    items = [(f"U{i}", f"U{i + 1}" if i + 1 < n else None) for i in range(n)]
    levels = reference_levels(items, lambda _: True)
    assert levels[0] == n - 1
    assert levels[-1] == 0


def test_order_by_level_is_stable_within_a_level() -> None:
    assert list(order_by_level(5, [1, 0, 1, 0, 2])) == [1, 3, 0, 2, 4]


def _entry(outcome: str, code: str | None = None, fp: bytes = FP) -> RecordEntry:
    return RecordEntry(fingerprint=fp, outcome=outcome, error_code=code, run_id="run-1")


def _payload(manager: str) -> dict[str, Any]:
    return {ENTERPRISE_USER_SCHEMA: {"manager": {"value": manager}}}


def test_resend_selection_needs_a_confirmed_manager_and_stays_bounded() -> None:
    skipped = _entry("skipped", UNRESOLVED_REFERENCE)
    entries = {
        "ok": skipped,
        "mgr-unknown": skipped,
        "mgr-failed": skipped,
        "mgr-pending": skipped,
        "mgr-skipped": skipped,
        "tired": skipped,
        "other-skip": _entry("skipped", "RedundantExport"),
        "M": _entry("created"),
        "MF": _entry("failed", "Conflict"),
        "MP": _entry("sent"),
        "MS": _entry("skipped", UNRESOLVED_REFERENCE),
    }
    payloads = {
        "ok": _payload("M"),
        "mgr-unknown": _payload("NOBODY"),
        "mgr-failed": _payload("MF"),
        "mgr-pending": _payload("MP"),
        "mgr-skipped": _payload("MS"),
        "tired": _payload("M"),
        "other-skip": _payload("M"),
        "MS": _payload("NOBODY"),
    }
    resent = {"tired": (FP.hex(), 2), "ok": ("00" * 16, 5)}  # ok's count is for older data
    chosen, left = select_reference_resends(entries, payloads, resent, max_resends=2)
    assert [c.external_id for c in chosen] == ["mgr-skipped", "ok"]
    assert chosen[1].manager == "M"
    assert chosen[1].run_id == "run-1"
    assert left == {
        "MS": "manager unknown to this source",
        "mgr-failed": "manager not confirmed (failed)",
        "mgr-pending": "manager not confirmed (sent)",
        "mgr-unknown": "manager unknown to this source",
        "tired": "re-sent 2 times already",
    }


def test_count_resends_restarts_when_the_data_changed() -> None:
    counted = count_resends({"a": (FP.hex(), 1), "b": ("ff" * 16, 3)}, [("a", FP), ("b", FP)])
    assert counted == {"a": (FP.hex(), 2), "b": (FP.hex(), 1)}


# -- the engine with a service that resolves managers like Entra ----------------------------


@dataclass
class ManagerService(FakeService):
    """Resolves ``manager.value`` only against users already applied (Entra's rule).

    ``slow_levels``: a request whose first record is at one of these manager-chain
    positions yields to the event loop many times before it is applied, so requests
    sent after it would overtake it without the engine's wait for managers.
    """

    managers: dict[str, str | None] = field(default_factory=dict)
    unresolvable: set[str] = field(default_factory=set)
    slow_first: set[str] = field(default_factory=set)
    sends: list[tuple[str, list[str]]] = field(default_factory=list)

    def target(self, source: Any) -> FakeTarget:
        return ManagerTarget(self)

    def apply(self, payload: BulkPayload) -> None:
        before = len(self.logs)
        ops = orjson.loads(payload.body)["Operations"]
        resolved: dict[str, bool] = {}
        for op in ops:
            data = op["data"]
            ext = data["externalId"]
            mgr = manager_of(data)
            resolved[ext] = mgr is None or (mgr in self.users and ext not in self.unresolvable)
            if mgr is not None and resolved[ext]:
                self.managers[ext] = mgr
            super().apply(_one(op))  # one by one: a manager earlier in the request counts
        for entry in self.logs[before:]:
            ext = entry["sourceIdentity"]["id"]
            status = entry["provisioningStatusInfo"]["status"]
            if status == "success" and not resolved.get(ext, True):
                entry["provisioningStatusInfo"] = {
                    "status": "warning",
                    "errorInformation": {
                        "errorCode": UNRESOLVED_REFERENCE,
                        "reason": "manager reference could not be resolved",
                    },
                }


def _one(op: dict[str, Any]) -> BulkPayload:
    body = orjson.dumps({"Operations": [op]})
    return BulkPayload(body=body, external_ids=(op["data"]["externalId"],), bulk_ids=("x",))


@dataclass
class ManagerTarget(FakeTarget):
    async def send(self, payload: BulkPayload) -> Any:
        s = self.service
        assert isinstance(s, ManagerService)
        s.sends.append(("start", list(payload.external_ids)))
        s.in_flight += 1
        s.max_in_flight = max(s.max_in_flight, s.in_flight)
        try:
            turns = 50 if payload.external_ids[0] in s.slow_first else 1
            for _ in range(turns):
                await asyncio.sleep(0)
        finally:
            s.in_flight -= 1
        receipt = await super().send(payload)
        s.sends.append(("acked", list(payload.external_ids)))
        return receipt


class World:
    def __init__(self, tmp: Path, **engine: Any) -> None:
        self.tmp = tmp
        self.clock = FakeClock(T0)
        self.service = ManagerService(self.clock)
        self.store = LocalStateStore(tmp / "state", clock=self.clock, heartbeat=False)
        # tiny populations: growth by hires must not trip the mass-change guard
        cfg = config(max_changes="null", max_changes_percent="null")
        self.engine = build_engine(
            cfg, self.store, self.service.target, self.clock, records=csv_reader, **engine
        )

    def sync(self, name: str, rows: list[tuple[str, ...]]) -> RunSummary:
        path = write_extract(self.tmp / name, rows)
        return asyncio.run(self.engine.ingest("employees", name, path))

    def reconcile(self) -> list[RunSummary]:
        self.clock.advance(timedelta(minutes=15).total_seconds())
        return list(asyncio.run(self.engine.reconcile_open_runs()))


def person(ext: str, manager: str = "") -> tuple[str, ...]:
    return (ext, f"{ext.lower()}@contoso.com", f"User {ext}", "Sales", manager, "Active")


def org_reports_first() -> list[tuple[str, ...]]:
    """A root, 50 managers under it and 100 reports under them, listed deepest first."""
    root = [person("R")]
    managers = [person(f"M{i:02}", "R") for i in range(50)]
    reports = [person(f"P{i:03}", f"M{i % 50:02}") for i in range(100)]
    return reports + managers + root


def test_managers_are_sent_and_acknowledged_before_their_reports(tmp_path: Path) -> None:
    w = World(tmp_path)
    rows = org_reports_first()
    w.service.slow_first = {"R", "M49"}  # the requests holding managers are slow to answer
    run = w.sync("hr_20260302.csv", rows)
    assert run.state == "uploaded"
    assert run.batches_total == 4  # ceil(151 / 50): ordering costs no extra request
    # plan order: root, then managers, then reports (file order kept within a level)
    sent = [ext for kind, ids in w.service.sends if kind == "start" for ext in ids]
    assert sent[0] == "R"
    assert sent[1:51] == [f"M{i:02}" for i in range(50)]
    assert sent[51:] == [f"P{i:03}" for i in range(100)]
    # a request holding level-n records starts only after those below were acknowledged
    started = [ids[0] for kind, ids in w.service.sends if kind == "start"]
    acked = [ids[0] for kind, ids in w.service.sends if kind == "acked"]
    log = [(k, ids[0]) for k, ids in w.service.sends]
    assert log.index(("start", started[1])) > log.index(("acked", "R"))
    assert log.index(("start", started[2])) > log.index(("acked", started[1]))
    # the last two requests hold reports only: they go out together
    assert log.index(("start", started[3])) < log.index(("acked", started[2]))
    assert w.service.max_in_flight == 2
    assert sorted(acked) == sorted(started)
    [rec] = w.reconcile()
    assert rec.outcomes == {"created": 151}
    expected = {r[0]: r[4] for r in rows if r[4]}
    assert w.service.managers == expected
    doc = journal_to_doc(w.engine.get_run(run.run_id))
    assert doc["referenceLevels"] == 3


def test_reports_go_while_an_unrelated_managers_batch_is_still_in_flight(tmp_path: Path) -> None:
    w = World(tmp_path)
    managers = [person(f"M{i:03}") for i in range(100)]  # level 0: two requests
    reports = [person(f"P{i:03}", f"M{i % 50:03}") for i in range(100)]  # of the first 50
    w.service.slow_first = {"M050"}  # the second request, which holds none of their managers
    run = w.sync("hr_20260302.csv", reports + managers)
    assert run.state == "uploaded"
    assert run.batches_total == 4
    log = [(k, ids[0]) for k, ids in w.service.sends]
    # the reports' requests wait for the first request only, not for every lower level
    assert log.index(("start", "P000")) > log.index(("acked", "M000"))
    assert log.index(("start", "P000")) < log.index(("acked", "M050"))
    assert log.index(("start", "P050")) < log.index(("acked", "M050"))
    assert w.service.max_in_flight == 3
    [rec] = w.reconcile()
    assert rec.outcomes == {"created": 200}
    assert w.service.managers == {f"P{i:03}": f"M{i % 50:03}" for i in range(100)}


def test_a_one_level_plan_keeps_the_window_full(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.sync("hr_20260302.csv", [person("R")])
    w.reconcile()
    w.clock.advance(86400)
    hires = [person("R"), *(person(f"H{i:03}", "R") for i in range(200))]
    run = w.sync("hr_20260303.csv", hires)
    assert run.batches_total == 4
    assert w.service.max_in_flight == 4  # every request in flight at once: no barrier
    assert "referenceLevels" not in journal_to_doc(w.engine.get_run(run.run_id))


def test_skipped_reference_is_resent_once_the_manager_is_created(tmp_path: Path) -> None:
    w = World(tmp_path)
    day1 = [person("R"), person("A", "R"), person("B", "NEWBOSS"), person("C", "GHOST")]
    first = w.sync("hr_20260302.csv", day1)
    [rec] = w.reconcile()
    assert rec.outcomes == {"created": 2, "skipped": 2}
    assert not any(r.run_id.startswith("employees-refs") for r in w.engine.list_runs())

    w.clock.advance(86400)
    second = w.sync("hr_20260303.csv", [*day1, person("NEWBOSS", "R")])
    assert second.planned["joiners"] == 1
    assert second.planned["unchanged"] == 4  # B is not re-sent by the delta
    passed = w.reconcile()
    assert [s.run_id for s in passed] == [second.run_id, "employees-refs1"]
    refs = passed[1]
    assert refs.state == "uploaded"
    assert refs.planned == {"references": 1}
    assert w.service.calls[-1] == ["B"]  # only B: C's manager is unknown to the source
    doc = journal_to_doc(w.engine.get_run("employees-refs1"))
    assert doc["kind"] == "references"
    assert doc["parentRunIds"] == [first.run_id]
    assert doc["notResent"] == {"manager unknown to this source": 1}
    parent = journal_to_doc(w.engine.get_run(first.run_id))
    assert parent["referenceResends"] == {"employees-refs1": 1}
    assert "re-sent in run employees-refs1" in parent["timeline"][-1]["detail"]

    [done] = w.reconcile()
    assert done.run_id == "employees-refs1"
    assert done.state == "done"
    assert done.outcomes == {"updated": 1}
    assert w.service.managers["B"] == "NEWBOSS"
    assert w.store.load_records("employees").get("B").outcome == "updated"  # type: ignore[union-attr]
    report = json.loads(w.store.read_artifact("employees/employees-refs1/report.json"))
    assert report["outcomes"] == {"updated": 1}
    parent_report = w.store.read_artifact(f"employees/{first.run_id}/report.html").decode()
    assert "re-sent in run employees-refs1" in parent_report
    # nothing left to re-send: further passes are quiet
    assert w.reconcile() == []


def test_resends_stop_after_the_bound(tmp_path: Path) -> None:
    w = World(tmp_path, max_reference_resends=2)
    w.service.unresolvable = {"B"}  # the service keeps skipping B's manager
    w.sync("hr_20260302.csv", [person("R"), person("B", "R")])
    w.service.slow_first = set()
    passes = [w.reconcile() for _ in range(6)]
    runs = sorted(r.run_id for r in w.engine.list_runs() if r.run_id.startswith("employees-refs"))
    assert runs == ["employees-refs1", "employees-refs2"]
    assert [c for c in w.service.calls if c == ["B"]] == [["B"], ["B"]]
    assert passes[-1] == []
    counts = w.store.get_document("reference-resends/employees")
    assert counts is not None
    assert counts[0]["records"]["B"][1] == 2


def test_no_resend_when_the_manager_failed_or_resends_are_off(tmp_path: Path) -> None:
    w = World(tmp_path)
    clash = ("MGR", "r@contoso.com", "Clash", "Sales", "R", "Active")  # R's UPN: fails
    w.sync("hr_20260302.csv", [person("R"), clash, person("B", "MGR")])
    [rec] = w.reconcile()
    assert rec.outcomes == {"created": 1, "failed": 1, "skipped": 1}
    assert w.reconcile() == []
    assert w.service.calls.count(["B"]) == 0

    off = World(tmp_path / "off", max_reference_resends=0)
    off.sync("hr_20260302.csv", [person("B", "LATE")])
    off.reconcile()
    off.clock.advance(86400)
    off.sync("hr_20260303.csv", [person("B", "LATE"), person("LATE")])
    assert [s.run_id.startswith("employees-refs") for s in off.reconcile()] == [False]


def test_reference_resends_leave_records_a_held_run_carries(tmp_path: Path) -> None:
    w = PipelineWorld(tmp_path)
    w.sync("hr_20260302.csv", people(10))  # E0001 manages everyone
    w.clock.advance(86400)
    day2 = people(5)
    day2[4] = (*day2[4][:3], "Ops", *day2[4][4:])  # E0005 moves; E0006..E0010 leave
    held = w.sync("hr_20260303.csv", day2)
    assert held.state == "held"
    # E0005 was skipped for an unresolved manager by an earlier run
    index = w.store.load_records("employees")
    entry = index.entries["E0005"]
    entry.outcome = Outcome.SKIPPED.value
    entry.error_code = UNRESOLVED_REFERENCE
    entry.run_id = "employees-earlier"
    w.store.save_records(index)
    calls = len(w.service.calls)
    w.reconcile()  # E0001 confirmed: E0005 could be re-sent — but the held run has it
    assert [r.run_id for r in w.engine.list_runs() if "-refs" in r.run_id] == []
    assert len(w.service.calls) == calls
    assert w.service.users["E0005"]["department"] == "Sales"
