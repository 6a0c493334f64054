"""The JSONPath subset used for records, next links and cursors."""

from __future__ import annotations

import pytest

from connector.sources.jsonpath import parse_path

DOC = {
    "value": [{"id": 1}, {"id": 2}],
    "@odata.nextLink": "https://x/next",
    "data": {"items": [{"a": {"b": "deep"}}]},
}


@pytest.mark.parametrize(
    ("path", "found"),
    [
        ("$", [DOC]),
        ("$.value[*]", [{"id": 1}, {"id": 2}]),
        ("$.value[*].id", [1, 2]),
        ("$.value[1]", [{"id": 2}]),
        ("$.value[-1].id", [2]),
        ("$['@odata.nextLink']", ["https://x/next"]),
        ('$["@odata.nextLink"]', ["https://x/next"]),
        ("$.data.items[0].a.b", ["deep"]),
        ("$.data.*", [[{"a": {"b": "deep"}}]]),
        ("$.missing[*]", []),
        ("$.value[9]", []),
    ],
)
def test_paths_find_what_they_name(path: str, found: list[object]) -> None:
    assert parse_path(path).find(DOC) == found


def test_first_is_none_when_nothing_is_found() -> None:
    assert parse_path("$.nope").first(DOC) is None


@pytest.mark.parametrize("path", ["value[*]", "$..id", "$.value[?(@.id>1)]", "$.value[", "$ x"])
def test_unsupported_paths_are_refused_with_the_position(path: str) -> None:
    with pytest.raises(ValueError, match=r"path|starts with"):
        parse_path(path)
