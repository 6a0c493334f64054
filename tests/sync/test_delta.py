"""Delta planning and the mass-change guard."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector.config_source import Thresholds
from connector.state.base import Outcome, RecordEntry, RecordIndex
from connector.sync.delta import (
    ChangeKind,
    attach_leaver_payloads,
    disabled_payload,
    fingerprint,
    plan_delta,
    strip_ignored,
)
from connector.sync.guard import check_guard

ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


@dataclass(frozen=True)
class Rec:
    line: int
    external_id: str
    data: Mapping[str, Any]


def user(ext: str, title: str = "Engineer", *, active: bool = True, **extra: Any) -> dict[str, Any]:
    return {
        "externalId": ext,
        "userName": f"{ext.lower()}@example.test",
        "title": title,
        "active": active,
        ENT: {"department": "R&D", "costCenter": "CC1"},
        **extra,
    }


def index_of(*users: dict[str, Any], **outcomes: str) -> RecordIndex:
    idx = RecordIndex(source="employees")
    for u in users:
        ext = u["externalId"]
        idx.entries[ext] = RecordEntry(
            fingerprint(u), active=u["active"], outcome=outcomes.get(ext, "created")
        )
    return idx


def recs(*users: dict[str, Any]) -> list[Rec]:
    return [Rec(i + 2, u["externalId"], u) for i, u in enumerate(users)]


# -- fingerprint -----------------------------------------------------------------------


def test_fingerprint_is_16_bytes_and_ignores_key_order() -> None:
    a = {"externalId": "E1", "title": "x", ENT: {"department": "d", "costCenter": "c"}}
    b = {ENT: {"costCenter": "c", "department": "d"}, "title": "x", "externalId": "E1"}
    assert len(fingerprint(a)) == 16
    assert fingerprint(a) == fingerprint(b)
    assert fingerprint(a) != fingerprint({**a, "title": "y"})


def test_ignored_attributes_are_not_compared() -> None:
    base = user("E1", extractedAt="2026-01-01", name={"givenName": "A", "familyName": "B"})
    later = {**base, "extractedAt": "2026-01-02", ENT: {**base[ENT], "costCenter": "CC9"}}
    ignore = ["extractedAt", f"{ENT}:costCenter"]
    assert fingerprint(base, ignore) == fingerprint(later, ignore)
    assert fingerprint(base, ["extractedAt"]) != fingerprint(later, ["extractedAt"])
    renamed = {**base, "name": {"givenName": "Z", "familyName": "B"}}
    assert fingerprint(base, ["name.givenName"]) == fingerprint(renamed, ["name.givenName"])
    assert fingerprint(base, ["name.familyName"]) != fingerprint(renamed, ["name.familyName"])


def test_strip_ignored_does_not_mutate_and_tolerates_absent() -> None:
    data = user("E1")
    out = strip_ignored(data, [f"{ENT}:department", "nickName", "urn:x:y:z"])
    assert ENT in data
    assert "department" in data[ENT]
    assert "department" not in out[ENT]
    assert strip_ignored(data, ["nickName"]) is data


@given(
    st.dictionaries(
        st.text(min_size=1, max_size=8),
        st.one_of(st.text(max_size=8), st.integers(), st.booleans(), st.none()),
        max_size=6,
    )
)
def test_fingerprint_depends_only_on_content(data: dict[str, Any]) -> None:
    reordered = dict(reversed(list(data.items())))
    assert fingerprint(data) == fingerprint(reordered)


# -- plan ------------------------------------------------------------------------------


def test_joiners_movers_unchanged_and_leavers() -> None:
    a, b, c, d = user("A"), user("B"), user("C"), user("D")
    idx = index_of(a, b, c)
    plan = plan_delta(recs(a, {**b, "title": "Lead"}, d), idx, mode="full", leaver_policy="disable")
    kinds = {ch.external_id: ch.kind for ch in plan.changes}
    assert kinds == {"B": ChangeKind.MOVER, "D": ChangeKind.JOINER}
    assert (plan.joiners, plan.movers, plan.unchanged, plan.rows) == (1, 1, 1, 3)
    assert plan.leaver_ids == ["C"]
    mover = next(ch for ch in plan.changes if ch.external_id == "B")
    assert mover.line == 3
    assert mover.data is not None
    assert mover.data["title"] == "Lead"
    assert mover.fingerprint == fingerprint({**b, "title": "Lead"})
    assert plan.counts()["leavers"] == 1


def test_leaver_is_disabled_with_its_complete_last_payload() -> None:
    a, c = user("A"), user("C", "Manager")
    plan = plan_delta(recs(a), index_of(a, c), mode="full", leaver_policy="disable")
    assert plan.leavers[0].data is None
    plan = attach_leaver_payloads(plan, {"C": c})
    leaver = plan.leavers[0]
    assert leaver.kind is ChangeKind.LEAVER
    assert leaver.data == {**c, "active": False}
    assert leaver.active is False
    assert leaver.fingerprint == fingerprint({**c, "active": False})
    assert [ch.external_id for ch in plan.to_send] == ["C"]
    assert c["active"] is True  # the stored payload is not mutated


def test_leaver_without_stored_payload_is_not_sent() -> None:
    a, c = user("A"), user("C")
    plan = plan_delta(recs(a), index_of(a, c), mode="full", leaver_policy="disable")
    plan = attach_leaver_payloads(plan, {})
    assert plan.leavers == []
    assert plan.leavers_without_payload == ["C"]
    assert plan.to_send == []


def test_already_inactive_records_are_not_leavers() -> None:
    a, gone = user("A"), user("G", active=False)
    plan = plan_delta(recs(a), index_of(a, gone), mode="full", leaver_policy="disable")
    assert plan.leavers == []


def test_inactive_row_is_an_ordinary_update() -> None:
    a = user("A")
    plan = plan_delta(
        recs({**a, "active": False}), index_of(a), mode="full", leaver_policy="disable"
    )
    assert [ch.kind for ch in plan.changes] == [ChangeKind.MOVER]
    assert plan.changes[0].active is False
    assert plan.leavers == []


def test_rejected_rows_are_never_leavers() -> None:
    a, b = user("A"), user("B")
    plan = plan_delta(
        recs(a), index_of(a, b), mode="full", leaver_policy="disable", rejected_ids=["B"]
    )
    assert plan.leavers == []


def test_ignore_policy_only_reports_leavers() -> None:
    a, b = user("A"), user("B")
    plan = plan_delta(recs(a), index_of(a, b), mode="full", leaver_policy="ignore")
    assert plan.leavers == []
    assert plan.ignored_leavers == ["B"]


def test_delta_mode_has_no_leavers() -> None:
    a, b = user("A"), user("B")
    plan = plan_delta(
        recs({**a, "title": "X"}), index_of(a, b), mode="delta", leaver_policy="disable"
    )
    assert plan.leavers == []
    assert plan.ignored_leavers == []
    assert plan.movers == 1


def test_failed_and_unconfirmed_are_retried_only_when_asked() -> None:
    a, b, c = user("A"), user("B"), user("C")
    idx = index_of(a, b, c, A=Outcome.FAILED.value, B=Outcome.UNCONFIRMED.value)
    rows = recs(a, b, c)
    plain = plan_delta(rows, idx, mode="full", leaver_policy="disable")
    assert plain.changes == []
    assert plain.unchanged == 3

    failed = plan_delta(rows, idx, mode="full", leaver_policy="disable", retry_failed=True)
    assert [(ch.external_id, ch.kind) for ch in failed.changes] == [("A", ChangeKind.RETRY)]

    both = plan_delta(
        rows, idx, mode="full", leaver_policy="disable", retry_failed=True, retry_unconfirmed=True
    )
    assert [ch.external_id for ch in both.changes] == ["A", "B"]
    assert both.retries == 2
    assert both.unchanged == 1


def test_failed_record_is_resent_when_its_data_changes() -> None:
    a = user("A")
    idx = index_of(a, A=Outcome.FAILED.value)
    plan = plan_delta(
        recs({**a, "userName": "fixed@example.test"}), idx, mode="full", leaver_policy="disable"
    )
    assert [ch.kind for ch in plan.changes] == [ChangeKind.MOVER]


def test_full_resend_sends_everything_present() -> None:
    a, b = user("A"), user("B")
    plan = plan_delta(
        recs(a, b, user("N")),
        index_of(a, b),
        mode="full",
        leaver_policy="disable",
        full_resend=True,
    )
    assert [ch.kind for ch in plan.changes] == [
        ChangeKind.RESEND,
        ChangeKind.RESEND,
        ChangeKind.JOINER,
    ]
    assert plan.unchanged == 0
    assert plan.resends == 2


def test_duplicate_ids_are_planned_once() -> None:
    a = user("A")
    plan = plan_delta(
        [Rec(2, "A", a), Rec(3, "A", {**a, "title": "X"})],
        RecordIndex(source="s"),
        mode="full",
        leaver_policy="disable",
    )
    assert plan.joiners == 1
    assert len(plan.changes) == 1
    assert plan.duplicates == [(3, "A")]


def test_ignored_attribute_change_is_unchanged() -> None:
    a = user("A", extractedAt="1")
    idx = RecordIndex(source="s", entries={"A": RecordEntry(fingerprint(a, ["extractedAt"]))})
    plan = plan_delta(
        recs({**a, "extractedAt": "2"}),
        idx,
        mode="full",
        leaver_policy="disable",
        ignore_attributes=["extractedAt"],
    )
    assert plan.unchanged == 1
    assert plan.changes == []


def test_plan_streams_records_once() -> None:
    a = user("A")

    def gen() -> Any:
        yield Rec(2, "A", a)

    plan = plan_delta(gen(), index_of(a), mode="full", leaver_policy="disable")
    assert plan.unchanged == 1


def test_disabled_payload_keeps_every_attribute() -> None:
    a = user("A")
    assert disabled_payload(a) == {**a, "active": False}


# -- guard -----------------------------------------------------------------------------


def _population(n: int) -> tuple[RecordIndex, list[dict[str, Any]]]:
    users = [user(f"E{i:05d}") for i in range(n)]
    return index_of(*users), users


def test_guard_passes_normal_churn() -> None:
    idx, users = _population(1000)
    rows = [*users[:-20], user("N1")]
    plan = plan_delta(recs(*rows), idx, mode="full", leaver_policy="disable")
    assert check_guard(plan, idx.active_count(), len(rows), Thresholds()) is None


def test_guard_holds_on_leaver_percent_with_numbers() -> None:
    idx, users = _population(1000)
    rows = users[:899]  # 101 leavers: 10.1 %
    plan = plan_delta(recs(*rows), idx, mode="full", leaver_policy="disable")
    hold = check_guard(plan, idx.active_count(), len(rows), Thresholds())
    assert hold is not None
    assert hold.code == "too_many_leavers"
    assert "101 leavers" in hold.message
    assert "10.1 %" in hold.message
    assert "1000" in hold.message
    just_under = plan_delta(recs(*users[:900]), idx, mode="full", leaver_policy="disable")
    assert check_guard(just_under, 1000, 900, Thresholds()) is None


def test_guard_holds_on_absolute_leavers() -> None:
    idx, users = _population(200)
    plan = plan_delta(recs(*users[:150]), idx, mode="full", leaver_policy="disable")
    th = Thresholds(max_leavers=49, max_leavers_percent=None)
    hold = check_guard(plan, 200, 150, th)
    assert hold is not None
    assert hold.violations[0].value == 50
    assert hold.violations[0].limit == 49
    assert check_guard(plan, 200, 150, Thresholds(max_leavers=50, max_leavers_percent=None)) is None


def test_empty_extract_never_disables_the_company() -> None:
    idx, _ = _population(300)
    plan = plan_delta([], idx, mode="full", leaver_policy="disable")
    hold = check_guard(plan, 300, 0, Thresholds())
    assert hold is not None
    codes = {v.code for v in hold.violations}
    assert codes == {"too_many_leavers", "too_many_changes", "too_few_rows"}
    assert "0 rows" in hold.message
    assert hold.to_dict()["violations"][0]["code"] == "too_many_leavers"


def test_truncated_file_is_held_by_row_ratio_even_with_ignore_policy() -> None:
    idx, users = _population(100)
    plan = plan_delta(recs(*users[:49]), idx, mode="full", leaver_policy="ignore")
    hold = check_guard(plan, 100, 49, Thresholds())
    assert hold is not None
    assert [v.code for v in hold.violations] == ["too_few_rows"]
    assert check_guard(plan, 100, 50, Thresholds(max_leavers_percent=None)) is None


def test_guard_max_changes_and_rejected_share() -> None:
    idx, users = _population(100)
    rows = [{**u, "title": "New"} for u in users[:30]] + users[30:]
    plan = plan_delta(recs(*rows), idx, mode="full", leaver_policy="disable")
    assert check_guard(plan, 100, 100, Thresholds(max_changes_percent=30)) is None
    hold = check_guard(plan, 100, 100, Thresholds(max_changes_percent=25))
    assert hold is not None
    assert hold.code == "too_many_changes"
    assert "30.0 %" in hold.message
    lenient = Thresholds(max_changes_percent=None)
    hold = check_guard(plan, 100, 100, lenient.model_copy(update={"max_changes": 29}))
    assert hold is not None
    assert hold.code == "too_many_changes"
    hold = check_guard(plan, 100, 106, lenient, rejected_rows=6)
    assert hold is not None
    assert hold.code == "too_many_rejected"
    assert check_guard(plan, 100, 100, lenient, rejected_rows=5) is None


def test_first_run_is_not_held_by_percentages() -> None:
    users = [user(f"E{i}") for i in range(50)]
    plan = plan_delta(recs(*users), RecordIndex(source="s"), mode="full", leaver_policy="disable")
    assert check_guard(plan, 0, 50, Thresholds(max_changes_percent=1)) is None
    held = check_guard(plan, 0, 50, Thresholds(max_changes=10))
    assert held is not None
    assert held.code == "too_many_changes"


def test_delta_mode_guard_ignores_row_ratio() -> None:
    idx, users = _population(100)
    plan = plan_delta(recs(users[0]), idx, mode="delta", leaver_policy="disable")
    assert check_guard(plan, 100, 1, Thresholds()) is None


@pytest.mark.parametrize("leavers", [0, 1, 10])
def test_guard_percent_boundary_is_more_than(leavers: int) -> None:
    idx, users = _population(100)
    plan = plan_delta(recs(*users[leavers:]), idx, mode="full", leaver_policy="disable")
    assert check_guard(plan, 100, 100 - leavers, Thresholds()) is None


# -- deactivations: a file marking people inactive disables them like leavers -----------


def _terminated(u: dict[str, Any]) -> dict[str, Any]:
    return {**u, "active": False, "title": "Terminated"}


def test_active_to_inactive_movers_are_counted_as_deactivations() -> None:
    a, b, c, gone = user("A"), user("B"), user("C"), user("G", active=False)
    idx = index_of(a, b, c, gone)
    rows = recs(_terminated(a), {**b, "title": "Lead"}, c, {**gone, "title": "Still gone"})
    plan = plan_delta(rows, idx, mode="full", leaver_policy="disable")
    kinds = {ch.external_id: (ch.kind, ch.deactivation) for ch in plan.changes}
    assert kinds == {
        "A": (ChangeKind.MOVER, True),
        "B": (ChangeKind.MOVER, False),
        "G": (ChangeKind.MOVER, False),  # already inactive: not a deactivation
    }
    assert (plan.movers, plan.deactivations) == (3, 1)
    assert plan.counts()["movers"] == 3
    assert plan.counts()["deactivations"] == 1
    assert plan.disabling == 1
    # Still sent as an ordinary update, with the file's record.
    assert [ch.external_id for ch in plan.to_send] == ["A", "B", "G"]
    sent_a = next(ch for ch in plan.to_send if ch.external_id == "A")
    assert sent_a.data is not None
    assert sent_a.data["active"] is False


def test_inactive_joiner_and_reactivation_are_not_deactivations() -> None:
    gone = user("G", active=False)
    plan = plan_delta(
        recs(user("N", active=False), {**gone, "active": True}),
        index_of(gone),
        mode="full",
        leaver_policy="disable",
    )
    assert (plan.joiners, plan.movers, plan.deactivations) == (1, 1, 0)


def test_everyone_terminated_is_held_with_the_numbers() -> None:
    """The audit repro: 295 active records; the file keeps 292 of them, all Terminated,
    and drops 3. Before, 292 movers went through unheld and disabled the company."""
    idx, users = _population(295)
    rows = [_terminated(u) for u in users[:292]]
    plan = plan_delta(recs(*rows), idx, mode="full", leaver_policy="disable")
    assert (len(plan.leavers), plan.deactivations) == (3, 292)
    hold = check_guard(plan, idx.active_count(), len(rows), Thresholds())
    assert hold is not None
    assert hold.code == "too_many_leavers"
    leaver_pct = next(v for v in hold.violations if v.code == "too_many_leavers")
    assert leaver_pct.value == pytest.approx(100.0)
    assert leaver_pct.limit == 10.0
    assert (
        "3 leavers and 292 deactivations would disable 295 accounts: 100.0 % of 295 active"
        " records, more than the limit of 10 %" in hold.message
    )
    assert "292 movers (of which 292 deactivations)" in hold.message
    assert {v.code for v in hold.violations} == {"too_many_leavers", "too_many_changes"}


def test_renamed_status_column_in_delta_mode_is_held() -> None:
    """A garbled status column maps everyone inactive; a delta file has no leavers, but
    the deactivations alone trip the leaver limits."""
    idx, users = _population(40)
    plan = plan_delta(
        recs(*[{**u, "active": False} for u in users]),
        idx,
        mode="delta",
        leaver_policy="ignore",
    )
    assert plan.leavers == []
    assert plan.deactivations == 40
    hold = check_guard(plan, 40, 40, Thresholds(max_changes_percent=None))
    assert hold is not None
    assert [v.code for v in hold.violations] == ["too_many_leavers"]
    assert "0 leavers and 40 deactivations would disable 40 accounts" in hold.message


@pytest.mark.parametrize(
    ("leavers", "deactivations", "held"),
    [(0, 10, False), (0, 11, True), (5, 5, False), (5, 6, True), (6, 5, True), (10, 0, False)],
)
def test_leaver_percent_counts_leavers_plus_deactivations_at_the_boundary(
    leavers: int, deactivations: int, held: bool
) -> None:
    idx, users = _population(100)
    rows = [_terminated(u) for u in users[:deactivations]] + users[deactivations + leavers :]
    plan = plan_delta(recs(*rows), idx, mode="full", leaver_policy="disable")
    assert (len(plan.leavers), plan.deactivations) == (leavers, deactivations)
    hold = check_guard(plan, 100, len(rows), Thresholds())
    assert (hold is not None) is held
    if hold is not None:
        assert [v.code for v in hold.violations] == ["too_many_leavers"]
        assert (
            f"{leavers} leavers and {deactivations} deactivations would disable"
            f" {leavers + deactivations} accounts"
        ) in hold.message


@pytest.mark.parametrize(("disabling", "held"), [(500, False), (501, True)])
def test_absolute_leaver_limit_counts_deactivations(disabling: int, held: bool) -> None:
    idx, users = _population(10_000)
    rows = [_terminated(u) for u in users[: disabling - 1]] + users[disabling:]
    plan = plan_delta(recs(*rows), idx, mode="full", leaver_policy="disable")
    assert (len(plan.leavers), plan.deactivations) == (1, disabling - 1)
    hold = check_guard(plan, 10_000, len(rows), Thresholds())  # 5.01 %: only 500 applies
    assert (hold is not None) is held
    if hold is not None:
        assert hold.violations[0].value == disabling
        assert hold.violations[0].limit == 500
        assert f"would disable {disabling} accounts, more than the limit of 500" in hold.message


@pytest.mark.parametrize(("movers", "held"), [(25, False), (26, True)])
def test_default_max_changes_percent_is_25_at_the_boundary(movers: int, held: bool) -> None:
    idx, users = _population(100)
    rows = [{**u, "title": "Reorg"} for u in users[:movers]] + users[movers:]
    plan = plan_delta(recs(*rows), idx, mode="full", leaver_policy="disable")
    hold = check_guard(plan, 100, 100, Thresholds())
    assert (hold is not None) is held
    if hold is not None:
        assert [v.code for v in hold.violations] == ["too_many_changes"]
        assert f"{movers} records would change (0 joiners, {movers} movers, 0 leavers)" in (
            hold.message
        )
        assert "more than the limit of 25 %" in hold.message


def test_max_changes_percent_counts_joiners_leavers_and_deactivations() -> None:
    idx, users = _population(100)
    # 10 joiners + 8 movers (3 of them deactivations) + 6 leavers = 24: under 25 %.
    rows = (
        [_terminated(u) for u in users[:3]]
        + [{**u, "title": "Reorg"} for u in users[3:8]]
        + users[8:94]
        + [user(f"N{i}") for i in range(10)]
    )
    plan = plan_delta(recs(*rows), idx, mode="full", leaver_policy="disable")
    assert (plan.joiners, plan.movers, plan.deactivations, len(plan.leavers)) == (10, 8, 3, 6)
    assert check_guard(plan, 100, len(rows), Thresholds()) is None
    one_more = plan_delta(
        recs(*rows, user("N10")), idx, mode="full", leaver_policy="disable"
    )  # 25 changes: still not more than 25 %
    assert check_guard(one_more, 100, len(rows) + 1, Thresholds()) is None
    two_more = plan_delta(
        recs(*rows, user("N10"), user("N11")), idx, mode="full", leaver_policy="disable"
    )
    hold = check_guard(two_more, 100, len(rows) + 2, Thresholds())
    assert hold is not None
    assert hold.code == "too_many_changes"
    assert (
        "26 records would change (12 joiners, 8 movers (of which 3 deactivations), 6 leavers)"
        in (hold.message)
    )


def test_first_run_keeps_absolute_limits_only() -> None:
    """Percent limits need a population; the first run has none, absolute limits hold."""
    users = [user(f"E{i}") for i in range(600)]
    plan = plan_delta(recs(*users), RecordIndex(source="s"), mode="full", leaver_policy="disable")
    assert check_guard(plan, 0, 600, Thresholds()) is None  # 600 joiners: no % limit applies
    held = check_guard(plan, 0, 600, Thresholds(max_changes=599))
    assert held is not None
    assert held.code == "too_many_changes"
    assert "600 records would change" in held.message


def test_guard_signature_and_counts_stay_backward_compatible() -> None:
    idx, users = _population(10)
    plan = plan_delta(recs(*users[:9]), idx, mode="full", leaver_policy="disable")
    counts = plan.counts()
    for key in ("rows", "joiners", "movers", "leavers", "unchanged", "duplicates"):
        assert key in counts
    assert counts["deactivations"] == 0
    assert check_guard(plan, 10, 9, Thresholds(), rejected_rows=0) is None
