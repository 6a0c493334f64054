"""The record builder (one per mapping, rows by name or by position) builds exactly the record
the mapping describes, key order included, and nothing in a mapping file becomes code."""

from __future__ import annotations

from typing import Any

import pytest

from connector import mapping_run
from connector.errors import TransformError
from connector.mapping import load_mapping
from connector.scim import CORE_USER_SCHEMA, ENTERPRISE_USER_SCHEMA

MAPPING = """
version: 1
externalId: "Id'); import os #"
core:
  name:
    familyName: "Last\\"\\n"
    givenName: First
  active:
    column: Status
    transforms: [lower, {equals: active}]
  userName: First
  addresses:
    - type: "wo'rk"
      locality: City
      postalCode: Zip
  phoneNumbers:
    - type: work
      value: Phone
enterprise:
  department: Dept
  manager:
    value: Mgr
extensions:
  urn:ietf:params:scim:schemas:extension:contoso:1.0:User:
    HireDate: Hire
"""


CUSTOM = "urn:ietf:params:scim:schemas:extension:contoso:1.0:User"


def _expected(row: dict[str, str], ext: str) -> dict[str, Any]:
    """MAPPING written out by hand: empty cells omitted, blocks only when something is set."""
    data: dict[str, Any] = {"schemas": [CORE_USER_SCHEMA, ENTERPRISE_USER_SCHEMA]}
    data["externalId"] = ext
    name = {k: row[c] for k, c in (("familyName", 'Last"\n'), ("givenName", "First")) if row[c]}
    if name:
        data["name"] = name
    data["active"] = row["Status"].lower() == "active"
    if row["First"]:
        data["userName"] = row["First"]
    address = {k: row[c] for k, c in (("locality", "City"), ("postalCode", "Zip")) if row[c]}
    if address:
        data["addresses"] = [address | {"type": "wo'rk"}]
    if row["Phone"]:
        data["phoneNumbers"] = [{"value": row["Phone"], "type": "work"}]
    enterprise: dict[str, Any] = {}
    if row["Dept"]:
        enterprise["department"] = row["Dept"]
    if row["Mgr"]:
        enterprise["manager"] = {"value": row["Mgr"]}
    if enterprise:
        data[ENTERPRISE_USER_SCHEMA] = enterprise
    if row["Hire"]:
        data[CUSTOM] = {"HireDate": row["Hire"]}
        data["schemas"] = [*data["schemas"], CUSTOM]
    return data


def test_records_by_name_and_by_position_match_the_mapping_for_every_empty_pattern() -> None:
    m = load_mapping(MAPPING)
    cols = list(m.required_columns)
    bound = m.bind(cols)
    assert bound.__code__.co_filename == "<mapping>"  # the generated record builder
    full = (1 << len(cols)) - 1
    for mask in [*range(0, full, 7), full]:  # every column empty and set, in many mixes
        row = {c: (f"v{i}" if mask >> i & 1 else "") for i, c in enumerate(cols)}
        row["Status"] = "Active" if mask & 1 else "gone"
        as_list = [row[c] for c in cols]
        ext = row[m.external_id_column] or "x"
        want = _expected(row, ext)
        got = bound(as_list, ext)
        assert got == want
        assert list(got) == list(want)  # same key order, so the same JSON bytes
        for k in ("name", ENTERPRISE_USER_SCHEMA):
            if k in want:
                assert list(got[k]) == list(want[k])
        by_name = m.apply(row, ext)
        assert by_name == want
        assert list(by_name) == list(want)


def test_column_and_attribute_names_are_data_not_code() -> None:
    m = load_mapping(MAPPING)
    out = m.apply(dict.fromkeys(m.required_columns, "x") | {"Status": "ACTIVE"}, "e1")
    assert out["name"] == {"familyName": "x", "givenName": "x"}
    assert out["addresses"] == [{"locality": "x", "postalCode": "x", "type": "wo'rk"}]
    assert out["active"] is True


@pytest.mark.parametrize("when", ["", ", when: {column: Id, not_empty: true}"])
@pytest.mark.parametrize(
    ("block", "target"),
    [("core:\n  title", "title"), ("extensions:\n  urn:x:hr:1.0:User:\n    Hire", "urn:x:hr")],
)
def test_a_failing_transform_names_its_attribute_in_both_row_forms(
    when: str, block: str, target: str
) -> None:
    active = "  active: {const: true}\n"  # every mapping maps active (issue #16)
    head = f"core:\n{active}" + block.removeprefix("core:\n")
    m = load_mapping(
        f"version: 1\nexternalId: Id\n{head}: {{column: Hire, transforms: [date]{when}}}\n"
    )
    by_position = m.bind(["Id", "Hire"])
    runs = [
        lambda: m.apply({"Id": "1", "Hire": "soon"}, "1"),
        lambda: by_position(["1", "soon"], "1"),
    ]
    for run in runs:
        with pytest.raises(TransformError, match="not a valid date") as info:
            run()
        assert str(info.value).startswith(f"{target}")
        assert info.value.reason_code == "invalid_value"


def test_the_generated_source_holds_no_text_from_the_mapping_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sources: list[str] = []

    def spy(source: str, *args: Any) -> Any:
        sources.append(source)
        return compile(source, *args)

    monkeypatch.setattr(mapping_run, "compile", spy, raising=False)
    m = load_mapping(MAPPING)
    assert sources == []  # the by-name builder is made on first use
    m.apply(dict.fromkeys(m.required_columns, "x"), "x")
    m.bind(list(reversed(m.required_columns)))
    assert len(sources) == 2  # by name (first apply) and by position (bind)
    names = [*m.required_columns, *m.targets, "wo'rk", "familyName", "HireDate", CUSTOM]
    for source in sources:
        assert not [n for n in names if n in source]


WRITTEN_OUT_AND_CLOSURES = """
version: 1
externalId: Id
core:
  active: {const: true}
  displayName:
    coalesce: [{template: "{A} {B}"}, {column: C}, {template: "{D}!"}]
  nickName:
    coalesce: [{template: "{A} {B}"}, {column: C}, {template: "{D}!"}]
    when: {column: Id, not_empty: true}
  title: {column: E, transforms: [trim, lower, {replace: {pattern: x, with: y}}]}
  userType:
    column: E
    transforms: [trim, lower, {replace: {pattern: x, with: y}}]
    send_null: true
  emails:
    - value: {column: E, transforms: [lower]}
      primary: true
  phoneNumbers:
    - value: {column: E, transforms: [lower]}
      primary: true
      when: {column: Id, not_empty: true}
"""


def test_written_out_values_equal_their_closures_for_every_empty_pattern() -> None:
    """displayName/title/emails are written out; nickName/userType/phoneNumbers are closures."""
    m = load_mapping(WRITTEN_OUT_AND_CLOSURES)
    cols = ["Id", "A", "B", "C", "D", "E"]
    bound = m.bind(cols)
    for mask in range(1 << 5):
        row = ["1"] + [f" X{c} " if mask >> i & 1 else "" for i, c in enumerate("ABCDE")]
        got = bound(row, "1")
        assert got.get("displayName") == got.get("nickName")
        assert got.get("title") == got.get("userType")
        assert got.get("emails") == got.get("phoneNumbers")
        first = f"{row[1]} {row[2]}" if row[1] and row[2] else None
        assert got.get("displayName") == (first or row[3] or (f"{row[4]}!" if row[4] else None))
        if row[5]:
            assert got["title"] == "ye"
            assert got["emails"] == [{"value": " xe ", "type": "work", "primary": True}]
        else:
            assert "title" not in got
            assert got["userType"] is None  # send_null


def test_a_container_filled_in_two_runs_keeps_the_mapping_order() -> None:
    m = load_mapping(
        "version: 1\nexternalId: Id\ncore:\n  active: {const: true}\n"
        "  name: {givenName: G}\n  title: T\n  name.familyName: F\n"
        "enterprise:\n  department: D\n  manager: M\n"
    )
    cols = ["Id", "G", "T", "F", "D", "M"]
    bound = m.bind(cols)
    full = bound(["1", "g", "t", "f", "d", "m"], "1")
    assert list(full) == [
        "schemas",
        "externalId",
        "active",
        "name",
        "title",
        ENTERPRISE_USER_SCHEMA,
    ]
    assert full["name"] == {"givenName": "g", "familyName": "f"}
    assert full[ENTERPRISE_USER_SCHEMA] == {"department": "d", "manager": {"value": "m"}}
    only_late = bound(["1", "", "t", "f", "", "m"], "1")
    assert only_late["name"] == {"familyName": "f"}
    assert only_late[ENTERPRISE_USER_SCHEMA] == {"manager": {"value": "m"}}
    assert "name" not in bound(["1", "", "t", "", "", ""], "1")


def test_schemas_list_each_custom_namespace_the_record_holds_in_mapping_order() -> None:
    m = load_mapping(
        "version: 1\nexternalId: Id\ncore:\n  active: {const: true}\nextensions:\n"
        "  urn:x:a:1.0:User: {A: A}\n  urn:x:b:1.0:User: {B: B}\n"
    )
    bound = m.bind(["Id", "A", "B"])
    base = [CORE_USER_SCHEMA, ENTERPRISE_USER_SCHEMA]
    assert bound(["1", "", ""], "1")["schemas"] == base
    assert bound(["1", "a", ""], "1")["schemas"] == [*base, "urn:x:a:1.0:User"]
    assert bound(["1", "", "b"], "1")["schemas"] == [*base, "urn:x:b:1.0:User"]
    assert bound(["1", "a", "b"], "1")["schemas"] == [*base, "urn:x:a:1.0:User", "urn:x:b:1.0:User"]


def test_remembered_lookup_and_date_results_answer_repeats_as_the_transforms_do() -> None:
    m = load_mapping(
        "version: 1\nexternalId: Id\ncore:\n  active:\n    column: Status\n"
        "    transforms: [{lookup: {table: {Active: true, Gone: false}, ignore_case: true}}]\n"
        "  title: {column: Hire, transforms: [{date: {formats: ['%Y-%m-%d']}}]}\n"
    )
    apply = m.bind(["Id", "Status", "Hire"])
    for _ in range(2):  # the second round is answered from what the first remembered
        assert apply(["1", "ACTIVE", "2024-01-02"], "1")["active"] is True
        assert apply(["2", "gone", "2024-01-02"], "2")["active"] is False
        assert apply(["3", "Active", "2024-01-03"], "3")["title"] == "2024-01-03T00:00:00+00:00"
        for bad in (["4", "Retired", "2024-01-02"], ["5", "Active", "2024-13-01"]):
            with pytest.raises(TransformError) as info:
                apply(bad, bad[0])
            assert info.value.reason_code == "invalid_value"
