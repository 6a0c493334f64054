"""source_directory(): which schema directory custom attributes are registered in."""

from __future__ import annotations

from typing import Any

import pytest

from connector.errors import ConfigError, GraphError
from connector.graph.schema import schema_attributes, source_directory


def schema(*names: str, rule_source: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "directories": [
            {"name": n, "objects": [{"name": "User", "attributes": [{"name": f"{n}-attr"}]}]}
            for n in names
        ]
    }
    if rule_source is not None:
        body["synchronizationRules"] = [{"sourceDirectoryName": rule_source}]
    return body


def test_the_rules_source_directory_wins_even_when_not_first() -> None:
    # An API2AD job: the AD target is not Entra either, so "first non-Entra" would pick it.
    body = schema("Active Directory", "API", rule_source="API")
    choice = source_directory(body)
    assert (choice.index, choice.name) == (1, "API")
    assert "sourceDirectoryName" in choice.reason
    assert schema_attributes(body, choice) == [{"name": "API-attr"}]


@pytest.mark.parametrize("entra", ["Azure Active Directory", "Microsoft Entra ID"])
def test_without_a_rule_the_first_non_entra_directory_as_microsofts_web_client(
    entra: str,
) -> None:
    choice = source_directory(schema(entra, "API"))
    assert choice.name == "API"
    assert "not Microsoft Entra ID" in choice.reason


def test_a_rule_naming_a_missing_directory_falls_back() -> None:
    assert source_directory(schema("Microsoft Entra ID", "API", rule_source="Nope")).name == "API"


def test_directory_by_name_case_insensitive() -> None:
    choice = source_directory(schema("API", "Other"), "other")
    assert choice.name == "Other"
    assert "--directory" in choice.reason


def test_unknown_directory_name_is_a_one_line_config_error() -> None:
    with pytest.raises(ConfigError, match=r"--directory 'x'.*'API'"):
        source_directory(schema("API"), "x")


def test_only_entra_directories_or_none_is_an_error() -> None:
    with pytest.raises(GraphError, match="--directory"):
        source_directory(schema("Azure Active Directory"))
    with pytest.raises(GraphError, match="no directories"):
        source_directory({"directories": []})
