"""Records the service refused keep their last accepted fingerprint; a failed create is
no leaver."""

from __future__ import annotations

from pathlib import Path

from tests.sync.fakes import people
from tests.sync.world import World


def test_refused_mover_keeps_its_accepted_fingerprint_and_is_not_resent(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.sync("hr_20260302.csv", people(20))
    before = w.store.load_records("employees").get("E0003")
    assert before is not None
    w.clock.advance(86400)
    w.service.refuse = lambda data: "bad dept" if data["displayName"] == "Bad 3" else None
    day2 = people(20)
    day2[2] = (day2[2][0], day2[2][1], "Bad 3", *day2[2][3:])
    w.sync("hr_20260303.csv", day2)
    after = w.store.load_records("employees").get("E0003")
    assert after is not None
    assert after.fingerprint == before.fingerprint
    assert after.outcome == "failed"
    # the same refused data the next day is not sent again
    w.clock.advance(86400)
    calls = len(w.service.calls)
    again = w.sync("hr_20260304.csv", [*day2, *people(1, start=50)])
    assert again.planned["movers"] == 0
    assert w.service.calls[calls:] == [["E0050"]]
    # changed data is sent
    w.service.refuse = None
    w.clock.advance(86400)
    day5 = [*people(20), *people(1, start=50)]
    day5[2] = (day5[2][0], day5[2][1], "Fixed 3", *day5[2][3:])
    fixed = w.sync("hr_20260305.csv", day5)
    assert fixed.planned["movers"] == 1
    assert w.service.users["E0003"]["displayName"] == "Fixed 3"


def test_joiner_whose_create_failed_is_not_a_leaver_later(tmp_path: Path) -> None:
    w = World(tmp_path, max_leavers=100)
    w.sync("hr_20260301.csv", people(10))
    rows = people(10)
    rows.append(("E0099", "user3@contoso.com", "Clash", "Sales", "", "Active"))  # dup UPN
    w.clock.advance(86400)
    w.sync("hr_20260302.csv", rows)
    w.reconcile()
    entry = w.store.load_records("employees").get("E0099")
    assert entry is not None
    assert entry.outcome == "failed"
    assert not entry.active
    w.clock.advance(86400)
    nxt = w.sync("hr_20260303.csv", people(10))
    assert nxt.planned["leavers"] == 0
