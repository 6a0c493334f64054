"""A column fed through transforms compiles to one closure; it must act as the generic chain.

The generic chain (a source getter then each transform's type-checked ``fn`` with an
emptiness check between steps) is the reference: for any chain and any cell text the
fused getter returns the same value or raises the same error.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector import mapping_values
from connector.errors import TransformError
from connector.mapping import load_mapping
from connector.transforms import Transform, make_transform

# (name, argument): every transform with an on_text form, plus ones without
STEPS: list[tuple[str, Any]] = [
    ("lower", None),
    ("upper", None),
    ("title", None),
    ("trim", None),
    ("strip_diacritics", None),
    ("truncate", 3),
    ("equals", "active"),
    ("equals", ["A", "b"]),
    ("lookup", {"table": {"active": True, "inactive": False}, "ignore_case": True}),
    ("lookup", {"table": {"Active": "yes", "x": ""}, "default": "other"}),
    ("lookup", {"A": 1, "b": 2}),
    ("date", {"formats": ["%Y-%m-%d", "%d/%m/%Y"]}),
    ("replace", {"pattern": "[aeiou]", "with": ""}),
    ("split", {"separator": " ", "index": 0}),
    ("split", ","),
    ("join", "-"),
    ("default", "none"),
]

FIXED_CELLS = [
    *["", "Active", "ACTIVE", "inactive", "A", "b", "aei", "2024-02-29", "x", "  ", "\t"],
    *["31/12/1999", "2024-13-01", "ß", "ǅ", "İ", " a , b ", "\u0301", "Straße", "a,,b"],
]
CELLS = st.one_of(st.sampled_from(FIXED_CELLS), st.text(max_size=12))


def outcome(get: Any, values: Any) -> tuple[str, Any]:
    try:
        return "value", get(values)
    except TransformError as exc:
        return "error", (str(exc), exc.reason_code)


def reference_and_compiled(steps: list[Transform]) -> tuple[Any, Any]:
    src = mapping_values.column_getter("c")
    return mapping_values.chain(src, steps), mapping_values.chain(src, steps, "c")


@pytest.mark.parametrize("first", STEPS, ids=lambda s: s[0])
def test_every_single_step_and_pair_acts_as_the_generic_chain(first: tuple[str, Any]) -> None:
    for chain in [[first], *([first, second] for second in STEPS)]:
        steps = [make_transform(name, arg) for name, arg in chain]
        generic, compiled = reference_and_compiled(steps)
        for cell in FIXED_CELLS:
            assert outcome(compiled, {"c": cell}) == outcome(generic, {"c": cell}), (chain, cell)


@settings(max_examples=400, deadline=None)
@given(chain=st.lists(st.sampled_from(STEPS), min_size=1, max_size=3), cell=CELLS)
def test_fused_chain_acts_as_the_generic_chain(chain: list[tuple[str, Any]], cell: str) -> None:
    steps = [make_transform(name, arg) for name, arg in chain]
    generic, compiled = reference_and_compiled(steps)
    assert outcome(compiled, {"c": cell}) == outcome(generic, {"c": cell})


@pytest.mark.parametrize("cell", [5, True, ["a", "b"]])
def test_values_that_are_not_text_take_the_generic_path(cell: object) -> None:
    # rows are text, but Mapping.apply takes any mapping; such a value keeps the checks
    steps = [make_transform("lower", None), make_transform("equals", "active")]
    generic, compiled = reference_and_compiled(steps)
    assert outcome(compiled, {"c": cell}) == outcome(generic, {"c": cell})


def test_case_ops_keep_text_non_empty_for_every_character() -> None:
    # what keeps_text promises for lower/upper/title, checked over the whole code space
    for name in ("lower", "upper", "title"):
        t = make_transform(name, None)
        assert t.keeps_text
        op = t.on_text
        assert op is not None
        empties = [c for c in map(chr, range(0x110000)) if op(c) == ""]
        assert empties == [], name


def test_status_ignoring_case_still_rejects_nothing_and_maps_both_ways() -> None:
    mapping = load_mapping(
        "version: 1\nexternalId: Id\ncore:\n  userName: U\n"
        "  active: {column: S, transforms: [lower, {equals: active}]}\n"
    )
    apply = mapping.bind(["Id", "U", "S"])
    assert apply(["1", "u", "ACTIVE"], "1")["active"] is True
    assert apply(["1", "u", "Inactive"], "1")["active"] is False
    with pytest.raises(TransformError, match="active is empty"):
        apply(["1", "u", ""], "1")
