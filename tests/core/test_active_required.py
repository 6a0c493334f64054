"""Every record carries a boolean ``active``: the mapping refuses anything that could
send a record without it, and a row whose ``active`` ends empty or not true/false is
rejected with its reason (AzureAD/entra-id-inbound-provisioning issue #16: an update
that omits ``active`` disables the account)."""

from __future__ import annotations

import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.errors import MappingError
from connector.mapping import load_mapping
from connector.records import iter_records

from .helpers import DEFAULT_MAPPING, HR_EXTRACT, stream


def _problems(core: str) -> list[str]:
    text = "externalId: Id\ncore:\n  userName: U\n" + textwrap.indent(
        textwrap.dedent(core).strip("\n"), "  "
    )
    with pytest.raises(MappingError) as info:
        load_mapping(text + "\n")
    return info.value.problems


def test_a_mapping_without_active_is_refused_citing_the_issue() -> None:
    with pytest.raises(MappingError) as info:
        load_mapping("externalId: Id\ncore:\n  userName: U\n")
    [problem] = info.value.problems
    assert problem.startswith("<mapping>:1: active is not mapped: every record must carry it;")
    assert "issue #16" in problem
    assert "omits active disables the account" in problem


def test_active_with_a_condition_is_refused() -> None:
    [problem] = _problems(
        "active: {column: S, transforms: [{equals: A}], when: {column: S, not_empty: true}}"
    )
    assert "active cannot have when" in problem
    assert "issue #16" in problem


def test_active_sending_null_is_refused() -> None:
    [problem] = _problems("active: {column: S, transforms: [{equals: A}], send_null: true}")
    assert "active cannot send null" in problem


@pytest.mark.parametrize(
    "value",
    [
        "{const: 'yes'}",
        "{const: 1}",
        "{const: null}",
        "{column: S, transforms: [{split: ','}]}",
        "{column: S, transforms: [{lookup: {A: 'yes', I: 'no'}}]}",
        "{column: S, transforms: [{lookup: {A: true, I: 'no'}}]}",
    ],
)
def test_an_active_that_can_never_be_true_or_false_is_an_error(value: str) -> None:
    [problem] = _problems(f"active: {value}")
    assert "<mapping>:4: active" in problem
    assert "true" in problem


@pytest.mark.parametrize(
    "value",
    [
        "{const: true}",
        "{const: 'False'}",
        "{column: S, transforms: [{equals: A}]}",
        "{column: S, transforms: [{lookup: {A: true, I: false}}]}",
        "{column: S, transforms: [{lookup: {A: true, I: 'x'}}, {default: false}]}",
        "{coalesce: [S, {const: true}]}",
    ],
)
def test_an_active_that_ends_true_or_false_loads_without_a_warning(value: str) -> None:
    mapping = load_mapping(f"externalId: Id\ncore:\n  userName: U\n  active: {value}\n")
    assert not [w for w in mapping.warnings if "active" in w]


def test_active_from_plain_text_is_a_warning_and_other_text_rejects_the_row() -> None:
    mapping = load_mapping("externalId: Id\ncore:\n  userName: U\n  active: S\n")
    assert any("active comes from text" in w for w in mapping.warnings)
    text = "Id,U,S\n1,a@x,true\n2,b@x,maybe\n3,c@x,\n4,d@x,FALSE\n"
    records = iter_records(stream(text), mapping)
    records.max_rejected_share = 1.0
    sent = {r.external_id: r.data["active"] for r in records}
    assert sent == {"1": True, "4": False}
    reasons = {r.line: r.message for r in records.rejected}
    assert "must be true or false" in reasons[3]
    assert "active is empty" in reasons[4]
    assert "issue #16" in reasons[4]


def test_an_empty_active_rejects_the_row_instead_of_sending_it_without() -> None:
    mapping = load_mapping(
        "externalId: Id\ncore:\n  userName: U\n"
        "  active: {column: S, transforms: [{lookup: {A: true, I: false}}]}\n"
    )
    records = iter_records(stream("Id,U,S\n1,a@x,A\n2,b@x,\n"), mapping)
    records.max_rejected_share = 1.0
    assert [r.external_id for r in records] == ["1"]
    [rejected] = records.rejected
    assert rejected.line == 3
    assert "cannot be sent without it" in rejected.message


def test_every_record_of_the_sample_extract_carries_a_boolean_active() -> None:
    records = list(iter_records(HR_EXTRACT, load_mapping(DEFAULT_MAPPING)))
    assert records
    assert all(isinstance(r.data["active"], bool) for r in records)


_CELL = st.one_of(
    st.sampled_from(["Active", "active", "Inactive", "", "true", "false", "on leave"]),
    st.text(alphabet="abcAIx ", max_size=6),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(_CELL, min_size=1, max_size=20))
def test_no_row_is_ever_mapped_without_a_boolean_active(cells: list[str]) -> None:
    mapping = load_mapping(
        "externalId: Id\ncore:\n  userName: U\n"
        "  active: {column: S, transforms: [trim, {lookup: {Active: true, Inactive: false}}]}\n"
    )
    text = "Id,U,S\n" + "".join(f"{i},u{i}@x,{c}\n" for i, c in enumerate(cells))
    records = iter_records(stream(text), mapping)
    records.max_rejected_share = 1.0
    sent = list(records)
    assert all(isinstance(r.data["active"], bool) for r in sent)
    assert len(sent) + len(records.rejected) == len(cells)
