"""Fuzzing the mapping loader and validator: whatever the YAML, the answer is a Mapping
(with its problems and warnings) or a MappingError; never a crash."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.strategies import soup, yaml_bytes
from tests.fuzz.targets import holds

FUZZ = settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])

KEYS = [
    "version", "extract", "encoding", "delimiter", "max_field_bytes", "max_rejected_share",
    "externalId", "core", "enterprise", "extensions", "userName", "name", "givenName",
    "familyName", "displayName", "active", "emails", "phoneNumbers", "addresses", "manager",
    "value", "type", "primary", "column", "const", "template", "coalesce", "transforms",
    "when", "equals", "not_equals", "in", "not_in", "empty", "not_empty", "lookup", "table",
    "ignore_case", "default", "replace", "pattern", "with", "truncate", "split", "separator",
    "index", "join", "date", "formats", "output", "timezone", "send_null", "department",
    "streetAddress", "country", "title",
]  # fmt: skip
WORDS = [
    "lower", "upper", "trim", "strip_diacritics", "EmployeeId", "WorkEmail", "work", "utf-8",
    "utf-16", "cp1252", "rot13", "base64", ",", "\t", "%Y-%m-%d", "(a|b)", "[", "\\d+",
    "{FirstName} {LastName}", "{", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
]  # fmt: skip
FRAGMENTS = [
    "version: 1\n", "externalId: Id\n", "core:\n", "  userName: Mail\n", "  active:\n",
    "    column: S\n", "    transforms: [lower, {truncate: 3}]\n", "  emails:\n",
    "    - value: Mail\n", "&a ", "*a ", "!!python/object ", "!!binary ", "{", "}", "[", "]",
    ": ", "- ", "\n", "  ", "'", '"', "#", "|\n", ">\n", "? ", "%YAML 1.1\n", "---\n", "...\n",
    "\t", "\x00", "\ufeff", "é", "<<: ", "~", "null", "true", "0x1F", "1e9", ".inf",
]  # fmt: skip


@FUZZ
@given(yaml_bytes(KEYS, WORDS))
def test_mapping_trees_give_a_mapping_or_a_mapping_error(data: bytes) -> None:
    holds("mapping", data)


@FUZZ
@given(soup(FRAGMENTS))
def test_yaml_soup_gives_a_mapping_or_a_mapping_error(data: bytes) -> None:
    holds("mapping", data)


@FUZZ
@given(st.binary(max_size=200))
def test_any_bytes_give_a_mapping_or_a_mapping_error(data: bytes) -> None:
    holds("mapping", data)
