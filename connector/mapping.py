"""The declarative mapping language: YAML in, a compiled row → SCIM user function out.

A mapping file never runs code: it is read with PyYAML's safe loader (aliases refused,
duplicate keys refused), every value is a column name, a constant, a ``{Column}``
template or a coalesce of those, followed by transforms from the fixed set in
:mod:`connector.transforms`. See ``docs/mapping.md`` for the language reference and
``connector/schemas/mapping.schema.json`` for editor completion.

Loading collects **every** problem with its YAML line before raising
:class:`~connector.errors.MappingError`; warnings (valid but probably unintended, such
as a non-``work`` email type, which Entra ignores) are kept on :attr:`Mapping.warnings`.

Payload facts (Graph ``synchronization-bulkupload`` docs and the inbound provisioning
known-issues page): ``data.schemas`` lists core + enterprise User URNs and each custom
namespace; custom attributes nest under their namespace key; ``manager.value`` is the
manager's externalId; only ``type: work`` emails/phoneNumbers/addresses are processed.
"""

from __future__ import annotations

import difflib
import re
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol

import yaml

from connector.errors import MappingError, TransformError
from connector.extract import ExtractProfile
from connector.scim import CORE_USER_SCHEMA, ENTERPRISE_USER_SCHEMA
from connector.transforms import Transform, make_transform

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
_EXPR_KEYS: Final = frozenset(
    {"column", "const", "template", "coalesce", "transforms", "when", "send_null"}
)
_SOURCES: Final = ("column", "const", "template", "coalesce")
_WHEN_TESTS: Final = ("equals", "not_equals", "in", "not_in", "empty", "not_empty")
_CUSTOM_NAME: Final = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_URN: Final = re.compile(r"urn:[A-Za-z0-9][A-Za-z0-9.:_-]*[A-Za-z0-9]")
_YAML12_BOOL: Final = frozenset({"true", "false"})
_PLAIN_TAGS: Final = frozenset({"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"})


class Values(Protocol):
    """One row's values by column: a dict by name, or a sequence bound by :meth:`Mapping.bind`."""

    def __getitem__(self, key: Any, /) -> str: ...


Getter = Callable[[Values], Any]
Setter = Callable[[Values, dict[str, Any]], None]

# --- YAML with line numbers ------------------------------------------------------------------


@dataclass(slots=True)
class _Y:
    """A YAML value with the (1-based) line it starts on; dict keys are their raw text."""

    v: Any
    line: int


def _tree(text: str, label: str) -> _Y:
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 0
        raise MappingError(
            f"{label} is not valid YAML", [f"{label}:{line}: {exc.problem or exc}"]
        ) from None
    except yaml.YAMLError as exc:
        raise MappingError(f"{label} is not valid YAML", [f"{label}: {exc}"]) from None
    finally:
        loader.dispose()
    if root is None:
        raise MappingError(f"{label} is empty", [f"{label}:1: the mapping file is empty"])
    problems: list[str] = []
    seen: set[int] = set()
    constructor = yaml.SafeLoader("")

    def walk(node: yaml.Node) -> _Y:
        line = node.start_mark.line + 1
        if id(node) in seen:
            problems.append(f"{label}:{line}: YAML anchors and aliases are not supported")
            return _Y(None, line)
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode | yaml.SequenceNode) and node.tag not in _PLAIN_TAGS:
            problems.append(f"{label}:{line}: YAML tag {node.tag!r} is not allowed")
            return _Y(None, line)
        if isinstance(node, yaml.MappingNode):
            out: dict[str, _Y] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                    problems.append(f"{label}:{line}: keys must be plain text (no '<<' merges)")
                    continue
                key = str(key_node.value)
                if key in out:
                    problems.append(
                        f"{label}:{key_node.start_mark.line + 1}: duplicate key {key!r}"
                    )
                    continue
                out[key] = walk(value_node)
            return _Y(out, line)
        if isinstance(node, yaml.SequenceNode):
            return _Y([walk(n) for n in node.value], line)
        assert isinstance(node, yaml.ScalarNode)
        if node.tag == "tag:yaml.org,2002:bool" and node.value.lower() not in _YAML12_BOOL:
            return _Y(node.value, line)  # YAML 1.2 booleans only: 'yes', 'No', 'on' stay text
        try:
            value = constructor.construct_object(node)
        except yaml.YAMLError as exc:
            problems.append(f"{label}:{line}: {getattr(exc, 'problem', None) or exc}")
            return _Y(None, line)
        if not isinstance(value, str | bool | int | float) and value is not None:
            value = value.isoformat() if hasattr(value, "isoformat") else str(value)
        return _Y(value, line)

    tree = walk(root)
    constructor.dispose()
    if problems:
        raise MappingError(f"{label} cannot be read", problems)
    return tree


def _plain(y: _Y) -> Any:
    if isinstance(y.v, dict):
        return {k: _plain(v) for k, v in y.v.items()}
    if isinstance(y.v, list):
        return [_plain(v) for v in y.v]
    return y.v


# --- compilation -----------------------------------------------------------------------------


@dataclass(slots=True)
class _Ctx:
    label: str
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    columns: dict[str, int] = field(default_factory=dict)
    index: dict[str, int] | None = None  # set when binding to a row layout (Mapping.bind)
    skip: frozenset[str] = frozenset()  # attributes reading these columns are left out
    touched: set[str] = field(default_factory=set)  # columns read by the attribute at hand

    def err(self, line: int, msg: str) -> None:
        self.problems.append(f"{self.label}:{line}: {msg}")

    def warn(self, line: int, msg: str) -> None:
        self.warnings.append(f"{self.label}:{line}: {msg}")

    def use(self, column: str, line: int) -> Any:
        """Record that ``column`` is read; returns the key to read it with at run time."""
        self.columns.setdefault(column, line)
        self.touched.add(column)
        if self.index is None:
            return column
        return self.index[column] if column not in self.skip else -1  # left out anyway


@dataclass(slots=True)
class _Expr:
    get: Getter
    when: Callable[[Values], bool] | None
    send_null: bool
    text_only: bool  # always str or None (no finalize needed for string targets)
    may_bool: bool
    column: Any = None  # the column's key when the value is a column copied as is (fast path)
    bool_only: bool = False  # the last transform always yields a boolean (equals, bool lookup)


def _suggest(name: str, options: Iterator[str] | list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(name, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _column_getter(col: Any) -> Getter:
    def get(values: Values) -> Any:
        return values[col] or None

    return get


def _const_getter(value: Any) -> Getter:
    out = None if value == "" else value

    def get(values: Values) -> Any:
        return out

    return get


_TEMPLATE_TOKEN: Final = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


def _template(y: _Y, ctx: _Ctx) -> Getter | None:
    if not isinstance(y.v, str) or not y.v:
        ctx.err(y.line, "template must be non-empty text like '{FirstName}.{LastName}@contoso.com'")
        return None
    fmt: list[str] = []
    cols: list[str] = []
    pos = 0
    ok = True
    for m in _TEMPLATE_TOKEN.finditer(y.v):
        fmt.append(y.v[pos : m.start()])
        tok = m.group(0)
        if tok in ("{{", "}}"):
            fmt.append(tok)
        elif m.group(1) is not None:
            col = m.group(1).strip()
            if not col:
                ctx.err(y.line, "template has an empty {} placeholder")
                ok = False
            cols.append(ctx.use(col, y.line) if col else col)
            fmt.append("{" + str(len(cols) - 1) + "}")
        else:
            ctx.err(y.line, "template has an unmatched brace; write {{ or }} for a literal one")
            ok = False
        pos = m.end()
    fmt.append(y.v[pos:])
    if not ok:
        return None
    pattern = "".join(fmt)
    if not cols:
        literal = pattern.replace("{{", "{").replace("}}", "}")
        return _const_getter(literal)
    columns = tuple(cols)

    def get(values: Values) -> Any:
        args = [values[c] for c in columns]
        if not all(args):
            return None  # a template with an empty part is omitted, never half-filled
        return pattern.format(*args)

    return get


def _when(y: _Y, ctx: _Ctx) -> Callable[[Values], bool] | None:
    if not isinstance(y.v, dict) or "column" not in y.v:
        ctx.err(y.line, "when needs {column: <name>, equals|not_equals|in|not_in|empty|not_empty}")
        return None
    spec: dict[str, _Y] = y.v
    extra = set(spec) - {"column", *_WHEN_TESTS}
    tests = [t for t in _WHEN_TESTS if t in spec]
    if extra:
        ctx.err(y.line, f"when has unknown keys: {', '.join(sorted(extra))}")
    if len(tests) != 1:
        ctx.err(y.line, "when needs exactly one test: " + ", ".join(_WHEN_TESTS))
        return None
    col = spec["column"].v
    if not isinstance(col, str) or not col:
        ctx.err(spec["column"].line, "when.column must be a column name")
        return None
    col = ctx.use(col, spec["column"].line)
    test = tests[0]
    arg = _plain(spec[test])
    if test in ("empty", "not_empty"):
        if arg is not True:
            ctx.err(spec[test].line, f"when.{test} must be true")
            return None
        if test == "empty":
            return lambda values: not values[col]
        return lambda values: bool(values[col])
    options = arg if isinstance(arg, list) else [arg]
    if test in ("equals", "not_equals") and isinstance(arg, list):
        ctx.err(spec[test].line, f"when.{test} takes one value; use in/not_in for a list")
        return None
    if not all(isinstance(o, str | int | float | bool) for o in options):
        ctx.err(spec[test].line, f"when.{test} values must be text or numbers")
        return None
    wanted = frozenset(
        ("true" if o else "false") if isinstance(o, bool) else str(o) for o in options
    )
    if test in ("equals", "in"):
        return lambda values: values[col] in wanted
    return lambda values: values[col] not in wanted


def _transforms(y: _Y, ctx: _Ctx) -> list[Transform] | None:
    items = y.v if isinstance(y.v, list) else [y]
    out: list[Transform] = []
    ok = True
    for item in items:
        if isinstance(item.v, str):
            name, arg = item.v, None
        elif isinstance(item.v, dict) and len(item.v) == 1:
            name, arg_y = next(iter(item.v.items()))
            arg = _plain(arg_y)
        else:
            ctx.err(item.line, "a transform is a name (lower) or one key with its argument")
            ok = False
            continue
        try:
            out.append(make_transform(name, arg))
        except ValueError as exc:
            ctx.err(item.line, str(exc))
            ok = False
    return out if ok else None


def _chain(src: Getter, transforms: list[Transform], column: Any = None) -> Getter:
    """``src`` then ``transforms``; ``column`` names src's column when src only reads it."""
    if not transforms:
        return src
    if column is not None:
        fused = _fused_column_chain(column, transforms, _chain(src, transforms))
        if fused is not None:
            return fused
    if len(transforms) == 1 and not transforms[0].accepts_none:
        fn = transforms[0].fn
        if column is not None:
            col = column

            def get_col(values: Values) -> Any:
                v = values[col]
                if not v:
                    return None
                v = fn(v)
                return None if v == "" or v == [] else v

            return get_col

        def get_one(values: Values) -> Any:
            v = src(values)
            if v is None:
                return None
            v = fn(v)
            return None if v == "" or v == [] else v

        return get_one
    steps = tuple((t.fn, t.accepts_none) for t in transforms)

    def get(values: Values) -> Any:
        v = src(values)
        for fn, none_ok in steps:
            if v is None and not none_ok:
                continue
            v = fn(v)
            if v == "" or v == []:
                v = None
        return v

    return get


def _fused_column_chain(col: Any, transforms: list[Transform], slow: Getter) -> Getter | None:
    """A column fed through transforms as one closure, or None when they do not allow it.

    Every transform must have an ``on_text`` form and every one but the last must keep a
    non-empty text non-empty (``keeps_text``): then no value between two steps can be
    None, empty or a non-text, so the generic loop's checks would never fire and the
    steps are called back to back. A value that is not a ``str`` (rows are text, but
    :meth:`Mapping.apply` takes any mapping) goes through ``slow``, the generic chain.
    """
    ops: list[Callable[[str], Any]] = []
    for t in transforms:
        if t.on_text is None or t.accepts_none:
            return None
        ops.append(t.on_text)
    if not all(t.keeps_text for t in transforms[:-1]):
        return None
    last = transforms[-1]
    # the last output is checked for emptiness unless it cannot be empty
    check = not (last.keeps_text or last.produces_bool)
    if len(ops) == 1:
        (f1,) = ops
        if not check:

            def get1(values: Values) -> Any:
                v = values[col]
                if not v:
                    return None
                return f1(v) if v.__class__ is str else slow(values)

            return get1
    elif len(ops) == 2 and not check:
        f1, f2 = ops

        def get2(values: Values) -> Any:
            v = values[col]
            if not v:
                return None
            return f2(f1(v)) if v.__class__ is str else slow(values)

        return get2
    steps = tuple(ops)

    def get_n(values: Values) -> Any:
        v: Any = values[col]
        if not v:
            return None
        if v.__class__ is not str:
            return slow(values)
        for f in steps:
            v = f(v)
        return None if check and (v == "" or v == []) else v

    return get_n


_TEXT_TRANSFORMS: Final = frozenset(
    {"trim", "lower", "upper", "title", "strip_diacritics", "date", "replace", "truncate", "join"}
)


def _expr(y: _Y, ctx: _Ctx, where: str, *, nested: bool = False) -> _Expr | None:
    """Compile one value expression (column name shorthand or a mapping)."""
    if isinstance(y.v, str):
        if not y.v:
            ctx.err(y.line, f"{where}: empty column name")
            return None
        key = ctx.use(y.v, y.line)
        return _Expr(_column_getter(key), None, False, True, False, key)
    if not isinstance(y.v, dict):
        ctx.err(
            y.line,
            f"{where}: expected a column name or {{column|const|template|coalesce: ...}}",
        )
        return None
    spec: dict[str, _Y] = y.v
    unknown = set(spec) - _EXPR_KEYS
    if unknown:
        ctx.err(
            y.line,
            f"{where}: unknown keys {', '.join(sorted(unknown))}"
            + _suggest(sorted(unknown)[0], sorted(_EXPR_KEYS)),
        )
    sources = [s for s in _SOURCES if s in spec]
    if len(sources) != 1:
        ctx.err(y.line, f"{where}: needs exactly one of column, const, template, coalesce")
        return None
    source = sources[0]
    src_y = spec[source]
    text_only = True
    may_bool = False
    src: Getter | None
    column_key: Any = None  # set for a column source: how the row is read (name or index)
    if source == "column":
        if not isinstance(src_y.v, str) or not src_y.v:
            ctx.err(src_y.line, f"{where}: column must be a column name")
            return None
        column_key = ctx.use(src_y.v, src_y.line)
        src = _column_getter(column_key)
    elif source == "const":
        if isinstance(src_y.v, dict | list):
            ctx.err(src_y.line, f"{where}: const must be text, a number, a boolean or null")
            return None
        text_only = isinstance(src_y.v, str) or src_y.v is None
        may_bool = isinstance(src_y.v, bool)
        src = _const_getter(src_y.v)
    elif source == "template":
        src = _template(src_y, ctx)
    else:
        if nested:
            ctx.err(src_y.line, f"{where}: coalesce cannot be nested")
            return None
        if not isinstance(src_y.v, list) or len(src_y.v) < 2:
            ctx.err(src_y.line, f"{where}: coalesce needs a list of two or more values")
            return None
        parts = [_expr(p, ctx, where, nested=True) for p in src_y.v]
        if any(p is None for p in parts):
            return None
        compiled = [p for p in parts if p is not None]
        for p, py in zip(compiled, src_y.v, strict=True):
            if p.when is not None or p.send_null:
                ctx.err(
                    py.line, f"{where}: when/send_null go on the attribute, not inside coalesce"
                )
        text_only = all(p.text_only for p in compiled)
        may_bool = any(p.may_bool for p in compiled)
        getters = tuple(p.get for p in compiled)

        def coalesce(values: Values) -> Any:
            for g in getters:
                v = g(values)
                if v is not None:
                    return v
            return None

        src = coalesce
    transforms: list[Transform] = []
    if "transforms" in spec:
        got = _transforms(spec["transforms"], ctx)
        if got is None:
            return None
        transforms = got
    for t in transforms:
        if t.produces_bool:
            may_bool = True
        if t.name not in _TEXT_TRANSFORMS:
            text_only = False
    when = _when(spec["when"], ctx) if "when" in spec else None
    send_null = False
    if "send_null" in spec:
        if not isinstance(spec["send_null"].v, bool):
            ctx.err(spec["send_null"].line, f"{where}: send_null must be true or false")
        else:
            send_null = spec["send_null"].v
    if src is None:
        return None
    plain = column_key if source == "column" and not transforms and when is None else None
    if send_null:
        plain = None
    expr = _Expr(_chain(src, transforms, column_key), when, send_null, text_only, may_bool, plain)
    expr.bool_only = bool(transforms) and transforms[-1].produces_bool
    return expr


def _to_text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _finalizer(target: str, kind: str, expr: _Expr) -> Callable[[Any], Any] | None:
    """Per-row type check of a value about to be set (None when nothing can go wrong)."""
    if kind == "boolean":
        if expr.bool_only:
            return None

        def to_bool(v: Any) -> Any:
            if isinstance(v, bool):
                return v
            if isinstance(v, str) and v.lower() in ("true", "false"):
                return v.lower() == "true"
            raise TransformError(
                f"{target} must be true or false; map it with equals or a lookup",
                "invalid_value",
            )

        return to_bool
    if expr.text_only:
        return None

    def check(v: Any) -> Any:
        if isinstance(v, list):
            raise TransformError(f"{target} ended as a list; add a join or split.index")
        if kind == "string" and not isinstance(v, str):
            return _to_text(v)
        return v

    return check


def _setter(
    path: tuple[str, ...],
    expr: _Expr,
    finalize: Callable[[Any], Any] | None,
    required: bool,
    target: str,
) -> Setter:
    get, when, send_null = expr.get, expr.when, expr.send_null
    head, last = path[:-1], path[-1]
    if not head and when is None and not send_null:
        # the common case (top-level attribute, no condition), kept to one short call

        def set_top(values: Values, data: dict[str, Any]) -> None:
            try:
                v = get(values)
            except TransformError as exc:
                raise TransformError(f"{target}: {exc}", exc.reason_code) from None
            if v is None:
                if required:
                    raise TransformError(
                        f"{target} is empty; Entra disables accounts whose active is omitted"
                        " (add a default)",
                        "invalid_value",
                    )
                return
            data[last] = v if finalize is None else finalize(v)

        return set_top

    def set_(values: Values, data: dict[str, Any]) -> None:
        if when is not None and not when(values):
            return
        try:
            v = get(values)
        except TransformError as exc:
            raise TransformError(f"{target}: {exc}", exc.reason_code) from None
        if v is None:
            if required:
                raise TransformError(
                    f"{target} is empty; Entra disables accounts whose active is omitted"
                    " (add a default)",
                    "invalid_value",
                )
            if not send_null:
                return
        elif finalize is not None:
            v = finalize(v)
        d = data
        for k in head:
            nxt = d.get(k)
            if nxt is None:
                nxt = d[k] = {}
            d = nxt
        d[last] = v

    return set_


_Sub = tuple[str, Any, Getter]  # sub-attribute, plain column key (fast path) or None, getter
_Item = tuple[tuple[_Sub, ...], str, bool | None, Any]


def _multi_setter(attr: str, items: list[_Item]) -> Setter:
    if len(items) == 1 and items[0][2] is None and items[0][3] is None:
        subs0, typ0 = items[0][0], items[0][1]
        if all(col is not None for _, col, _ in subs0):
            pairs = tuple((key, col) for key, col, _ in subs0 if col is not None)

            def set_plain(values: Values, data: dict[str, Any]) -> None:  # inlined by _applier
                # the usual shape: one work item copied from columns, no condition
                item: dict[str, Any] = {}
                for key, col in pairs:
                    v = values[col]
                    if v:
                        item[key] = v
                if item:
                    item["type"] = typ0
                    data[attr] = [item]

            _PLAIN_ITEMS[set_plain] = (attr, pairs, typ0)
            return set_plain

    def set_(values: Values, data: dict[str, Any]) -> None:
        out: list[dict[str, Any]] = []
        for subs, typ, primary, when in items:
            if when is not None and not when(values):
                continue
            item: dict[str, Any] = {}
            for key, col, get in subs:
                if col is not None:
                    v = values[col]
                    if v:
                        item[key] = v
                    continue
                try:
                    v = get(values)
                except TransformError as exc:
                    raise TransformError(f"{attr}.{key}: {exc}", exc.reason_code) from None
                if v is not None:
                    if isinstance(v, list):
                        raise TransformError(f"{attr}.{key} ended as a list; add a join")
                    item[key] = v if isinstance(v, str) else _to_text(v)
            if not item:
                continue
            item["type"] = typ
            if primary is not None:
                item["primary"] = primary
            out.append(item)
        if out:
            data[attr] = out

    return set_


@dataclass(slots=True)
class _Target:
    name: str  # e.g. "name.givenName", "urn:...:User:HireDate"
    path: tuple[str, ...]
    kind: str  # "string" | "boolean" | "any"
    line: int


def _resolve_simple(
    section: str, key: str, value: _Y, ctx: _Ctx
) -> list[tuple[_Target, _Y]] | None:
    """Expand a core/enterprise key into leaf targets (dotted and nested forms)."""
    table = CORE_ATTRIBUTES if section == "core" else ENTERPRISE_ATTRIBUTES
    prefix: tuple[str, ...] = () if section == "core" else (ENTERPRISE_USER_SCHEMA,)
    parent, _, child = key.partition(".")
    if parent not in table:
        known = list(table) + (list(MULTI_VALUED_ATTRIBUTES) if section == "core" else [])
        hint = _suggest(parent, known)
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
                ctx.err(
                    value.line,
                    f"{section}: {parent} has no sub-attribute {child!r}; known: "
                    + ", ".join(subs),
                )
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


def _multi(attr: str, value: _Y, ctx: _Ctx) -> Setter | None:
    subs_allowed = MULTI_VALUED_ATTRIBUTES[attr]
    items_y: list[_Y]
    if isinstance(value.v, list):
        items_y = value.v
    elif isinstance(value.v, str):  # emails: WorkEmail
        items_y = [_Y({"value": value}, value.line)] if "value" in subs_allowed else []
    elif isinstance(value.v, dict):
        items_y = [value]
    else:
        items_y = []
    if not items_y:
        ctx.err(value.line, f"core: {attr} needs a list of items, e.g. - {{value: Column}}")
        return None
    items: list[_Item] = []
    for item in items_y:
        if not isinstance(item.v, dict):
            ctx.err(item.line, f"core: each {attr} item is a block of sub-attributes")
            continue
        spec: dict[str, _Y] = item.v
        typ = "work"
        if "type" in spec:
            t = spec["type"]
            if not isinstance(t.v, str) or not t.v:
                ctx.err(t.line, f"core: {attr}.type must be a constant text such as work")
            else:
                typ = t.v
                if typ != "work":
                    ctx.warn(
                        t.line,
                        f"{attr} type {typ!r}: Entra inbound provisioning processes only"
                        f' {attr}[type eq "work"] and ignores other values'
                        " (inbound provisioning known issues)",
                    )
        primary: bool | None = None
        if "primary" in spec:
            p = spec["primary"]
            if not isinstance(p.v, bool):
                ctx.err(p.line, f"core: {attr}.primary must be true or false")
            else:
                primary = p.v
        when = _when(spec["when"], ctx) if "when" in spec else None
        subs: list[_Sub] = []
        for key, sub_y in spec.items():
            if key in ("type", "primary", "when"):
                continue
            if key not in subs_allowed:
                ctx.err(
                    sub_y.line,
                    f"core: {attr} has no sub-attribute {key!r}; known: "
                    + ", ".join((*subs_allowed, "type", "primary", "when"))
                    + _suggest(key, subs_allowed),
                )
                continue
            e = _expr(sub_y, ctx, f"{attr}.{key}")
            if e is None:
                continue
            if e.send_null:
                ctx.err(
                    sub_y.line,
                    f"core: send_null is not supported on {attr}: Entra clears only"
                    " single-valued attributes",
                )
            if e.when is not None:
                ctx.err(sub_y.line, f"core: put when on the {attr} item, not on {key}")
            subs.append((key, e.column, e.get))
        if not subs:
            ctx.err(item.line, f"core: a {attr} item maps no sub-attribute")
            continue
        items.append((tuple(subs), typ, primary, when))
    if not items:
        return None
    return _multi_setter(attr, items)


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
    _setters: tuple[Setter, ...] = field(repr=False)
    _custom: tuple[tuple[str, str], ...] = field(repr=False)
    _text: str = field(repr=False, default="")
    _skip: frozenset[str] = field(repr=False, default=frozenset())
    _partial: bool = field(repr=False, default=False)
    _run: _Applier | None = field(repr=False, default=None)

    def bind(self, columns: Sequence[str]) -> Callable[[Values, str], dict[str, Any]]:
        """:meth:`apply` for rows given as sequences of values in ``columns`` order.

        The reader can then hand over a list instead of building a dict per row. The
        mapping is compiled again with column positions in place of names; ``columns``
        must hold every column in :attr:`required_columns`.
        """
        missing = [c for c in self.required_columns if c not in columns]
        if missing:
            raise ValueError("columns lack " + ", ".join(missing))
        index = {c: i for i, c in enumerate(columns)}
        bound, problems, _ = _compile(
            self._text, self.source, index, skip=self._skip, partial=self._partial
        )
        if bound is None:  # cannot happen: the same text compiled cleanly by name
            raise MappingError(f"{self.source} cannot be bound", problems)
        return bound._run or bound.apply

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
        :class:`TransformError` when a value cannot be mapped (the row is then rejected).
        """
        data: dict[str, Any] = {"schemas": _BASE_SCHEMAS, "externalId": external_id}
        for step in self._setters:
            step(values, data)
        if self.custom_namespaces:
            data["schemas"] = [*_BASE_SCHEMAS, *(ns for ns in self.custom_namespaces if ns in data)]
        return data


_BASE_SCHEMAS: Final = [CORE_USER_SCHEMA, ENTERPRISE_USER_SCHEMA]


def _container(data: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    d = data
    for k in path:
        nxt = d.get(k)
        if nxt is None:
            nxt = d[k] = {}
        d = nxt
    return d


def _segments(
    steps: list[Setter | tuple[tuple[str, ...], str, Any]],
) -> tuple[Setter, ...]:
    """Merge consecutive plain column copies into one container into a single setter.

    Keeps mapping order exactly; saves a Python call per attribute on the hot path.
    """
    out: list[Setter] = []
    run_path: tuple[str, ...] | None = None
    run: list[tuple[str, Any]] = []
    for step in steps:
        if isinstance(step, tuple):
            path, key, col = step
            if run and path == run_path:
                run.append((key, col))
                continue
            if run and run_path is not None:
                out.append(_copy_setter(run_path, tuple(run)))
            run_path, run = path, [(key, col)]
            continue
        if run and run_path is not None:
            out.append(_copy_setter(run_path, tuple(run)))
        run_path, run = None, []
        out.append(step)
    if run and run_path is not None:
        out.append(_copy_setter(run_path, tuple(run)))
    return tuple(out)


_Applier = Callable[[Values, str], dict[str, Any]]
#: the one-item multi-valued setters copied from columns, with what they copy, so
#: :func:`_applier` can inline them: attribute, (sub-attribute, column) pairs, type
_PLAIN_ITEMS: weakref.WeakKeyDictionary[Setter, tuple[str, tuple[tuple[str, Any], ...], str]] = (
    weakref.WeakKeyDictionary()
)


def _applier(
    steps: list[Setter | tuple[tuple[str, ...], str, Any]], namespaces: tuple[str, ...]
) -> _Applier:
    """One function per mapping that builds a record, with the plain column copies inlined.

    Saves a Python call per setter and the loop over each setter's pairs on the hot path.
    The source is made only from this fixed template: every name in it is generated here
    (``s0``, ``k1``, ``c2``, ...) and every value from the mapping (attribute names, column
    names or positions, setters) is passed in as an argument of the factory (a closure
    variable of the function), never written into the text, so a mapping file cannot put
    code into it.
    """
    consts: dict[str, Any] = {"_base": _BASE_SCHEMAS, "_container": _container}
    lines = ['    data = {"schemas": _base, "externalId": external_id}']
    run_path: tuple[str, ...] | None = None

    def const(prefix: str, value: Any) -> str:
        name = f"{prefix}{len(consts)}"
        consts[name] = value
        return name

    for step in steps:
        if not isinstance(step, tuple):
            run_path = None
            plain = _PLAIN_ITEMS.get(step)
            if plain is None:
                lines.append(f"    {const('s', step)}(values, data)")
                continue
            attr, pairs, typ = plain
            lines.append("    item = {}")
            for key, col in pairs:
                lines.append(f"    v = values[{const('c', col)}]")
                lines.append("    if v:")
                lines.append(f"        item[{const('k', key)}] = v")
            lines.append("    if item:")
            lines.append(f"        item['type'] = {const('t', typ)}")
            lines.append(f"        data[{const('a', attr)}] = [item]")
            continue
        path, key, col = step
        if path != run_path:  # a new run of copies into one container (cf. _segments)
            run_path = path
            if path:
                lines.append("    d = None")
                p = const("p", path)
        k, c = const("k", key), const("c", col)
        lines.append(f"    v = values[{c}]")
        lines.append("    if v:")
        if not path:
            lines.append(f"        data[{k}] = v")
            continue
        lines.append("        if d is None:")
        lines.append(f"            d = _container(data, {p})")
        lines.append(f"        d[{k}] = v")
    if namespaces:
        ns = const("n", namespaces)
        lines.append(f'    data["schemas"] = [*_base, *(x for x in {ns} if x in data)]')
    lines.append("    return data")
    src = (
        f"def make({', '.join(consts)}):\n"
        "  def apply(values, external_id):\n"
        + "\n".join("  " + line for line in lines)
        + "\n  return apply\n"
    )
    scope: dict[str, Any] = {}
    exec(compile(src, "<mapping>", "exec"), {}, scope)  # noqa: S102 - fixed template
    fn: _Applier = scope["make"](**consts)
    return fn


def _copy_setter(path: tuple[str, ...], pairs: tuple[tuple[str, Any], ...]) -> Setter:
    """Copy non-empty columns as is to ``key``s of the container at ``path``.

    The container is created only when a value is set (an empty block is omitted) and
    reused when an earlier attribute made it, so output order is the mapping's order.
    """
    if not path:

        def copy_top(values: Values, data: dict[str, Any]) -> None:
            for key, col in pairs:
                v = values[col]
                if v:
                    data[key] = v

        return copy_top
    if len(path) == 1:
        p0 = path[0]

        def copy_one(values: Values, data: dict[str, Any]) -> None:
            d: dict[str, Any] | None = None
            for key, col in pairs:
                v = values[col]
                if v:
                    if d is None:
                        d = data.get(p0)
                        if d is None:
                            d = data[p0] = {}
                    d[key] = v

        return copy_one
    if len(path) == 2:
        q0, q1 = path

        def copy_two(values: Values, data: dict[str, Any]) -> None:
            d: dict[str, Any] | None = None
            for key, col in pairs:
                v = values[col]
                if v:
                    if d is None:
                        outer = data.get(q0)
                        if outer is None:
                            outer = data[q0] = {}
                        d = outer.get(q1)
                        if d is None:
                            d = outer[q1] = {}
                    d[key] = v

        return copy_two

    def copy_deep(values: Values, data: dict[str, Any]) -> None:
        d: dict[str, Any] | None = None
        for key, col in pairs:
            v = values[col]
            if v:
                if d is None:
                    d = _container(data, path)
                d[key] = v

    return copy_deep


def _profile(y: _Y | None, ctx: _Ctx, external_id_column: str) -> ExtractProfile:
    if y is None:
        return ExtractProfile(id_column=external_id_column)
    if not isinstance(y.v, dict):
        ctx.err(y.line, "extract must be a block (encoding, delimiter, max_field_bytes, ...)")
        return ExtractProfile(id_column=external_id_column)
    spec: dict[str, _Y] = y.v
    allowed = ("encoding", "delimiter", "max_field_bytes", "max_rejected_share", "id_column")
    for k, v in spec.items():
        if k not in allowed:
            ctx.err(v.line, f"extract: unknown key {k!r}" + _suggest(k, allowed))
    kwargs: dict[str, Any] = {}
    for key in allowed:
        if key in spec and spec[key].v is not None:
            kwargs[key] = spec[key].v
    checks = {
        "encoding": lambda v: isinstance(v, str),
        "delimiter": lambda v: isinstance(v, str),
        "max_field_bytes": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "max_rejected_share": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "id_column": lambda v: isinstance(v, str) and bool(v),
    }
    for key in list(kwargs):
        if not checks[key](kwargs[key]):
            ctx.err(spec[key].line, f"extract.{key} has the wrong type")
            del kwargs[key]
    kwargs.setdefault("id_column", external_id_column)
    if "id_column" in spec:
        ctx.use(kwargs["id_column"], spec["id_column"].line)
    try:
        return ExtractProfile(**kwargs)
    except ValueError as exc:
        ctx.err(y.line, f"extract: {exc}")
        return ExtractProfile(id_column=external_id_column)


def _read_source(path_or_text: str | Path) -> tuple[str, str]:
    if isinstance(path_or_text, Path) or "\n" not in path_or_text:
        path = Path(path_or_text)
        try:
            return path.read_text(encoding="utf-8-sig"), str(path)
        except FileNotFoundError:
            raise MappingError(f"mapping file {path} not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise MappingError(f"mapping file {path} cannot be read: {exc}") from None
    return path_or_text, "<mapping>"


def load_mapping(path_or_text: str | Path) -> Mapping:
    """Load and compile a mapping from a file path or from YAML text (text has a newline).

    Raises :class:`~connector.errors.MappingError` listing every problem, each as
    ``file:line: message``.
    """
    text, label = _read_source(path_or_text)
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
    text, label = _read_source(path_or_text)
    return _compile(text, label, partial=partial)


def _compile(
    text: str,
    label: str,
    index: dict[str, int] | None = None,
    *,
    skip: frozenset[str] = frozenset(),
    partial: bool = False,
) -> tuple[Mapping | None, list[str], list[str]]:
    """Compile mapping ``text``. ``skip``: leave out attributes reading those columns.

    ``partial``: with problems, still build a mapping of what compiled (when the
    externalId column is known), for checking an extract; never for a sync.
    """
    root = _tree(text, label)
    ctx = _Ctx(label, index=index, skip=skip)
    if not isinstance(root.v, dict):
        raise MappingError(
            f"{label} is not a mapping", [f"{label}:{root.line}: the top level must be a block"]
        )
    top: dict[str, _Y] = root.v
    for key, y in top.items():
        if key not in _SECTIONS:
            hint = _suggest(key, _SECTIONS)
            if key in CORE_ATTRIBUTES or key in MULTI_VALUED_ATTRIBUTES:
                hint = " (core attributes go under core:)"
            ctx.err(y.line, f"unknown top-level key {key!r}{hint}")
    if "version" in top and top["version"].v != 1:
        ctx.err(top["version"].line, "version must be 1")

    external_id_column = ""
    ext_y = top.get("externalId")
    if ext_y is None:
        ctx.err(root.line, "externalId is required: the column holding the worker's unique id")
    else:
        col = ext_y.v
        if isinstance(col, dict) and set(col) == {"column"}:
            col = col["column"].v
        if not isinstance(col, str) or not col:
            ctx.err(
                ext_y.line,
                "externalId must be a plain column name (duplicates are checked on that column)",
            )
        else:
            external_id_column = col
            ctx.use(col, ext_y.line)

    steps: list[Setter | tuple[tuple[str, ...], str, Any]] = []
    targets: list[str] = []
    seen: dict[str, int] = {}
    custom: list[tuple[str, str]] = []
    namespaces: list[str] = []

    def add(target: _Target, value: _Y) -> None:
        if target.name in seen:
            ctx.err(
                target.line, f"{target.name} is mapped twice (first on line {seen[target.name]})"
            )
            return
        seen[target.name] = target.line
        ctx.touched = set()
        e = _expr(value, ctx, target.name)
        if e is None or ctx.touched & ctx.skip:
            return
        if target.kind == "boolean":
            if e.send_null:
                ctx.err(value.line, f"{target.name} cannot send null: it must be true or false")
            if e.text_only and not e.may_bool:
                ctx.warn(
                    value.line,
                    f"{target.name} comes from text without equals or lookup; only the values"
                    " true/false will be accepted",
                )
        targets.append(target.name)
        required = target.name == "active"
        if e.column is not None and target.kind != "boolean" and not required:
            steps.append((target.path[:-1], target.path[-1], e.column))
            return
        steps.append(
            _setter(target.path, e, _finalizer(target.name, target.kind, e), required, target.name)
        )

    for key, section_y in top.items():
        if key in ("core", "enterprise"):
            if not isinstance(section_y.v, dict):
                ctx.err(section_y.line, f"{key} must be a block of attribute: value lines")
                continue
            for attr, value in section_y.v.items():
                if key == "core" and attr in MULTI_VALUED_ATTRIBUTES:
                    if attr in seen:
                        ctx.err(value.line, f"{attr} is mapped twice")
                        continue
                    seen[attr] = value.line
                    ctx.touched = set()
                    s = _multi(attr, value, ctx)
                    if s is not None and not ctx.touched & ctx.skip:
                        steps.append(s)
                        targets.append(attr)
                    continue
                resolved = _resolve_simple(key, attr, value, ctx)
                for target, y in resolved or []:
                    add(target, y)
        elif key == "extensions":
            if not isinstance(section_y.v, dict):
                ctx.err(section_y.line, "extensions must be a block of <urn>: {Attribute: value}")
                continue
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
                namespaces.append(urn)
                for attr, value in block.v.items():
                    if not _CUSTOM_NAME.fullmatch(attr):
                        ctx.err(
                            value.line,
                            f"custom attribute name {attr!r} must be letters, digits and _"
                            " (Entra filters fail on special characters)",
                        )
                        continue
                    custom.append((urn, attr))
                    add(_Target(f"{urn}:{attr}", (urn, attr), "any", value.line), value)

    if "active" not in seen:
        ctx.warn(
            root.line,
            "active is not mapped: Entra disables accounts when active is omitted;"
            " map it (e.g. WorkerStatus with equals: Active)",
        )
    if "userName" not in seen:
        ctx.warn(root.line, "userName is not mapped: Entra needs it to create users")

    profile = _profile(top.get("extract"), ctx, external_id_column)
    if ctx.problems and not (partial and external_id_column):
        return None, ctx.problems, ctx.warnings
    mapping = Mapping(
        source=label,
        external_id_column=external_id_column,
        required_columns=tuple(c for c in ctx.columns if c not in skip),
        custom_namespaces=tuple(namespaces),
        extract_profile=profile,
        targets=tuple(targets),
        warnings=tuple(ctx.warnings),
        column_lines=dict(ctx.columns),
        _setters=_segments(steps),
        _custom=tuple(custom),
        _text=text,
        _skip=skip,
        _partial=partial,
        _run=_applier(steps, tuple(namespaces)),
    )
    return mapping, ctx.problems, ctx.warnings
