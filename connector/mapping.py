"""The declarative mapping language: YAML in, a compiled row → SCIM user function out.

A mapping file never runs code: it is read with PyYAML's safe loader (aliases refused,
duplicate keys refused), every value is a column name, a constant, a ``{Column}``
template or a coalesce of those, followed by transforms from the fixed set in
:mod:`connector.transforms`. See ``docs/mapping.md`` for the language reference and
``connector/schemas/mapping.schema.json`` for editor completion.

Loading collects **every** problem with its YAML line before raising
:class:`~connector.errors.MappingError`; warnings (valid but probably unintended, such
as a non-``work`` email type, which Entra ignores) are kept on :attr:`Mapping.warnings`.

This module holds the attribute catalogue, the file's sections and :class:`Mapping`;
a file becomes a :class:`~connector.mapping_plan.Plan` (values compiled by
:mod:`connector.mapping_compile`) and a plan becomes the row function in
:mod:`connector.mapping_run`, the one executor for rows by name and by position.

Payload facts (Graph ``synchronization-bulkupload`` docs and the inbound provisioning
known-issues page): ``data.schemas`` lists core + enterprise User URNs and each custom
namespace; custom attributes nest under their namespace key; ``manager.value`` is the
manager's externalId; only ``type: work`` emails/phoneNumbers/addresses are processed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from connector.errors import MappingError
from connector.extract import ExtractProfile
from connector.mapping_compile import Context, expr, multi, profile, suggest
from connector.mapping_plan import ACTIVE_REASON, Assign, Const, Copy, Expr, Plan, Step
from connector.mapping_run import Applier, build
from connector.mapping_values import Values
from connector.mapping_yaml import YamlValue, read_source, read_tree
from connector.scim import CORE_USER_SCHEMA, ENTERPRISE_USER_SCHEMA

__all__ = [
    "CORE_ATTRIBUTES",
    "ENTERPRISE_ATTRIBUTES",
    "MULTI_VALUED_ATTRIBUTES",
    "Mapping",
    "check_mapping",
    "load_mapping",
]

# --- the SCIM attributes Entra's bulkUpload documents (Graph bulkUpload example 1) ------------

#: core User: attribute -> "string" | "boolean" | {sub-attribute: type} for complex ones
CORE_ATTRIBUTES: Final[dict[str, Any]] = {
    "userName": "string",
    "name": {
        "formatted": "string",
        "familyName": "string",
        "givenName": "string",
        "middleName": "string",
        "honorificPrefix": "string",
        "honorificSuffix": "string",
    },
    "displayName": "string",
    "nickName": "string",
    "profileUrl": "string",
    "title": "string",
    "userType": "string",
    "preferredLanguage": "string",
    "locale": "string",
    "timezone": "string",
    "active": "boolean",
}
#: multi-valued core attributes and their sub-attributes (``type``/``primary`` are constants)
MULTI_VALUED_ATTRIBUTES: Final[dict[str, tuple[str, ...]]] = {
    "emails": ("value", "display"),
    "phoneNumbers": ("value", "display"),
    "addresses": (
        "formatted",
        "streetAddress",
        "locality",
        "region",
        "postalCode",
        "country",
    ),
}
ENTERPRISE_ATTRIBUTES: Final[dict[str, Any]] = {
    "employeeNumber": "string",
    "costCenter": "string",
    "organization": "string",
    "division": "string",
    "department": "string",
    "manager": {"value": "string", "displayName": "string"},
}
_SECTIONS: Final = ("version", "extract", "externalId", "core", "enterprise", "extensions")
_CUSTOM_NAME: Final = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_BOOL_TEXT: Final = ("true", "false")
_URN: Final = re.compile(r"urn:[A-Za-z0-9][A-Za-z0-9.:_-]*[A-Za-z0-9]")


@dataclass(slots=True)
class _Target:
    name: str  # e.g. "name.givenName", "urn:...:User:HireDate"
    path: tuple[str, ...]
    kind: str  # "string" | "boolean" | "any"
    line: int


def _no_sub_attribute(
    section: str, parent: str, child: str, subs: dict[str, str], line: int, ctx: Context
) -> None:
    ctx.err(
        line,
        f"{section}: {parent} has no sub-attribute {child!r}; known: "
        + ", ".join(subs)
        + suggest(child, subs),
    )


def _resolve_simple(
    section: str, key: str, value: YamlValue, ctx: Context
) -> list[tuple[_Target, YamlValue]] | None:
    """Expand a core/enterprise key into leaf targets (dotted and nested forms)."""
    table = CORE_ATTRIBUTES if section == "core" else ENTERPRISE_ATTRIBUTES
    prefix: tuple[str, ...] = () if section == "core" else (ENTERPRISE_USER_SCHEMA,)
    parent, _, child = key.partition(".")
    if parent not in table:
        known = list(table) + (list(MULTI_VALUED_ATTRIBUTES) if section == "core" else [])
        hint = suggest(parent, known)
        if section == "core" and parent in ENTERPRISE_ATTRIBUTES:
            hint = " (it is an enterprise attribute: put it under enterprise:)"
        elif section == "enterprise" and parent in CORE_ATTRIBUTES:
            hint = " (it is a core attribute: put it under core:)"
        elif parent == "externalId":
            hint = " (externalId is set at the top level of the mapping)"
        ctx.err(value.line, f"{section}: {key!r} is not a SCIM {section} User attribute{hint}")
        return None
    kind = table[parent]
    if isinstance(kind, dict):
        subs: dict[str, str] = kind
        if child:
            if child not in subs:
                _no_sub_attribute(section, parent, child, subs, value.line, ctx)
                return None
            return [(_Target(key, (*prefix, parent, child), subs[child], value.line), value)]
        if isinstance(value.v, dict) and value.v and set(value.v) <= set(subs):
            return [
                (_Target(f"{parent}.{c}", (*prefix, parent, c), subs[c], v.line), v)
                for c, v in value.v.items()
            ]
        if "value" in subs:  # manager: ManagerID is manager.value
            return [
                (
                    _Target(f"{parent}.value", (*prefix, parent, "value"), "string", value.line),
                    value,
                )
            ]
        if isinstance(value.v, dict) and any(
            c in subs or suggest(c, subs) for c in value.v
        ):  # a nested block with a misspelt sub-attribute
            for c, v in value.v.items():
                if c not in subs:
                    _no_sub_attribute(section, parent, c, subs, v.line, ctx)
            return None
        ctx.err(
            value.line,
            f"{section}: {parent} is complex; map its sub-attributes ({', '.join(subs)})"
            f" as {parent}.<sub> or a nested block",
        )
        return None
    if child:
        ctx.err(value.line, f"{section}: {parent} has no sub-attributes")
        return None
    return [(_Target(key, (*prefix, key), kind, value.line), value)]


@dataclass(slots=True)
class _Steps:
    """The plan being built: steps in output order, the targets set and where each was mapped."""

    ctx: Context
    steps: list[Step] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)
    seen: dict[str, int] = field(default_factory=dict)
    custom: list[tuple[str, str]] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)

    def add(self, target: _Target, value: YamlValue) -> None:
        """A single-valued attribute: a plain copy, or an assignment with its checks."""
        ctx = self.ctx
        if target.name in self.seen:
            ctx.err(
                target.line,
                f"{target.name} is mapped twice (first on line {self.seen[target.name]})",
            )
            return
        self.seen[target.name] = target.line
        ctx.touched = set()
        e = expr(value, ctx, target.name)
        if e is None or ctx.touched & ctx.skip:
            return
        if target.name == "active":
            _check_active(e, value, ctx)
        elif target.kind == "boolean":
            if e.send_null:
                ctx.err(value.line, f"{target.name} cannot send null: it must be true or false")
            if e.text_only and not e.may_bool:
                ctx.warn(
                    value.line,
                    f"{target.name} comes from text without equals or lookup; only the values"
                    " true/false will be accepted",
                )
        self.targets.append(target.name)
        required = target.name == "active"
        column = e.plain_column
        if column is not None and target.kind != "boolean" and not required:
            self.steps.append(Copy(target.path[:-1], target.path[-1], column))
            return
        self.steps.append(Assign(target.name, target.path, target.kind, e, required))

    def section(self, key: str, section_y: YamlValue) -> None:
        """The core or enterprise block."""
        ctx = self.ctx
        if not isinstance(section_y.v, dict):
            ctx.err(section_y.line, f"{key} must be a block of attribute: value lines")
            return
        for attr, value in section_y.v.items():
            if key == "core" and attr in MULTI_VALUED_ATTRIBUTES:
                if attr in self.seen:
                    ctx.err(value.line, f"{attr} is mapped twice")
                    continue
                self.seen[attr] = value.line
                ctx.touched = set()
                s = multi(attr, MULTI_VALUED_ATTRIBUTES[attr], value, ctx)
                if s is not None and not ctx.touched & ctx.skip:
                    self.steps.append(s)
                    self.targets.append(attr)
                continue
            for target, y in _resolve_simple(key, attr, value, ctx) or []:
                self.add(target, y)

    def extensions(self, section_y: YamlValue) -> None:
        """The extensions block: custom attributes under their namespace URN."""
        ctx = self.ctx
        if not isinstance(section_y.v, dict):
            ctx.err(section_y.line, "extensions must be a block of <urn>: {Attribute: value}")
            return
        for urn, block in section_y.v.items():
            if not _URN.fullmatch(urn):
                ctx.err(
                    block.line,
                    f"extensions: {urn!r} is not a namespace URN"
                    " (e.g. urn:ietf:params:scim:schemas:extension:contoso:1.0:User)",
                )
                continue
            if urn in (CORE_USER_SCHEMA, ENTERPRISE_USER_SCHEMA):
                ctx.err(block.line, f"{urn} is built in: use the core/enterprise sections")
                continue
            if not isinstance(block.v, dict) or not block.v:
                ctx.err(block.line, f"extensions: {urn} needs a block of Attribute: value")
                continue
            self.namespaces.append(urn)
            for attr, value in block.v.items():
                if not _CUSTOM_NAME.fullmatch(attr):
                    ctx.err(
                        value.line,
                        f"custom attribute name {attr!r} must be letters, digits and _"
                        " (Entra filters fail on special characters)",
                    )
                    continue
                self.custom.append((urn, attr))
                self.add(_Target(f"{urn}:{attr}", (urn, attr), "any", value.line), value)


@dataclass(frozen=True, eq=False)
class Mapping:
    """A compiled mapping. Build with :func:`load_mapping`; apply with :meth:`apply`.

    ``targets`` lists the mapped attribute names in output order (custom ones as
    ``<urn>:<attr>``); ``column_lines`` gives the YAML line where each column is first
    used. ``extract_profile`` comes from the file's ``extract:`` section;
    its ``id_column`` defaults to :attr:`external_id_column`.
    """

    source: str
    external_id_column: str
    required_columns: tuple[str, ...]
    custom_namespaces: tuple[str, ...]
    extract_profile: ExtractProfile
    targets: tuple[str, ...]
    warnings: tuple[str, ...]
    column_lines: dict[str, int] = field(repr=False)
    _plan: Plan = field(repr=False)
    _custom: tuple[tuple[str, str], ...] = field(repr=False)
    _text: str = field(repr=False, default="")
    _skip: frozenset[str] = field(repr=False, default=frozenset())
    _partial: bool = field(repr=False, default=False)
    _by_name: Applier | None = field(init=False, repr=False, compare=False, default=None)

    def bind(self, columns: Sequence[str]) -> Callable[[Values, str], dict[str, Any]]:
        """:meth:`apply` for rows given as sequences of values in ``columns`` order.

        The reader can then hand over a list instead of building a dict per row: the
        same plan is run with column positions in place of names. ``columns`` must hold
        every column in :attr:`required_columns`.
        """
        missing = [c for c in self.required_columns if c not in columns]
        if missing:
            raise ValueError("columns lack " + ", ".join(missing))
        index = {c: i for i, c in enumerate(columns)}
        return build(self._plan, index.__getitem__)

    def without_columns(self, columns: Iterable[str]) -> Mapping:
        """This mapping with every attribute that reads one of ``columns`` left out.

        For ``connector validate``: rows can still be checked against the attributes
        whose columns the extract has. Raises ValueError for the externalId column.
        """
        skip = self._skip | frozenset(columns)
        if self.external_id_column in skip:
            raise ValueError(f"the externalId column {self.external_id_column!r} is needed")
        mapping, problems, _ = _compile(self._text, self.source, skip=skip, partial=self._partial)
        if mapping is None:  # cannot happen: the same text compiled before
            raise MappingError(f"{self.source} cannot be compiled", problems)
        return mapping

    def custom_attribute_names(self) -> list[str]:
        """``<namespace>:<attribute>`` names, as Entra's attribute list (schema) needs them."""
        return [f"{ns}:{attr}" for ns, attr in self._custom]

    @property
    def schemas(self) -> list[str]:
        """Every schema URN a record of this mapping may list in ``data.schemas``."""
        return [CORE_USER_SCHEMA, ENTERPRISE_USER_SCHEMA, *self.custom_namespaces]

    def apply(self, values: Values, external_id: str) -> dict[str, Any]:
        """The complete SCIM user for one row (schemas, externalId, then mapped attributes).

        ``values`` must hold every column in :attr:`required_columns`. Raises
        :class:`TransformError` when a value cannot be mapped (the row is rejected).
        """
        by_name = self._by_name
        if by_name is None:  # built on first use: readers bind by position instead
            by_name = build(self._plan, str)
            object.__setattr__(self, "_by_name", by_name)
        return by_name(values, external_id)


def _check_active(e: Expr, value: YamlValue, ctx: Context) -> None:
    """``active`` must be sent with every record, as true or false: a condition, a null,
    or a value that can never be true/false is an error (see :data:`ACTIVE_REASON`)."""
    if e.when is not None:
        ctx.err(
            value.line,
            "active cannot have when: rows where it does not hold would be sent without"
            f" active; {ACTIVE_REASON}; use a lookup with a default instead",
        )
    if e.send_null:
        ctx.err(value.line, f"active cannot send null: it must be true or false; {ACTIVE_REASON}")
    src = e.source
    if isinstance(src, Const) and not e.transforms:
        v = src.value
        if not isinstance(v, bool) and not (isinstance(v, str) and v.lower() in _BOOL_TEXT):
            ctx.err(value.line, f"active: the constant {v!r} is not true or false")
        return
    if not e.may_bool and not e.text_only:
        ctx.err(
            value.line,
            "active can never be true or false: end it with equals, or a lookup (or"
            " default) whose values are all true/false",
        )
    elif e.text_only and not e.may_bool:
        ctx.warn(
            value.line,
            "active comes from text without equals or lookup; only the values"
            " true/false will be accepted, any other value rejects the row",
        )


def load_mapping(path_or_text: str | Path) -> Mapping:
    """Load and compile a mapping from a file path or from YAML text (text has a newline).

    Raises :class:`~connector.errors.MappingError` listing every problem, each as
    ``file:line: message``.
    """
    text, label = read_source(path_or_text)
    mapping, problems, _ = _compile(text, label)
    if mapping is None:
        raise MappingError(f"{label} has {len(problems)} problem(s)", problems)
    return mapping


def check_mapping(
    path_or_text: str | Path, *, partial: bool = False
) -> tuple[Mapping | None, list[str], list[str]]:
    """Like :func:`load_mapping`, but returns ``(mapping or None, problems, warnings)``.

    For ``connector validate``, which reports warnings even when there are problems.
    With ``partial``, a mapping with problems still comes back, built from the
    attributes that compiled (None only without an externalId column), so an extract
    can be checked against them; such a mapping is for checking only, never for a sync.
    A file that cannot be read or parsed as YAML still raises MappingError.
    """
    text, label = read_source(path_or_text)
    return _compile(text, label, partial=partial)


def _top_level(root: YamlValue, ctx: Context) -> dict[str, YamlValue]:
    """The file's sections, each unknown key and a wrong version reported."""
    if not isinstance(root.v, dict):
        raise MappingError(
            f"{ctx.label} is not a mapping",
            [f"{ctx.label}:{root.line}: the top level must be a block"],
        )
    top: dict[str, YamlValue] = root.v
    for key, y in top.items():
        if key not in _SECTIONS:
            hint = suggest(key, _SECTIONS)
            if key in CORE_ATTRIBUTES or key in MULTI_VALUED_ATTRIBUTES:
                hint = " (core attributes go under core:)"
            ctx.err(y.line, f"unknown top-level key {key!r}{hint}")
    if "version" in top and top["version"].v != 1:
        ctx.err(top["version"].line, "version must be 1")
    return top


def _external_id(top: dict[str, YamlValue], root: YamlValue, ctx: Context) -> str:
    """The externalId column, or "" (reported) when it is missing or not a column name."""
    ext_y = top.get("externalId")
    if ext_y is None:
        ctx.err(root.line, "externalId is required: the column holding the worker's unique id")
        return ""
    col = ext_y.v
    if isinstance(col, dict) and set(col) == {"column"}:
        col = col["column"].v
    if not isinstance(col, str) or not col:
        ctx.err(
            ext_y.line,
            "externalId must be a plain column name (duplicates are checked on that column)",
        )
        return ""
    ctx.use(col, ext_y.line)
    return col


def _compile(
    text: str,
    label: str,
    *,
    skip: frozenset[str] = frozenset(),
    partial: bool = False,
) -> tuple[Mapping | None, list[str], list[str]]:
    """Compile mapping ``text``. ``skip``: leave out attributes reading those columns.

    ``partial``: with problems, still build a mapping of what compiled (when the
    externalId column is known), for checking an extract; never for a sync.
    """
    root = read_tree(text, label)
    ctx = Context(label, skip=skip)
    top = _top_level(root, ctx)
    external_id_column = _external_id(top, root, ctx)
    built = _Steps(ctx)
    for key, section_y in top.items():
        if key in ("core", "enterprise"):
            built.section(key, section_y)
        elif key == "extensions":
            built.extensions(section_y)
    if "active" not in built.seen:
        ctx.err(root.line, f"active is not mapped: every record must carry it; {ACTIVE_REASON}")
    if "userName" not in built.seen:
        ctx.warn(root.line, "userName is not mapped: Entra needs it to create users")
    extract_profile = profile(top.get("extract"), ctx, external_id_column)
    if ctx.problems and not (partial and external_id_column):
        return None, ctx.problems, ctx.warnings
    mapping = Mapping(
        source=label,
        external_id_column=external_id_column,
        required_columns=tuple(c for c in ctx.columns if c not in skip),
        custom_namespaces=tuple(built.namespaces),
        extract_profile=extract_profile,
        targets=tuple(built.targets),
        warnings=tuple(ctx.warnings),
        column_lines=dict(ctx.columns),
        _plan=Plan(tuple(built.steps), tuple(built.namespaces)),
        _custom=tuple(built.custom),
        _text=text,
        _skip=skip,
        _partial=partial,
    )
    return mapping, ctx.problems, ctx.warnings
