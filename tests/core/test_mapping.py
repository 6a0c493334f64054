"""The mapping language: loading (every problem with its line), safety, and row → SCIM user."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.errors import MappingError, TransformError
from connector.mapping import Mapping, check_mapping, load_mapping
from connector.scim import CORE_USER_SCHEMA, ENTERPRISE_USER_SCHEMA

from .helpers import CSV2SCIM_MAPPING, DEFAULT_MAPPING

ENT = ENTERPRISE_USER_SCHEMA
CUSTOM = "urn:ietf:params:scim:schemas:extension:contoso:1.0:User"


def m(text: str) -> Mapping:
    return load_mapping(textwrap.dedent(text).lstrip("\n"))


def problems(text: str) -> list[str]:
    with pytest.raises(MappingError) as info:
        m(text)
    return info.value.problems


BASIC = """
externalId: Id
core:
  userName: Upn
  active: {column: Status, transforms: [{equals: Active}]}
"""


def test_bundled_mappings_load_clean() -> None:
    for path in (DEFAULT_MAPPING, CSV2SCIM_MAPPING):
        mapping = load_mapping(path)
        assert mapping.warnings == ()
        assert mapping.source == str(path)


def test_default_mapping_interface() -> None:
    mapping = load_mapping(DEFAULT_MAPPING)
    assert mapping.external_id_column == "EmployeeId"
    assert mapping.custom_namespaces == (CUSTOM,)
    assert mapping.custom_attribute_names() == [f"{CUSTOM}:HireDate", f"{CUSTOM}:LeaveDate"]
    assert {"EmployeeId", "Status", "ManagerId", "HireDate", "LeaveDate"} <= set(
        mapping.required_columns
    )
    p = mapping.extract_profile
    assert (p.encoding, p.delimiter, p.max_field_bytes, p.max_rejected_share, p.id_column) == (
        "utf-8",
        ",",
        4096,
        0.05,
        "EmployeeId",
    )
    assert mapping.schemas == [CORE_USER_SCHEMA, ENT, CUSTOM]
    lines = DEFAULT_MAPPING.read_text(encoding="utf-8").splitlines()
    assert lines[mapping.column_lines["EmployeeId"] - 1].startswith("externalId: EmployeeId")


def test_all_problems_are_listed_with_lines() -> None:
    found = problems(
        """
        externalId: Id
        core:
          userNmae: Upn
          department: Dept
          active: {column: Status, transforms: [{equals: Active}, bogus]}
          name.nickname: X
          emails:
            - value: Mail
              kind: home
        enterprise:
          manager: {column: Mgr, unknown: 1}
        extensions:
          notaurn:
            HireDate: Hire
          "urn:x:y:User":
            "Hire Date": Hire
        colour: blue
        """
    )
    text = "\n".join(found)
    for line, fragment in [
        (3, "'userNmae' is not a SCIM core User attribute (did you mean 'userName'?)"),
        (4, "it is an enterprise attribute"),
        (5, "unknown transform 'bogus'"),
        (6, "name has no sub-attribute 'nickname'"),
        (9, "emails has no sub-attribute 'kind'"),
        (11, "unknown keys unknown"),
        (14, "'notaurn' is not a namespace URN"),
        (16, "custom attribute name 'Hire Date'"),
        (17, "unknown top-level key 'colour'"),
    ]:
        assert f"<mapping>:{line}: " in text, (line, text)
        assert fragment in text, (fragment, text)
    assert len(found) == 9


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("externalId: Id\ncore: {userName: !!python/object/apply:os.system ['id']}\n", "not"),
        ("externalId: Id\ncore: !!python/object:os.system {userName: U}\n", "not allowed"),
        ("externalId: Id\ncore: &a {userName: U}\nenterprise: *a\n", "aliases are not supported"),
        ("externalId: Id\nexternalId: Other\n", "duplicate key 'externalId'"),
        ("externalId: Id\ncore: [\n", "not valid YAML"),
        ("", "empty"),
        ("- a\n- b\n", "top level must be a block"),
    ],
)
def test_unsafe_or_malformed_yaml_is_refused(text: str, fragment: str) -> None:
    with pytest.raises(MappingError) as info:
        load_mapping(text + "\n")
    assert fragment in str(info.value)


def test_yaml_12_booleans_only() -> None:
    mapping = m(
        """
        externalId: Id
        core:
          userName: U
          active: {column: S, transforms: [{lookup: {Yes: true, No: false}}]}
        """
    )
    assert mapping.apply({"Id": "1", "U": "u", "S": "Yes"}, "1")["active"] is True
    assert mapping.apply({"Id": "1", "U": "u", "S": "No"}, "1")["active"] is False


def test_external_id_must_be_a_plain_column() -> None:
    found = problems("externalId: {template: '{A}'}\n")
    assert any("externalId must be a plain column" in p for p in found)
    assert any("externalId is required" in p for p in problems("core: {userName: U}\n"))
    ok = m("externalId: {column: Id}\ncore: {userName: U, active: {const: true}}\n")
    assert ok.external_id_column == "Id"


def test_warnings_for_non_work_types() -> None:
    mapping = m(
        """
        externalId: Id
        core:
          userName: U
          active: {const: true}
          emails:
            - value: Mail
              type: home
        """
    )
    assert any(
        "<mapping>:7:" in w and "ignores other values" in w and 'emails[type eq "work"]' in w
        for w in mapping.warnings
    )
    out = mapping.apply({"Id": "1", "U": "u", "Mail": "a@b"}, "1")
    assert out["emails"] == [{"value": "a@b", "type": "home"}]


def test_output_order_schemas_external_id_then_mapping_order() -> None:
    mapping = load_mapping(DEFAULT_MAPPING)
    row = dict.fromkeys(mapping.required_columns, "") | {
        "EmployeeId": "42",
        "WorkEmail": "Zoe.Nowak@Contoso.com",
        "FirstName": "Zoë",
        "LastName": "Nowak",
        "Status": "Active",
        "ManagerId": "7",
        "HireDate": "2021-05-01",
        "Department": "IT",
    }
    out = mapping.apply(row, "42")
    assert list(out) == [
        "schemas", "externalId", "userName", "name", "displayName", "active", "emails", ENT, CUSTOM,
    ]  # fmt: skip
    assert out["schemas"] == [CORE_USER_SCHEMA, ENT, CUSTOM]
    assert out["userName"] == "zoe.nowak@contoso.com"
    assert out["displayName"] == "Zoë Nowak"  # coalesce falls back to FirstName
    assert out["emails"] == [{"value": "zoe.nowak@contoso.com", "type": "work", "primary": True}]
    assert out[ENT] == {"employeeNumber": "42", "department": "IT", "manager": {"value": "7"}}
    assert out[CUSTOM] == {"HireDate": "2021-05-01T00:00:00+00:00"}


def test_custom_namespace_listed_only_when_used() -> None:
    mapping = load_mapping(DEFAULT_MAPPING)
    row = dict.fromkeys(mapping.required_columns, "") | {"EmployeeId": "1", "Status": "Inactive"}
    out = mapping.apply(row, "1")
    assert out["schemas"] == [CORE_USER_SCHEMA, ENT]
    assert CUSTOM not in out
    assert out["active"] is False


def test_send_null_and_omission() -> None:
    mapping = m(
        """
        externalId: Id
        core:
          userName: U
          active: {const: true}
          title: {column: T, send_null: true}
          nickName: N
        enterprise:
          department: {column: D, send_null: true}
        """
    )
    out = mapping.apply({"Id": "1", "U": "u", "T": "", "N": "", "D": ""}, "1")
    assert out["title"] is None
    assert "nickName" not in out
    assert out[ENT] == {"department": None}


def test_active_must_end_boolean() -> None:
    mapping = m("externalId: Id\ncore: {userName: U, active: S}\n")
    assert any("only the values true/false" in w for w in mapping.warnings)
    assert mapping.apply({"Id": "1", "U": "u", "S": "TRUE"}, "1")["active"] is True
    with pytest.raises(TransformError) as info:
        mapping.apply({"Id": "1", "U": "u", "S": "Active"}, "1")
    assert info.value.reason_code == "invalid_value"
    assert "active must be true or false" in str(info.value)
    with pytest.raises(TransformError, match="active is empty"):
        mapping.apply({"Id": "1", "U": "u", "S": ""}, "1")
    defaulted = m(
        "externalId: Id\ncore: {userName: U, active: "
        "{column: S, transforms: [{equals: A}, {default: false}]}}\n"
    )
    assert defaulted.apply({"Id": "1", "U": "u", "S": ""}, "1")["active"] is False
    assert any(
        "cannot send null" in p
        for p in problems(
            "externalId: Id\ncore: {userName: U, active: {column: S, send_null: true}}\n"
        )
    )


def test_template_when_coalesce_and_constants() -> None:
    mapping = m(
        """
        externalId: Id
        core:
          userName:
            template: "{First}.{Last}@contoso.com"
            transforms: [strip_diacritics, lower, {replace: {pattern: "[^a-z0-9.@-]", with: ""}}]
          displayName: {template: "{{{Last}}}"}
          title: {column: Title, when: {column: Type, equals: Employee}}
          userType: {coalesce: [{column: Type}, {const: Worker}]}
          preferredLanguage: {const: en-US}
          active: {const: true}
        """
    )
    row = {"Id": "1", "First": "Łukasz", "Last": "O'Brien", "Title": "Chef", "Type": "Employee"}
    out = mapping.apply(row, "1")
    assert out["userName"] == "lukasz.obrien@contoso.com"
    assert out["displayName"] == "{O'Brien}"
    assert out["title"] == "Chef"
    assert out["preferredLanguage"] == "en-US"
    other = mapping.apply(row | {"Type": "", "Last": ""}, "1")
    assert "userName" not in other  # a template with an empty part is omitted, never half-filled
    assert "title" not in other
    assert other["userType"] == "Worker"


@pytest.mark.parametrize(
    ("yaml_text", "fragment"),
    [
        ("core: {userName: {template: '{A'}}", "unmatched brace"),
        ("core: {userName: {template: '{}'}}", "empty {} placeholder"),
        ("core: {userName: {column: A, const: B}}", "exactly one of"),
        ("core: {userName: {column: A, when: {column: B}}}", "exactly one test"),
        ("core: {userName: {column: A, when: {column: B, equals: [1, 2]}}}", "use in/not_in"),
        ("core: {userName: {coalesce: [A]}}", "two or more"),
        ("core: {userName: {column: A, send_null: maybe}}", "send_null must be true or false"),
        ("core: {name: Full}", "name is complex"),
        ("core: {emails: [{value: M, primary: yes}]}", "primary must be true or false"),
        ("core: {emails: [{value: {column: M, send_null: true}}]}", "single-valued"),
        ("core: {emails: [{type: work}]}", "maps no sub-attribute"),
        ("core: {externalId: X}", "set at the top level"),
        ("enterprise: {title: X}", "it is a core attribute"),
        ("core: {userName: A, name.givenName: B, name: {givenName: C}}", "mapped twice"),
        (f"extensions: {{'{ENT}': {{A: B}}}}", "built in"),
        ("extract: {delimiter: ';;'}", "delimiter must be one character"),
        ("extract: {encodng: latin1}", "did you mean 'encoding'"),
        ("extract: {max_rejected_share: lots}", "wrong type"),
        ("version: 2", "version must be 1"),
    ],
)
def test_mapping_errors(yaml_text: str, fragment: str) -> None:
    found = problems("externalId: Id\n" + yaml_text + "\n")
    assert any(fragment in p for p in found), found
    assert all(p.startswith("<mapping>:") for p in found)


def test_manager_forms_and_custom_types() -> None:
    for form in ("manager: M", "manager.value: M", "manager: {value: M}", "manager: {column: M}"):
        text = "externalId: Id\ncore: {userName: U, active: {const: true}}\n"
        mapping = m(text + f"enterprise: {{{form}}}\n")
        out = mapping.apply({"Id": "1", "U": "u", "M": "9"}, "1")
        assert out[ENT] == {"manager": {"value": "9"}}
    mapping = m(
        f"""
        externalId: Id
        core: {{userName: U, active: {{const: true}}}}
        extensions:
          "{CUSTOM}":
            OnLeave: {{column: L, transforms: [{{equals: "True"}}]}}
        """
    )
    assert mapping.apply({"Id": "1", "U": "u", "L": "True"}, "1")[CUSTOM] == {"OnLeave": True}


def test_string_targets_get_text_and_lists_are_refused() -> None:
    mapping = m(
        """
        externalId: Id
        core:
          userName: U
          active: {const: true}
          title: {column: T, transforms: [{lookup: {a: 1}}]}
          nickName: {column: N, transforms: [{split: ","}]}
        """
    )
    assert mapping.apply({"Id": "1", "U": "u", "T": "a", "N": ""}, "1")["title"] == "1"
    with pytest.raises(TransformError, match="nickName ended as a list"):
        mapping.apply({"Id": "1", "U": "u", "T": "a", "N": "x,y"}, "1")


def test_load_from_path_and_missing_file(tmp_path: Path) -> None:
    p = tmp_path / "m.yaml"
    p.write_text(BASIC, encoding="utf-8")
    assert load_mapping(p).external_id_column == "Id"
    assert load_mapping(str(p)).external_id_column == "Id"
    with pytest.raises(MappingError, match="not found"):
        load_mapping(tmp_path / "missing.yaml")


row_text = st.text(st.characters(codec="utf-8"), max_size=10).map(str.strip)


@settings(max_examples=150, deadline=None)
@given(
    values=st.fixed_dictionaries(
        dict.fromkeys(load_mapping(DEFAULT_MAPPING).required_columns, row_text)
    ),
    status=st.sampled_from(["Active", "On leave", "Inactive", "Terminated"]),
    ext=st.text(min_size=1, max_size=8).map(str.strip).filter(bool),
)
def test_property_default_mapping_output_shape(
    values: dict[str, str], status: str, ext: str
) -> None:
    mapping = load_mapping(DEFAULT_MAPPING)
    values = values | {"Status": status, "HireDate": "", "LeaveDate": ""}
    out: dict[str, Any] = mapping.apply(values, ext)
    keys = list(out)
    assert keys[:2] == ["schemas", "externalId"]
    assert out["externalId"] == ext
    assert out["schemas"][:2] == [CORE_USER_SCHEMA, ENT]
    assert isinstance(out["active"], bool)
    assert out["active"] == (status in ("Active", "On leave"))

    def leaves(v: Any) -> list[Any]:
        if isinstance(v, dict):
            return [x for k, val in v.items() if k != "schemas" for x in leaves(val)]
        if isinstance(v, list):
            return [x for val in v for x in leaves(val)]
        return [v]

    assert all(v not in ("", None) for v in leaves(out))  # empties omitted, nothing null
    for item in out.get("emails", []) + out.get("phoneNumbers", []) + out.get("addresses", []):
        assert item["type"] == "work"
    if values["Department"]:
        assert out[ENT]["department"] == values["Department"]
    else:
        assert "department" not in out.get(ENT, {})
    if values["ManagerId"]:
        assert out[ENT]["manager"] == {"value": values["ManagerId"]}


@pytest.mark.parametrize(
    ("status", "active"),
    [("Active", True), ("active", True), ("ACTIVE", True), ("Inactive", False), ("x", False)],
)
def test_csv2scim_status_compares_ignoring_case_like_powershell_eq(
    status: str, active: bool
) -> None:
    """CSV2SCIM maps active with ``-eq 'Active'``, which ignores case in PowerShell."""
    mapping = load_mapping(CSV2SCIM_MAPPING)
    values = dict.fromkeys(mapping.required_columns, "x")
    values["WorkerStatus"] = status
    assert mapping.apply(values, "1")["active"] is active


@pytest.mark.parametrize("status", ["Active", "active", "On Leave", "TERMINATED"])
def test_default_mapping_status_lookup_ignores_case(status: str) -> None:
    mapping = load_mapping(DEFAULT_MAPPING)
    values = dict.fromkeys(mapping.required_columns, "")
    values["Status"] = status
    assert mapping.apply(values, "1")["active"] is (status.lower() != "terminated")


def test_without_columns_leaves_out_the_attributes_reading_them() -> None:
    mapping = load_mapping(DEFAULT_MAPPING)
    usable = mapping.without_columns(["WorkEmail", "HireDate"])
    assert "userName" not in usable.targets
    assert "emails" not in usable.targets
    assert "urn:ietf:params:scim:schemas:extension:contoso:1.0:User:HireDate" not in usable.targets
    assert "displayName" in usable.targets
    assert not {"WorkEmail", "HireDate"} & set(usable.required_columns)
    with pytest.raises(ValueError, match="externalId column"):
        mapping.without_columns(["EmployeeId"])


def test_partial_check_keeps_what_compiled_and_load_still_refuses() -> None:
    text = "externalId: Id\ncore:\n  userName: U\n  active: {const: true}\n  titel: T\n"
    partial, problems, _ = check_mapping(text, partial=True)
    assert partial is not None
    assert partial.targets == ("userName", "active")
    assert len(problems) == 1
    assert check_mapping(text)[0] is None
    with pytest.raises(MappingError):
        load_mapping(text)


@pytest.mark.parametrize("codec", ["rot13", "base64", "hex", "zlib_codec"])
def test_an_extract_encoding_that_is_not_text_is_a_problem_on_its_line(codec: str) -> None:
    text = (
        "externalId: Id\ncore:\n  active: {const: true}\n"
        f"extract:\n  delimiter: ','\n  encoding: {codec}\n"
    )
    found = problems(text)
    assert found == [f"<mapping>:6: extract.encoding: {codec!r} is not a text encoding"
                     " (e.g. utf-8, cp1252, latin-1)"]  # fmt: skip
