"""Custom attributes in a provisioning job's schema: pure reading and building of its JSON.

The client reads the schema, these functions find the API source directory (see
:func:`source_directory`) and its User attributes and build the definitions to add, and
the client PUTs the whole schema back (PUT is a full replace; PATCH is not supported).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from connector.errors import ConfigError, GraphError

__all__ = [
    "ENTRA_DIRECTORY_NAMES",
    "DirectoryChoice",
    "SchemaUpdate",
    "custom_attribute_definition",
    "schema_attributes",
    "source_directory",
]


@dataclass(frozen=True, slots=True)
class SchemaUpdate:
    """What ``add_custom_attributes`` did: names added, names already present, where."""

    added: tuple[str, ...]
    present: tuple[str, ...]
    written: bool
    directory: str = ""
    chosen_by: str = ""


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


ENTRA_DIRECTORY_NAMES = frozenset({"azure active directory", "microsoft entra id"})
"""The Entra directory's names in a job schema (old and new branding). Microsoft's web
client (entra-provisioning-client, schemaUpdater.js) picks "the first non-Azure-AD
directory" by skipping both."""


@dataclass(frozen=True, slots=True)
class DirectoryChoice:
    """The schema directory custom attributes go to, and why it was chosen."""

    index: int
    name: str
    reason: str


def source_directory(schema: dict[str, Any], name: str | None = None) -> DirectoryChoice:
    """The job schema's API source directory.

    Graph documents no name for it, so, in order: ``name`` (``--directory``) when given;
    else the directory the first synchronization rule names as ``sourceDirectoryName`` (the
    rule says which directory feeds it, so this also holds for a job to on-premises AD,
    whose target directory is not Entra either); else the first directory not named
    "Azure Active Directory" / "Microsoft Entra ID", as Microsoft's web client does.
    """
    directories = schema.get("directories")
    if not isinstance(directories, list) or not directories:
        raise GraphError("the job schema has no directories; cannot register attributes")
    names = [str(d.get("name", "")) if isinstance(d, dict) else "" for d in directories]
    if name is not None:
        for i, found in enumerate(names):
            if found.lower() == name.lower():
                return DirectoryChoice(i, found, "named with --directory")
        raise ConfigError(
            f"--directory {name!r}: the job schema has no such directory; it has"
            f" {', '.join(repr(n) for n in names)}"
        )
    rules = schema.get("synchronizationRules")
    rule = rules[0] if isinstance(rules, list) and rules and isinstance(rules[0], dict) else {}
    wanted = rule.get("sourceDirectoryName")
    if isinstance(wanted, str) and wanted in names:
        return DirectoryChoice(
            names.index(wanted), wanted, "the synchronization rule's sourceDirectoryName"
        )
    for i, found in enumerate(names):
        if found and found.lower() not in ENTRA_DIRECTORY_NAMES:
            return DirectoryChoice(i, found, "the first directory that is not Microsoft Entra ID")
    raise GraphError(
        "the job schema has no source directory (every directory is Microsoft Entra ID);"
        " name one with --directory"
    )


def schema_attributes(schema: dict[str, Any], choice: DirectoryChoice) -> list[Any]:
    """The User attributes of the chosen directory (object ``User``, else its first)."""
    directory = schema["directories"][choice.index]
    objects = directory.get("objects") if isinstance(directory, dict) else None
    if not isinstance(objects, list) or not objects:
        raise GraphError(f"the job schema's directory {choice.name!r} has no objects")
    target = next(
        (o for o in objects if isinstance(o, dict) and str(o.get("name", "")).lower() == "user"),
        objects[0],
    )
    attributes = target.setdefault("attributes", [])
    if not isinstance(attributes, list):
        raise GraphError("the job schema's User object has no attribute list")
    return attributes
