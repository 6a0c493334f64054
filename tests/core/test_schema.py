"""The published JSON Schema for mapping files agrees with what the loader accepts."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from connector.mapping import CORE_ATTRIBUTES, ENTERPRISE_ATTRIBUTES, MULTI_VALUED_ATTRIBUTES
from connector.transforms import TRANSFORM_NAMES

from .helpers import CSV2SCIM_MAPPING, DEFAULT_MAPPING, ROOT

SCHEMA_PATH = ROOT / "connector" / "schemas" / "mapping.schema.json"
SCHEMA: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def test_schema_is_draft_2020_12_with_resolvable_refs() -> None:
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    text = SCHEMA_PATH.read_text(encoding="utf-8")
    for ref in {r.split('"')[0] for r in text.split('"$ref": "')[1:]}:
        assert ref.startswith("#/$defs/")
        assert ref.removeprefix("#/$defs/") in SCHEMA["$defs"], ref


def test_schema_names_match_the_loader() -> None:
    props = SCHEMA["properties"]
    assert set(props) == {"version", "extract", "externalId", "core", "enterprise", "extensions"}
    core = props["core"]["properties"]
    assert set(core) == set(CORE_ATTRIBUTES) | set(MULTI_VALUED_ATTRIBUTES)
    assert set(props["enterprise"]["properties"]) == set(ENTERPRISE_ATTRIBUTES)
    named: set[str] = set(SCHEMA["$defs"]["transform"]["oneOf"][0]["enum"])
    for form in SCHEMA["$defs"]["transform"]["oneOf"][1:]:
        named |= set(form["required"])
    assert named == set(TRANSFORM_NAMES)
    assert set(props["extract"]["properties"]) == {
        "encoding", "delimiter", "max_field_bytes", "max_rejected_share", "id_column", "sheet",
    }  # fmt: skip


def _check(instance: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """A small structural check (keys and nesting) of a mapping against the schema."""
    if "$ref" in schema:
        return _check(instance, SCHEMA["$defs"][schema["$ref"].removeprefix("#/$defs/")], path)
    errors: list[str] = []
    for key in ("oneOf", "anyOf"):
        if key in schema:
            results = [_check(instance, s, path) for s in schema[key]]
            if all(results):
                errors.append(f"{path}: no {key} branch fits")
            rest = {k: v for k, v in schema.items() if k != key}
            return errors + (_check(instance, rest, path) if set(rest) - {"description"} else [])
    if "required" in schema and isinstance(instance, dict):
        errors += [f"{path}: missing {r}" for r in schema["required"] if r not in instance]
    if isinstance(instance, dict) and schema.get("type", "object") == "object":
        if "type" in schema and schema["type"] != "object":
            return [f"{path}: not {schema['type']}"]
        props = schema.get("properties", {})
        for k, v in instance.items():
            sub = props.get(k)
            if sub is None:
                sub = next(
                    (s for p, s in schema.get("patternProperties", {}).items() if re.match(p, k)),
                    None,
                )
            if sub is None:
                sub = schema.get("additionalProperties", True)
            if sub is False:
                errors.append(f"{path}/{k}: not allowed")
            elif isinstance(sub, dict):
                errors += _check(v, sub, f"{path}/{k}")
        return errors
    if schema.get("type") == "object" and not isinstance(instance, dict):
        return [f"{path}: not an object"]
    if schema.get("type") == "array":
        if not isinstance(instance, list):
            return [f"{path}: not an array"]
        return [
            e for i, v in enumerate(instance) for e in _check(v, schema["items"], f"{path}/{i}")
        ]
    if schema.get("type") == "string" and not isinstance(instance, str):
        return [f"{path}: not a string"]
    if "enum" in schema and instance not in schema["enum"]:
        return [f"{path}: not one of {schema['enum']}"]
    return errors


def test_bundled_mappings_fit_the_schema() -> None:
    for path in (DEFAULT_MAPPING, CSV2SCIM_MAPPING):
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        assert _check(doc, SCHEMA) == [], path


def test_schema_check_catches_a_typo() -> None:
    doc = yaml.safe_load(DEFAULT_MAPPING.read_text(encoding="utf-8"))
    doc["core"]["userNmae"] = "X"
    doc["core"]["active"]["transforms"] = ["evaluate"]
    errors = _check(doc, SCHEMA)
    assert any("userNmae" in e for e in errors)
    assert any("/core/active" in e for e in errors)
