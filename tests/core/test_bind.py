"""Mapping.bind: rows as lists by column position give exactly what apply gives on dicts."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.errors import TransformError
from connector.mapping import Mapping, load_mapping

from .helpers import CSV2SCIM_MAPPING, DEFAULT_MAPPING

RICH = load_mapping(
    """
externalId: Id
core:
  userName:
    template: "{First}.{Last}@contoso.com"
    transforms: [strip_diacritics, lower]
  name: {givenName: First, familyName: {column: Last, transforms: [upper]}}
  displayName: {coalesce: [{column: Nick}, {template: "{First} {Last}"}]}
  title: {column: Title, when: {column: Type, in: [Employee, Intern]}}
  userType: {column: Type, send_null: true}
  active: {column: Status, transforms: [{lookup: {A: true, I: false}}]}
  emails:
    - {value: Mail, primary: true}
    - {value: {column: Alt, transforms: [lower]}, when: {column: Alt, not_empty: true}}
  phoneNumbers: Phone
enterprise:
  department: Dept
  manager: {value: Mgr}
extensions:
  "urn:x:hr:1.0:User":
    HireDate: {column: Hire, transforms: [date]}
    Level: {const: 3}
"""
)
RICH_COLUMNS = sorted(RICH.required_columns)

cell = st.sampled_from(["", " ", "a", "Łukasz", "2024-02-30", "2024-01-05", "A", "I", "Employee"])


def _both(mapping: Mapping, columns: list[str], values: dict[str, str]) -> tuple[Any, Any]:
    ext = values[mapping.external_id_column] or "x"

    def run(fn: Any, arg: Any) -> Any:
        try:
            return fn(arg, ext)
        except TransformError as exc:
            return ("error", exc.reason_code, str(exc))

    by_name = run(mapping.apply, values)
    by_position = run(mapping.bind(columns), [values[c] for c in columns])
    return by_name, by_position


@settings(max_examples=200, deadline=None)
@given(row=st.fixed_dictionaries(dict.fromkeys(RICH_COLUMNS, cell)), seed=st.integers(0, 99))
def test_bound_rich_mapping_matches_apply(row: dict[str, str], seed: int) -> None:
    columns = ["Unused", *RICH_COLUMNS]
    random.Random(seed).shuffle(columns)
    by_name, by_position = _both(RICH, columns, row | {"Unused": "zz"})
    assert by_position == by_name


@pytest.mark.parametrize("path", [DEFAULT_MAPPING, CSV2SCIM_MAPPING])
def test_bound_sample_mappings_match_apply(path: Any) -> None:
    mapping = load_mapping(path)
    columns = list(reversed(mapping.required_columns))
    rng = random.Random(7)
    for _ in range(300):
        values = {c: rng.choice(["", "Active", "2021-03-04", "x y", "Ana", "1"]) for c in columns}
        by_name, by_position = _both(mapping, columns, values)
        assert by_position == by_name


def test_bind_needs_every_column_the_mapping_reads() -> None:
    with pytest.raises(ValueError, match="columns lack"):
        RICH.bind(["Id", "First"])
