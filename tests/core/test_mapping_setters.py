"""Setter closures (attributes with ``when`` or ``send_null``) set their value inside the
container the record already holds, make it when it is missing, and leave it out when
their condition fails, for rows by name and by position."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from connector.mapping import load_mapping
from connector.scim import ENTERPRISE_USER_SCHEMA

NESTED = """
version: 1
externalId: Id
core:
  active: {const: true}
  name:
    familyName: F
    givenName: {column: G, when: {column: W, not_empty: true}}
enterprise:
  department: D
  manager:
    value: {column: M, when: {column: W, not_empty: true}}
"""
COLUMNS = ["Id", "F", "G", "W", "D", "M"]


def _row_function(by: str) -> Callable[[list[str]], dict[str, Any]]:
    m = load_mapping(NESTED)
    if by == "position":
        bound = m.bind(COLUMNS)
        return lambda cells: bound(cells, "1")
    return lambda cells: m.apply(dict(zip(COLUMNS, cells, strict=True)), "1")


@pytest.mark.parametrize("by", ["name", "position"])
def test_a_conditional_attribute_joins_its_container_or_makes_it(by: str) -> None:
    run = _row_function(by)
    full = run(["1", "f", "g", "w", "d", "m"])
    assert full["name"] == {"familyName": "f", "givenName": "g"}
    assert full[ENTERPRISE_USER_SCHEMA] == {"department": "d", "manager": {"value": "m"}}
    made = run(["1", "", "g", "w", "", "m"])
    assert made["name"] == {"givenName": "g"}
    assert made[ENTERPRISE_USER_SCHEMA] == {"manager": {"value": "m"}}
    unmet = run(["1", "f", "g", "", "d", "m"])
    assert unmet["name"] == {"familyName": "f"}
    assert unmet[ENTERPRISE_USER_SCHEMA] == {"department": "d"}
    assert "name" not in run(["1", "", "g", "", "", "m"])
