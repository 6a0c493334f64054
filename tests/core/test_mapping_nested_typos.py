"""A misspelt key inside a nested block gets a "did you mean", as a top-level one does."""

from __future__ import annotations

import textwrap

import pytest

from connector.errors import MappingError
from connector.mapping import load_mapping


def problems(text: str) -> list[str]:
    with pytest.raises(MappingError) as info:
        load_mapping(textwrap.dedent(text).lstrip("\n"))
    return info.value.problems


def test_a_misspelt_sub_attribute_in_a_nested_block_names_the_close_one() -> None:
    found = problems(
        """
        externalId: Id
        core:
          userName: Upn
          name:
            givenNam: First
            familyName: Last
        """
    )
    typo = [p for p in found if "givenNam'" in p]
    assert len(typo) == 1, found
    assert typo[0].startswith("<mapping>:5: core: name has no sub-attribute 'givenNam'")
    assert "(did you mean 'givenName'?)" in typo[0]


def test_a_misspelt_dotted_sub_attribute_names_the_close_one() -> None:
    found = problems(
        """
        externalId: Id
        core:
          userName: Upn
          name.familyNme: Last
        """
    )
    assert any("(did you mean 'familyName'?)" in p for p in found), found


def test_a_misspelt_test_in_a_when_names_the_close_one() -> None:
    found = problems(
        """
        externalId: Id
        core:
          userName: Upn
          displayName: {column: Name, when: {column: Kind, equal: staff}}
        """
    )
    assert any("(did you mean 'equals'?)" in p for p in found), found


def test_a_nested_block_of_unrelated_keys_still_says_how_to_map_a_complex_attribute() -> None:
    found = problems(
        """
        externalId: Id
        core:
          userName: Upn
          name: {column: First}
        """
    )
    assert any("name is complex; map its sub-attributes" in p for p in found), found
