"""The job's synchronization schema: default API source schema, mappings, PUT/GET shape.

Documented: the API source accepts the SCIM core and enterprise User attributes; other
attributes must be registered first (``PUT .../schema``, full replace) as
``<namespace>:<attr>`` in ``directories[0].objects[0].attributes`` with the shape
CSV2SCIM writes. Our assumptions: the default attribute mappings to Entra (below)
follow the portal's defaults as far as we know them; an attribute known to the
schema but without a mapping is stored under its source name, so tests can see it;
``flowNullValues`` is read from the source attribute only.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from connector.errors import SchemaError
from connector.scim import CORE_USER_SCHEMA, ENTERPRISE_USER_SCHEMA

__all__ = [
    "ACTIVE",
    "AD_MAPPINGS",
    "CORE_SIMPLE",
    "DEFAULT_MAPPINGS",
    "ENTRA_DIRECTORY_NAMES",
    "EXTERNAL_ID",
    "MANAGER",
    "MULTI_VALUED",
    "ON_PREMISES_TEMPLATE",
    "USER_NAME",
    "CompiledSchema",
    "attribute_definition",
    "compile_schema",
    "default_schema",
    "flatten_record",
]

EXTERNAL_ID = "externalId"
USER_NAME = "userName"
ACTIVE = "active"
MANAGER = f"{ENTERPRISE_USER_SCHEMA}:manager"

CORE_SIMPLE = (
    "externalId",
    "userName",
    "active",
    "displayName",
    "nickName",
    "userType",
    "title",
    "preferredLanguage",
    "locale",
    "timezone",
    "profileUrl",
)
NAME_PARTS = (
    "formatted",
    "familyName",
    "givenName",
    "middleName",
    "honorificPrefix",
    "honorificSuffix",
)
MULTI_VALUED: dict[str, tuple[str, ...]] = {
    "emails": ("value",),
    "phoneNumbers": ("value",),
    "addresses": ("streetAddress", "locality", "region", "postalCode", "country", "formatted"),
}
ENTERPRISE_PARTS = ("employeeNumber", "costCenter", "organization", "division", "department")

DEFAULT_MAPPINGS: dict[str, str] = {
    "externalId": "employeeId",
    "userName": "userPrincipalName",
    "active": "accountEnabled",
    "displayName": "displayName",
    "nickName": "mailNickname",
    "name.givenName": "givenName",
    "name.familyName": "surname",
    "title": "jobTitle",
    "userType": "employeeType",
    "preferredLanguage": "preferredLanguage",
    'emails[type eq "work"].value': "mail",
    'phoneNumbers[type eq "work"].value': "businessPhones",
    'addresses[type eq "work"].streetAddress': "streetAddress",
    'addresses[type eq "work"].locality': "city",
    'addresses[type eq "work"].region': "state",
    'addresses[type eq "work"].postalCode': "postalCode",
    'addresses[type eq "work"].country': "country",
    f"{ENTERPRISE_USER_SCHEMA}:department": "department",
    f"{ENTERPRISE_USER_SCHEMA}:organization": "companyName",
    f"{ENTERPRISE_USER_SCHEMA}:costCenter": "employeeOrgData.costCenter",
    f"{ENTERPRISE_USER_SCHEMA}:division": "employeeOrgData.division",
    MANAGER: "manager",
}


AD_MAPPINGS: dict[str, str] = {
    "externalId": "employeeID",
    "userName": "userPrincipalName",
    "active": "accountDisabled",
    "displayName": "displayName",
    "name.givenName": "givenName",
    "name.familyName": "sn",
    "title": "title",
    'emails[type eq "work"].value': "mail",
    'phoneNumbers[type eq "work"].value': "telephoneNumber",
    'addresses[type eq "work"].streetAddress': "streetAddress",
    'addresses[type eq "work"].locality': "l",
    'addresses[type eq "work"].region': "st",
    'addresses[type eq "work"].postalCode': "postalCode",
    'addresses[type eq "work"].country': "c",
    f"{ENTERPRISE_USER_SCHEMA}:employeeNumber": "employeeNumber",
    f"{ENTERPRISE_USER_SCHEMA}:department": "department",
    f"{ENTERPRISE_USER_SCHEMA}:organization": "company",
    MANAGER: "manager",
}
"""Mappings of an API-driven job to on-premises AD. Documented: active -> accountDisabled
(Entra FAQ) and, as a recommendation, ExternalId -> employeeID, givenName/familyName ->
givenName/sn, manager -> manager (Oracle HCM tutorial, worksheet 4). The rest, and the
shipped default expressions (e.g. the inversion of active), are assumed."""

ON_PREMISES_TEMPLATE = "API2AD"
AD_DIRECTORY = "Active Directory"
ENTRA_DIRECTORY = "Azure Active Directory"
ENTRA_DIRECTORY_NAMES = frozenset({"azure active directory", "microsoft entra id"})
"""Names of the Entra directory in a job schema: Microsoft's web client skips both when it
looks for the API source directory."""


def _multi(family: str, part: str) -> str:
    return f'{family}[type eq "work"].{part}'


def _default_source_attributes() -> list[str]:
    names = list(CORE_SIMPLE)
    names += [f"name.{p}" for p in NAME_PARTS]
    for family, parts in MULTI_VALUED.items():
        names += [_multi(family, p) for p in parts]
    names += [f"{ENTERPRISE_USER_SCHEMA}:{p}" for p in ENTERPRISE_PARTS]
    names.append(MANAGER)
    return names


def attribute_definition(
    name: str, *, flow_null_values: bool = False, type_: str = "String", anchor: bool = False
) -> dict[str, Any]:
    """One attributeDefinition, in the shape CSV2SCIM appends when registering an attribute."""
    return {
        "name": name,
        "type": "Reference" if name == MANAGER else type_,
        "mutability": "ReadWrite",
        "anchor": anchor,
        "caseExact": False,
        "flowNullValues": flow_null_values,
        "multivalued": False,
        "required": name in (EXTERNAL_ID, USER_NAME),
        "apiExpressions": [],
        "metadata": [],
        "referencedObjects": [],
    }


def default_schema(job_id: str) -> dict[str, Any]:
    """The synchronizationSchema a fresh API-driven job starts with: to Entra ID, or to
    on-premises AD for an ``API2AD.`` job id."""
    on_premises = job_id.startswith(ON_PREMISES_TEMPLATE + ".")
    table = AD_MAPPINGS if on_premises else DEFAULT_MAPPINGS
    template = ON_PREMISES_TEMPLATE if on_premises else "API2AAD"
    target = AD_DIRECTORY if on_premises else ENTRA_DIRECTORY
    source_attrs = [
        attribute_definition(
            n, type_="Boolean" if n == ACTIVE else "String", anchor=n == EXTERNAL_ID
        )
        for n in _default_source_attributes()
    ]
    target_attrs = [attribute_definition(n) for n in sorted(set(table.values()))]
    return {
        "id": job_id.split(".")[0],
        "version": f"Date:2026-01-01T00:00:00Z;RuleId:{template};",
        "directories": [
            _directory(job_id + "/source", "API", source_attrs),
            _directory(job_id + "/target", target, target_attrs),
        ],
        "synchronizationRules": [_rule(template, target, _attribute_mappings(table))],
    }


def _directory(key: str, name: str, attributes: list[dict[str, Any]]) -> dict[str, Any]:
    """A directoryDefinition with its one User object (a stable id derived from ``key``)."""
    return {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, key)),
        "name": name,
        "objects": [{"name": "User", "attributes": attributes, "metadata": []}],
    }


def _attribute_mappings(table: Mapping[str, str]) -> list[dict[str, Any]]:
    """One attributeMapping per source -> target pair; ``externalId`` is the matching one."""
    return [
        {
            "source": {
                "expression": f"[{src}]",
                "name": src,
                "type": "Attribute",
                "parameters": [],
            },
            "targetAttributeName": tgt,
            "flowBehavior": "FlowWhenChanged",
            "flowType": "Always",
            "matchingPriority": 1 if src == EXTERNAL_ID else 0,
            "defaultValue": "",
            "exportMissingReferences": False,
        }
        for src, tgt in table.items()
    ]


def _rule(template: str, target: str, mappings: list[dict[str, Any]]) -> dict[str, Any]:
    """The synchronizationRule from the API source's User to the target's User."""
    return {
        "id": template,
        "name": template,
        "sourceDirectoryName": "API",
        "targetDirectoryName": target,
        "objectMappings": [
            {
                "enabled": True,
                "flowTypes": "Add, Update",
                "name": "Provision API Users",
                "sourceObjectName": "User",
                "targetObjectName": "User",
                "attributeMappings": mappings,
            }
        ],
    }


@dataclass(frozen=True, slots=True)
class CompiledSchema:
    """What processing needs from a schema: known source attributes and where they go."""

    raw: dict[str, Any]
    known: frozenset[str]
    flow_nulls: frozenset[str]
    targets: Mapping[str, str]
    namespaces: frozenset[str]

    def target_of(self, source: str) -> str:
        return self.targets.get(source, source)

    def applies(self, source: str) -> bool:
        """Is a sent attribute applied? It must be in the source schema; a custom
        (registered) attribute must also be mapped: Graph bulkUpload Example 2, "If you
        include the two custom attributes ... in your provisioning job attribute mapping,
        it is processed". Unmapped core attributes are kept under their source name
        (assumed; lets tests see them)."""
        if source not in self.known:
            return False
        if source.rsplit(":", 1)[0] in self.namespaces:
            return source in self.targets
        return True


def _get(obj: Mapping[str, Any], key: str) -> Any:
    """Graph JSON is camelCase; PowerShell objects serialize PascalCase. Accept both."""
    if key in obj:
        return obj[key]
    return obj.get(key[:1].upper() + key[1:])


def compile_schema(raw: Any) -> CompiledSchema:
    """Validate a synchronizationSchema body and index it; raises SchemaError naming the part."""
    if not isinstance(raw, dict):
        raise SchemaError("the schema body must be a JSON object")
    directories = _get(raw, "directories")
    if not isinstance(directories, list) or not directories:
        raise SchemaError("directories must be a non-empty array (the source directory first)")
    index = _source_index(raw, directories)
    source = directories[index]
    where = f"directories[{index}]"
    objects = _get(source, "objects") if isinstance(source, dict) else None
    if not isinstance(objects, list) or not objects or not isinstance(objects[0], dict):
        raise SchemaError(f"{where}.objects must be a non-empty array of objects")
    attributes = _get(objects[0], "attributes")
    if not isinstance(attributes, list):
        raise SchemaError(f"{where}.objects[0].attributes must be an array")
    known: set[str] = set()
    flow_nulls: set[str] = set()
    for i, attr in enumerate(attributes):
        name = _get(attr, "name") if isinstance(attr, dict) else None
        if not isinstance(name, str) or not name:
            raise SchemaError(f"{where}.objects[0].attributes[{i}].name is missing")
        known.add(name)
        if _get(attr, "flowNullValues") is True:
            flow_nulls.add(name)
    targets: dict[str, str] = {}
    for rule in _get(raw, "synchronizationRules") or []:
        for om in (_get(rule, "objectMappings") or []) if isinstance(rule, dict) else []:
            for am in (_get(om, "attributeMappings") or []) if isinstance(om, dict) else []:
                if not isinstance(am, dict):
                    continue
                src = _get(am, "source") or {}
                name = _get(src, "name") if isinstance(src, dict) else None
                tgt = _get(am, "targetAttributeName")
                if isinstance(name, str) and isinstance(tgt, str) and tgt:
                    targets[name] = tgt
    namespaces = frozenset(
        n.rsplit(":", 1)[0]
        for n in known
        if n.startswith("urn:") and not n.startswith(ENTERPRISE_USER_SCHEMA + ":")
    )
    return CompiledSchema(
        raw=copy.deepcopy(raw),
        known=frozenset(known),
        flow_nulls=frozenset(flow_nulls),
        targets=targets,
        namespaces=namespaces,
    )


def _source_index(raw: Mapping[str, Any], directories: list[Any]) -> int:
    """The API source directory: the one the first synchronization rule names as
    ``sourceDirectoryName``, else ``directories[0]`` (where CSV2SCIM registers attributes)."""
    rules = _get(raw, "synchronizationRules")
    rule = rules[0] if isinstance(rules, list) and rules and isinstance(rules[0], dict) else {}
    name = _get(rule, "sourceDirectoryName")
    for i, directory in enumerate(directories):
        if isinstance(directory, dict) and name and _get(directory, "name") == name:
            return i
    return 0


def flatten_record(data: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """SCIM ``data`` -> ``{source attribute name: value}`` plus the names it ignored.

    Only ``type == "work"`` entries of emails/phoneNumbers/addresses are read (documented:
    other types are not processed). ``None`` values are kept so the caller can decide
    whether they clear (flowNullValues) or are skipped.
    """
    out: dict[str, Any] = {}
    ignored: list[str] = []
    for key, value in data.items():
        if key == "schemas":
            continue
        if key in CORE_SIMPLE:
            out[key] = value
        elif key == "name":
            if value is None:
                for part in NAME_PARTS:
                    out[f"name.{part}"] = None
            elif isinstance(value, dict):
                for part, sub in value.items():
                    out[f"name.{part}"] = sub
            else:
                ignored.append(key)
        elif key in MULTI_VALUED:
            _flatten_multi(key, value, out, ignored)
        elif key == ENTERPRISE_USER_SCHEMA or (key.startswith("urn:") and key != CORE_USER_SCHEMA):
            if not isinstance(value, dict):
                ignored.append(key)
                continue
            for part, sub in value.items():
                if key == ENTERPRISE_USER_SCHEMA and part == "manager":
                    out[MANAGER] = _manager_value(sub)
                else:
                    out[f"{key}:{part}"] = sub
        else:
            ignored.append(key)
    return out, ignored


def _manager_value(sub: Any) -> Any:
    """``manager`` is ``{"value": <manager's externalId>}``; a bare string is tolerated."""
    return sub.get("value") if isinstance(sub, dict) else sub


def _flatten_multi(family: str, value: Any, out: dict[str, Any], ignored: list[str]) -> None:
    parts = MULTI_VALUED[family]
    if value is None:
        for part in parts:
            out[_multi(family, part)] = None
        return
    if not isinstance(value, list):
        ignored.append(family)
        return
    work = None
    for entry in value:
        if isinstance(entry, dict) and entry.get("type") == "work":
            if work is None or entry.get("primary") is True:
                work = entry
        else:
            ignored.append(f"{family}[type eq {_type_label(entry)}]")
    if work is None:
        return
    for part in parts:
        if part in work:
            out[_multi(family, part)] = work[part]


def _type_label(entry: Any) -> str:
    t = entry.get("type") if isinstance(entry, dict) else None
    return f'"{t}"' if isinstance(t, str) else "null"
