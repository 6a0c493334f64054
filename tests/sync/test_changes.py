"""Who a run changes: disables, movers' changed attributes, held.csv (pure)."""

from __future__ import annotations

import csv
import io
from typing import Any

from connector.sync.changes import (
    AttributeChange,
    build_held_csv,
    change_view,
    diff_payloads,
    display_name,
    flatten_payload,
    iter_held_csv,
    short_attribute,
)
from connector.sync.plans import PlannedOp

ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def user(ext: str, *, active: bool = True, title: str = "Engineer", **more: Any) -> dict[str, Any]:
    return {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "externalId": ext,
        "userName": f"{ext}@contoso.test",
        "name": {"givenName": "Ada", "familyName": f"L{ext}"},
        "active": active,
        "title": title,
        "emails": [{"type": "work", "value": f"{ext}@contoso.test"}],
        ENT: {"department": "Sales", "manager": {"value": "M1"}},
        **more,
    }


def op(kind: str, ext: str, data: dict[str, Any], *, prev: str | None = "run-1") -> PlannedOp:
    return PlannedOp(kind, ext, 2, b"\0" * 16, bool(data.get("active", True)), data, prev)


def test_flatten_names_attributes_by_their_scim_path() -> None:
    flat = flatten_payload(user("E1"))
    assert "schemas" not in flat
    assert flat["name.givenName"] == "Ada"
    assert flat['emails[type eq "work"].value'] == "E1@contoso.test"
    assert flat[f"{ENT}:department"] == "Sales"
    assert flat[f"{ENT}:manager.value"] == "M1"
    assert flat["active"] == "true"


def test_diff_lists_changed_added_and_removed_attributes_with_old_and_new_values() -> None:
    old = user("E1", title="Engineer", nickName="Ad")
    new = user("E1", title="Lead")
    new[ENT] = {"department": "Legal", "manager": {"value": "M1"}}
    changes = diff_payloads(old, new)
    assert AttributeChange("title", "Engineer", "Lead") in changes
    assert AttributeChange(f"{ENT}:department", "Sales", "Legal") in changes
    assert AttributeChange("nickName", "Ad", None) in changes
    assert len(changes) == 3


def test_a_leaver_and_a_deactivated_mover_are_disables_an_inactive_record_is_not() -> None:
    ops = [
        op("leaver", "L1", user("L1", active=False)),
        op("mover", "D1", user("D1", active=False)),
        op("mover", "M1", user("M1", title="Lead")),
        op("mover", "Z1", user("Z1", active=False, title="Lead")),
        op("joiner", "J1", user("J1"), prev=None),
    ]
    previous = {
        "L1": user("L1"),
        "D1": user("D1"),
        "M1": user("M1"),
        "Z1": user("Z1", active=False),
    }
    view = change_view(ops, previous)
    assert [r.external_id for r in view.disables] == ["L1", "D1"]
    assert [r.external_id for r in view.movers] == ["M1", "Z1"]
    assert view.movers[0].changes == (AttributeChange("title", "Engineer", "Lead"),)
    assert view.counts == {"disable": 2, "update": 2, "create": 1, "re-send": 0}
    assert view.disables[0].display_name == "Ada LL1"


def test_a_record_without_a_previous_payload_is_still_listed() -> None:
    view = change_view([op("leaver", "L9", user("L9", active=False))], {})
    assert [r.external_id for r in view.disables] == ["L9"]


def test_display_name_prefers_display_name_then_given_and_family_then_user_name() -> None:
    assert display_name({"displayName": "Ada L", "name": {"givenName": "X"}}) == "Ada L"
    assert display_name({"name": {"givenName": "Ada", "familyName": "L"}}) == "Ada L"
    assert display_name({"userName": "ada@x"}) == "ada@x"
    assert display_name(None) == ""


def test_short_attribute_cuts_extension_urns_to_their_name() -> None:
    assert short_attribute(f"{ENT}:department") == "enterprise:department"
    assert short_attribute("name.givenName") == "name.givenName"


def test_held_csv_has_a_row_per_disable_and_per_changed_attribute_formula_safe() -> None:
    ops = [
        op("leaver", "=L1", user("=L1", active=False)),
        op("mover", "M1", user("M1", title="+Lead")),
    ]
    held = build_held_csv(ops, {"=L1": user("=L1"), "M1": user("M1")})
    rows = list(csv.reader(io.StringIO(held.decode("utf-8"))))
    assert rows[0] == [
        "change",
        "externalId",
        "displayName",
        "action",
        "attribute",
        "oldValue",
        "newValue",
    ]
    assert rows[1] == ["disable", "'=L1", "Ada L=L1", "leaver", "active", "true", "false"]
    assert rows[2] == ["update", "M1", "Ada LM1", "mover", "title", "Engineer", "'+Lead"]
    assert len(rows) == 3


def _mass_change() -> tuple[list[PlannedOp], dict[str, dict[str, Any]]]:
    """Five leavers, then five movers with two changed attributes each."""
    ops = [op("leaver", f"L{i}", user(f"L{i}", active=False)) for i in range(5)]
    ops += [op("mover", f"M{i}", user(f"M{i}", title="Lead", nickName="Ad")) for i in range(5)]
    previous = {o.external_id: user(o.external_id) for o in ops}
    return ops, previous


def test_a_bounded_view_lists_only_the_first_records_but_counts_them_all() -> None:
    ops, previous = _mass_change()
    view = change_view(ops, previous, keep=3)
    assert [r.external_id for r in view.disables] == ["L0", "L1", "L2"]
    assert [r.external_id for r in view.movers] == ["M0", "M1"]  # 4 attributes reach 3
    assert view.counts == {"disable": 5, "update": 5, "create": 0, "re-send": 0}
    assert view.attributes == 10
    assert view.total == 10
    assert change_view(ops, previous) == change_view(ops, previous, keep=None)
    assert len(change_view(ops, previous).movers) == 5


def test_a_view_bounded_to_nothing_still_counts_every_change() -> None:
    ops, previous = _mass_change()
    view = change_view(ops, previous, keep=0)
    assert view.disables == []
    assert view.movers == []
    assert view.counts == change_view(ops, previous).counts
    assert view.attributes == 10


def test_held_csv_lists_every_record_whatever_a_view_keeps() -> None:
    ops, previous = _mass_change()
    rows = list(csv.reader(io.StringIO(build_held_csv(ops, previous).decode("utf-8"))))
    assert [r[1] for r in rows[1:6]] == [f"L{i}" for i in range(5)]
    assert [(r[1], r[4]) for r in rows[6:8]] == [("M0", "title"), ("M0", "nickName")]
    assert len(rows) == 1 + 5 + 10


def test_held_csv_comes_in_parts_that_join_to_the_one_file() -> None:
    ops, previous = _mass_change()
    parts = list(iter_held_csv(ops, previous))
    assert parts[0] == b"change,externalId,displayName,action,attribute,oldValue,newValue\r\n"
    assert b"".join(parts) == build_held_csv(ops, previous)
