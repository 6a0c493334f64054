"""Custom attributes in a provisioning job's schema: pure reading and building of its JSON.

The client reads the schema, these functions find the source directory's User attributes
and build the definitions to add, and the client PUTs the whole schema back (PUT is a full
replace; PATCH is not supported).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from connector.errors import ConfigError, GraphError

__all__ = ["SchemaUpdate", "custom_attribute_definition", "schema_attributes"]


@dataclass(frozen=True, slots=True)
class SchemaUpdate:
    """What ``add_custom_attributes`` did: names added, names already present."""

    added: tuple[str, ...]
    present: tuple[str, ...]
    written: bool


_ATTRIBUTE_NAME = re.compile(r"^urn:[A-Za-z0-9][A-Za-z0-9:._-]*:[A-Za-z_][A-Za-z0-9_]*$")


def custom_attribute_definition(name: str) -> dict[str, Any]:
    """The attribute definition CSV2SCIM and the portal register for a custom SCIM attribute."""
    if not _ATTRIBUTE_NAME.match(name):
        raise ConfigError(
            f"custom attribute name {name!r} is not '<urn namespace>:<attribute>' (for example"
            " 'urn:ietf:params:scim:schemas:extension:contoso:1.0:User:HireDate'); names"
            " come from the mapping and must not contain quotes or spaces"
        )
    return {
        "name": name,
        "type": "String",
        "mutability": "ReadWrite",
        "anchor": False,
        "caseExact": False,
        "flowNullValues": False,
        "multivalued": False,
        "required": False,
        "apiExpressions": [],
        "metadata": [],
        "referencedObjects": [],
    }


def schema_attributes(schema: dict[str, Any]) -> list[Any]:
    """The source directory's User attributes: ``directories[0]``, object ``User`` (or first).

    This is where CSV2SCIM and the portal register API attributes; the schema layout
    beyond that is not documented.
    """
    directories = schema.get("directories")
    if not isinstance(directories, list) or not directories:
        raise GraphError("the job schema has no directories; cannot register attributes")
    objects = directories[0].get("objects") if isinstance(directories[0], dict) else None
    if not isinstance(objects, list) or not objects:
        raise GraphError("the job schema's source directory has no objects")
    target = next(
        (o for o in objects if isinstance(o, dict) and str(o.get("name", "")).lower() == "user"),
        objects[0],
    )
    attributes = target.setdefault("attributes", [])
    if not isinstance(attributes, list):
        raise GraphError("the job schema's User object has no attribute list")
    return attributes
