"""Compiling a mapping's values: YAML value expressions to :mod:`connector.mapping_plan` data.

Each function reads one part of the language (a value expression, a template, a
``when`` test, a transform list, a multi-valued attribute, the ``extract`` block),
reports every problem at its line through :class:`Context` and returns plan data or
None. Nothing here reads a row: columns stay names until the executor resolves them.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from connector.extract import ExtractProfile, encoding_problem
from connector.mapping_plan import (
    Coalesce,
    Column,
    Condition,
    ConditionTest,
    Const,
    Expr,
    Item,
    Items,
    Source,
    Template,
)
from connector.mapping_yaml import YamlValue, plain
from connector.transforms import Transform, make_transform

_EXPR_KEYS: Final = frozenset(
    {"column", "const", "template", "coalesce", "transforms", "when", "send_null"}
)
_SOURCES: Final = ("column", "const", "template", "coalesce")
_WHEN_TESTS: Final = ("equals", "not_equals", "in", "not_in", "empty", "not_empty")
_TEMPLATE_TOKEN: Final = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_TEXT_TRANSFORMS: Final = frozenset(
    {"trim", "lower", "upper", "title", "strip_diacritics", "date", "replace", "truncate", "join"}
)
_EXTRACT_KEYS: Final = (
    "encoding",
    "delimiter",
    "max_field_bytes",
    "max_rejected_share",
    "id_column",
    "sheet",
)
_EXTRACT_CHECKS: Final[dict[str, Callable[[Any], bool]]] = {
    "encoding": lambda v: isinstance(v, str),
    "delimiter": lambda v: isinstance(v, str),
    "max_field_bytes": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "max_rejected_share": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "id_column": lambda v: isinstance(v, str) and bool(v),
    "sheet": lambda v: isinstance(v, str) and bool(v),
}


@dataclass(slots=True)
class Context:
    """What compiling found so far: problems, warnings and the columns read (first line)."""

    label: str
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    columns: dict[str, int] = field(default_factory=dict)
    skip: frozenset[str] = frozenset()  # attributes reading these columns are left out
    touched: set[str] = field(default_factory=set)  # columns read by the attribute at hand

    def err(self, line: int, msg: str) -> None:
        self.problems.append(f"{self.label}:{line}: {msg}")

    def warn(self, line: int, msg: str) -> None:
        self.warnings.append(f"{self.label}:{line}: {msg}")

    def use(self, column: str, line: int) -> str:
        """Record that ``column`` is read by the attribute at hand."""
        self.columns.setdefault(column, line)
        self.touched.add(column)
        return column


def suggest(name: str, options: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``options``, or nothing."""
    close = difflib.get_close_matches(name, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _template(y: YamlValue, ctx: Context) -> Source | None:
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
        return Const(pattern.replace("{{", "{").replace("}}", "}"))
    return Template(pattern, tuple(cols))


def when(y: YamlValue, ctx: Context) -> Condition | None:
    """A ``when`` block: one column and one test."""
    if not isinstance(y.v, dict) or "column" not in y.v:
        ctx.err(y.line, "when needs {column: <name>, equals|not_equals|in|not_in|empty|not_empty}")
        return None
    spec: dict[str, YamlValue] = y.v
    extra = set(spec) - {"column", *_WHEN_TESTS}
    tests = [t for t in _WHEN_TESTS if t in spec]
    if extra:
        ctx.err(
            y.line,
            f"when has unknown keys: {', '.join(sorted(extra))}"
            + suggest(sorted(extra)[0], ("column", *_WHEN_TESTS)),
        )
    if len(tests) != 1:
        ctx.err(y.line, "when needs exactly one test: " + ", ".join(_WHEN_TESTS))
        return None
    col = spec["column"].v
    if not isinstance(col, str) or not col:
        ctx.err(spec["column"].line, "when.column must be a column name")
        return None
    col = ctx.use(col, spec["column"].line)
    test = tests[0]
    arg = plain(spec[test])
    if test in ("empty", "not_empty"):
        if arg is not True:
            ctx.err(spec[test].line, f"when.{test} must be true")
            return None
        return Condition(col, "empty" if test == "empty" else "not_empty")
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
    kind: ConditionTest = "in" if test in ("equals", "in") else "not_in"
    return Condition(col, kind, wanted)


def _transforms(y: YamlValue, ctx: Context) -> list[Transform] | None:
    items = y.v if isinstance(y.v, list) else [y]
    out: list[Transform] = []
    ok = True
    for item in items:
        if isinstance(item.v, str):
            name, arg = item.v, None
        elif isinstance(item.v, dict) and len(item.v) == 1:
            name, arg_y = next(iter(item.v.items()))
            arg = plain(arg_y)
        else:
            ctx.err(item.line, "a transform is a name (lower) or one key with its argument")
            ok = False
            continue
        try:
            transform = make_transform(name, arg)
        except ValueError as exc:
            ctx.err(item.line, str(exc))
            ok = False
            continue
        if transform.warning:
            ctx.warn(item.line, transform.warning)
        out.append(transform)
    return out if ok else None


def _coalesce(src_y: YamlValue, ctx: Context, where: str) -> tuple[Source, bool, bool] | None:
    """A coalesce source with its ``text_only`` and ``may_bool``."""
    if not isinstance(src_y.v, list) or len(src_y.v) < 2:
        ctx.err(src_y.line, f"{where}: coalesce needs a list of two or more values")
        return None
    parts = [expr(p, ctx, where, nested=True) for p in src_y.v]
    compiled = [p for p in parts if p is not None]
    if len(compiled) != len(parts):
        return None
    for p, py in zip(compiled, src_y.v, strict=True):
        if p.when is not None or p.send_null:
            ctx.err(py.line, f"{where}: when/send_null go on the attribute, not inside coalesce")
    text_only = all(p.text_only for p in compiled)
    may_bool = any(p.may_bool for p in compiled)
    return Coalesce(tuple(compiled)), text_only, may_bool


def _source(
    spec: dict[str, YamlValue], source: str, ctx: Context, where: str, nested: bool
) -> tuple[Source | None, bool, bool] | None:
    """The source named ``source`` with ``text_only`` and ``may_bool``; None stops the value.

    A source of None with flags (a template with problems) lets the transforms and
    ``when`` still be checked, as their problems are reported too.
    """
    src_y = spec[source]
    if source == "column":
        if not isinstance(src_y.v, str) or not src_y.v:
            ctx.err(src_y.line, f"{where}: column must be a column name")
            return None
        return Column(ctx.use(src_y.v, src_y.line)), True, False
    if source == "const":
        if isinstance(src_y.v, dict | list):
            ctx.err(src_y.line, f"{where}: const must be text, a number, a boolean or null")
            return None
        text_only = isinstance(src_y.v, str) or src_y.v is None
        return Const(src_y.v), text_only, isinstance(src_y.v, bool)
    if source == "template":
        return _template(src_y, ctx), True, False
    if nested:
        ctx.err(src_y.line, f"{where}: coalesce cannot be nested")
        return None
    return _coalesce(src_y, ctx, where)


def expr(y: YamlValue, ctx: Context, where: str, *, nested: bool = False) -> Expr | None:
    """Compile one value expression (column name shorthand or a mapping)."""
    if isinstance(y.v, str):
        if not y.v:
            ctx.err(y.line, f"{where}: empty column name")
            return None
        return Expr(Column(ctx.use(y.v, y.line)))
    if not isinstance(y.v, dict):
        ctx.err(
            y.line,
            f"{where}: expected a column name or {{column|const|template|coalesce: ...}}",
        )
        return None
    spec: dict[str, YamlValue] = y.v
    unknown = set(spec) - _EXPR_KEYS
    if unknown:
        ctx.err(
            y.line,
            f"{where}: unknown keys {', '.join(sorted(unknown))}"
            + suggest(sorted(unknown)[0], sorted(_EXPR_KEYS)),
        )
    sources = [s for s in _SOURCES if s in spec]
    if len(sources) != 1:
        ctx.err(y.line, f"{where}: needs exactly one of column, const, template, coalesce")
        return None
    got = _source(spec, sources[0], ctx, where, nested)
    if got is None:
        return None
    src, text_only, may_bool = got
    transforms: list[Transform] = []
    if "transforms" in spec:
        listed = _transforms(spec["transforms"], ctx)
        if listed is None:
            return None
        transforms = listed
    for t in transforms:
        if t.produces_bool:
            may_bool = True
        if t.name not in _TEXT_TRANSFORMS:
            text_only = False
    cond = when(spec["when"], ctx) if "when" in spec else None
    send_null = False
    if "send_null" in spec:
        if not isinstance(spec["send_null"].v, bool):
            ctx.err(spec["send_null"].line, f"{where}: send_null must be true or false")
        else:
            send_null = spec["send_null"].v
    if src is None:
        return None
    return Expr(src, tuple(transforms), cond, send_null, text_only, may_bool)


def _item_type(spec: dict[str, YamlValue], attr: str, ctx: Context) -> str:
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
    return typ


def _item(item: YamlValue, attr: str, allowed: tuple[str, ...], ctx: Context) -> Item | None:
    """One item block of a multi-valued attribute."""
    if not isinstance(item.v, dict):
        ctx.err(item.line, f"core: each {attr} item is a block of sub-attributes")
        return None
    spec: dict[str, YamlValue] = item.v
    typ = _item_type(spec, attr, ctx)
    primary: bool | None = None
    if "primary" in spec:
        p = spec["primary"]
        if not isinstance(p.v, bool):
            ctx.err(p.line, f"core: {attr}.primary must be true or false")
        else:
            primary = p.v
    cond = when(spec["when"], ctx) if "when" in spec else None
    subs: list[tuple[str, Expr]] = []
    for key, sub_y in spec.items():
        if key in ("type", "primary", "when"):
            continue
        if key not in allowed:
            ctx.err(
                sub_y.line,
                f"core: {attr} has no sub-attribute {key!r}; known: "
                + ", ".join((*allowed, "type", "primary", "when"))
                + suggest(key, allowed),
            )
            continue
        e = expr(sub_y, ctx, f"{attr}.{key}")
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
        subs.append((key, e))
    if not subs:
        ctx.err(item.line, f"core: a {attr} item maps no sub-attribute")
        return None
    return Item(tuple(subs), typ, primary, cond)


def multi(attr: str, allowed: tuple[str, ...], value: YamlValue, ctx: Context) -> Items | None:
    """A multi-valued attribute: a list of items, one item block, or a column for ``value``."""
    items_y: list[YamlValue]
    if isinstance(value.v, list):
        items_y = value.v
    elif isinstance(value.v, str):  # emails: WorkEmail
        items_y = [YamlValue({"value": value}, value.line)] if "value" in allowed else []
    elif isinstance(value.v, dict):
        items_y = [value]
    else:
        items_y = []
    if not items_y:
        ctx.err(value.line, f"core: {attr} needs a list of items, e.g. - {{value: Column}}")
        return None
    items = [i for i in (_item(y, attr, allowed, ctx) for y in items_y) if i is not None]
    return Items(attr, tuple(items)) if items else None


def profile(y: YamlValue | None, ctx: Context, external_id_column: str) -> ExtractProfile:
    """The ``extract`` block; ``id_column`` defaults to the externalId column."""
    if y is None:
        return ExtractProfile(id_column=external_id_column)
    if not isinstance(y.v, dict):
        ctx.err(y.line, "extract must be a block (encoding, delimiter, max_field_bytes, ...)")
        return ExtractProfile(id_column=external_id_column)
    spec: dict[str, YamlValue] = y.v
    for k, v in spec.items():
        if k not in _EXTRACT_KEYS:
            ctx.err(v.line, f"extract: unknown key {k!r}" + suggest(k, _EXTRACT_KEYS))
    kwargs: dict[str, Any] = {}
    for key in _EXTRACT_KEYS:
        if key in spec and spec[key].v is not None:
            kwargs[key] = spec[key].v
    for key in list(kwargs):
        if not _EXTRACT_CHECKS[key](kwargs[key]):
            ctx.err(spec[key].line, f"extract.{key} has the wrong type")
            del kwargs[key]
    if "encoding" in kwargs:
        problem = encoding_problem(kwargs["encoding"])
        if problem is not None:
            ctx.err(spec["encoding"].line, f"extract.encoding: {problem}")
            del kwargs["encoding"]
    kwargs.setdefault("id_column", external_id_column)
    if "id_column" in spec:
        ctx.use(kwargs["id_column"], spec["id_column"].line)
    try:
        return ExtractProfile(**kwargs)
    except ValueError as exc:
        ctx.err(y.line, f"extract: {exc}")
        return ExtractProfile(id_column=external_id_column)
