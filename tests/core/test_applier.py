"""The generated per-mapping record builder must match the setter-by-setter one exactly."""

from __future__ import annotations

from typing import Any

from connector.mapping import _BASE_SCHEMAS, Mapping, load_mapping

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


def _by_setters(m: Mapping, values: Any, ext: str) -> dict[str, Any]:
    data: dict[str, Any] = {"schemas": _BASE_SCHEMAS, "externalId": ext}
    for step in m._setters:
        step(values, data)
    if m.custom_namespaces:
        data["schemas"] = [*_BASE_SCHEMAS, *(ns for ns in m.custom_namespaces if ns in data)]
    return data


def test_generated_builder_matches_setters_for_every_empty_pattern() -> None:
    m = load_mapping(MAPPING)
    cols = list(m.required_columns)
    bound = m.bind(cols)
    assert bound is not m.apply  # the generated function is in use
    full = (1 << len(cols)) - 1
    for mask in [*range(0, full, 7), full]:  # every column empty and set, in many mixes
        row = {c: (f"v{i}" if mask >> i & 1 else "") for i, c in enumerate(cols)}
        row["Status"] = "Active" if mask & 1 else "gone"
        as_list = [row[c] for c in cols]
        ext = row[m.external_id_column] or "x"
        want = _by_setters(m, row, ext)
        got = bound(as_list, ext)
        assert got == want
        assert list(got) == list(want)  # same key order, so the same JSON bytes
        for k in ("name", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"):
            if k in want:
                assert list(got[k]) == list(want[k])
        assert m.apply(row, ext) == want


def test_column_and_attribute_names_are_data_not_code() -> None:
    m = load_mapping(MAPPING)
    out = m.apply(dict.fromkeys(m.required_columns, "x") | {"Status": "ACTIVE"}, "e1")
    assert out["name"] == {"familyName": "x", "givenName": "x"}
    assert out["addresses"] == [{"locality": "x", "postalCode": "x", "type": "wo'rk"}]
    assert out["active"] is True
