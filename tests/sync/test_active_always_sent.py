"""Every operation the engine sends carries a boolean ``active``: joiners, movers,
deactivations, leavers, retries and automatic manager-reference re-sends, including
payloads stored before every mapping had to map ``active`` (an update that omits it
disables the account: AzureAD/entra-id-inbound-provisioning issue #16, a user's report)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from connector.clock import FakeClock
from connector.scim import BulkPayload
from connector.state.base import RecordIndex
from connector.state.local import LocalStateStore
from connector.sync.delta import plan_delta, with_active
from connector.sync.wiring import build_engine
from tests.sync.fakes import Rec, config, csv_reader
from tests.sync.test_references import T0, ManagerService, person
from tests.sync.test_references import World as ReferencesWorld


@dataclass
class RecordingService(ManagerService):
    """Keeps the ``data`` of every operation it received."""

    sent: list[dict[str, Any]] = field(default_factory=list)

    def apply(self, payload: BulkPayload) -> None:
        self.sent.extend(op["data"] for op in orjson.loads(payload.body)["Operations"])
        super().apply(payload)


class World(ReferencesWorld):
    """The references world, its service recording what it received."""

    def __init__(self, tmp: Path, **engine: Any) -> None:
        self.tmp = tmp
        self.clock = FakeClock(T0)
        self.service = self.recorder = RecordingService(self.clock)
        self.store = LocalStateStore(tmp / "state", clock=self.clock, heartbeat=False)
        off = dict.fromkeys(("max_changes", "max_changes_percent", "max_leavers"), "null")
        cfg = config(**off, max_leavers_percent="null", min_row_ratio="null")
        self.engine = build_engine(
            cfg, self.store, self.service.target, self.clock, records=csv_reader, **engine
        )

    @property
    def sent(self) -> list[dict[str, Any]]:
        return self.recorder.sent


def _non_boolean_active(sent: list[dict[str, Any]]) -> list[str]:
    return [d["externalId"] for d in sent if d.get("active").__class__ is not bool]


def test_with_active_keeps_a_boolean_and_fills_a_missing_one() -> None:
    kept = {"externalId": "1", "active": False}
    assert with_active(kept, True) is kept
    assert with_active({"externalId": "1"}, True) == {"externalId": "1", "active": True}
    assert with_active({"externalId": "1", "active": None}, False)["active"] is False


def test_the_delta_refuses_to_plan_a_record_without_a_boolean_active() -> None:
    index = RecordIndex("employees")
    records = [Rec(2, "1", {"externalId": "1", "userName": "a@x"})]
    with pytest.raises(ValueError, match="line 2 has no true/false active"):
        plan_delta(records, index, mode="full", leaver_policy="disable")


def test_every_kind_of_send_carries_a_boolean_active(tmp_path: Path) -> None:
    w = World(tmp_path)
    day1 = [person("R"), person("A", "R"), person("B", "NEWBOSS"), person("L")]
    w.sync("hr_20260302.csv", day1)
    w.reconcile()
    w.clock.advance(86400)
    leaving = (*person("A", "R")[:5], "Terminated")  # a deactivation
    day2 = [person("R"), leaving, person("B", "NEWBOSS"), person("NEWBOSS", "R")]  # L leaves
    second = w.sync("hr_20260303.csv", day2)
    assert second.planned["leavers"] == 1
    assert second.planned["deactivations"] == 1
    passed = w.reconcile()
    assert [s.run_id for s in passed][-1] == "employees-refs1"  # B's reference re-send
    sent = {d["externalId"]: d for d in w.sent}
    assert sent["L"]["active"] is False
    assert sent["A"]["active"] is False
    assert len(w.sent) == 4 + 3 + 1  # day 1, day 2 (A, NEWBOSS, leaver L), re-send of B
    assert _non_boolean_active(w.sent) == []


def test_a_reference_resend_of_a_payload_stored_without_active_carries_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = World(tmp_path)
    day1 = [person("R"), person("B", "NEWBOSS")]
    w.sync("hr_20260302.csv", day1)
    w.reconcile()
    # payloads stored by an older version, when a mapping could leave active out
    stored = w.store.get_payloads

    def without_active(source: str, ids: Any) -> dict[str, Any]:
        return {
            k: {f: v for f, v in p.items() if f != "active"} for k, p in stored(source, ids).items()
        }

    monkeypatch.setattr(w.store, "get_payloads", without_active)
    w.clock.advance(86400)
    w.sync("hr_20260303.csv", [*day1, person("NEWBOSS", "R")])
    w.reconcile()
    [resent] = [d for d in w.sent if d["externalId"] == "B"][1:]
    assert resent["active"] is True  # the index's flag, never omitted
