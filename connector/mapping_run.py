"""Running a compiled mapping: a :class:`~connector.mapping_plan.Plan` to a row → user function.

:func:`build` is the one executor. Given how a column is read (its name for rows as
dicts, its position for rows as lists bound to a layout) it makes one function per
mapping that builds the record. Plain column copies, one-item multi-valued attributes
copied from columns and attributes without ``when``/``send_null`` are written out in
it (the last ones call their value's closure); conditional and ``send_null``
attributes and other multi-valued ones are setter closures it calls. A column fed
through transforms becomes one closure when the transforms allow it
(:func:`_fused_column_chain`).

The function's source comes only from the fixed template in :class:`_Source`: every
name in it is generated (``s0``, ``k1``, ``c2``, ...) and every value from the mapping
(attribute names, column names or positions, closures) is an argument of the factory
that returns it, never text in the source, so a mapping file cannot put code into it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, Protocol

from connector.errors import TransformError
from connector.mapping_plan import (
    ACTIVE_REASON,
    Assign,
    Coalesce,
    Column,
    Condition,
    Const,
    Copy,
    Expr,
    Items,
    Plan,
    Source,
)
from connector.scim import CORE_USER_SCHEMA, ENTERPRISE_USER_SCHEMA
from connector.transforms import Transform

BASE_SCHEMAS: Final = [CORE_USER_SCHEMA, ENTERPRISE_USER_SCHEMA]


class Values(Protocol):
    """One row's values by column: a dict by name, or a sequence by position."""

    def __getitem__(self, key: Any, /) -> str: ...


Getter = Callable[[Values], Any]
Setter = Callable[[Values, dict[str, Any]], None]
Applier = Callable[[Values, str], dict[str, Any]]
#: how a column is read from a row: its name (rows as dicts) or position (rows as lists)
ColumnKey = Callable[[str], Any]


def column_getter(col: Any) -> Getter:
    """A column's cell, or None when it is empty."""

    def get(values: Values) -> Any:
        return values[col] or None

    return get


def _const_getter(value: Any) -> Getter:
    out = None if value == "" else value

    def get(values: Values) -> Any:
        return out

    return get


def _template_getter(pattern: str, columns: tuple[Any, ...]) -> Getter:
    def get(values: Values) -> Any:
        args = [values[c] for c in columns]
        if not all(args):
            return None  # a template with an empty part is omitted, never half-filled
        return pattern.format(*args)

    return get


def condition(cond: Condition, key: ColumnKey) -> Callable[[Values], bool]:
    """The ``when`` test on a row."""
    col = key(cond.column)
    wanted = cond.wanted
    if cond.test == "empty":
        return lambda values: not values[col]
    if cond.test == "not_empty":
        return lambda values: bool(values[col])
    if cond.test == "in":
        return lambda values: values[col] in wanted
    return lambda values: values[col] not in wanted


def _source_getter(source: Source, key: ColumnKey) -> Getter:
    if isinstance(source, Column):
        return column_getter(key(source.name))
    if isinstance(source, Const):
        return _const_getter(source.value)
    if isinstance(source, Coalesce):
        getters = tuple(getter(p, key) for p in source.parts)

        def coalesce(values: Values) -> Any:
            for g in getters:
                v = g(values)
                if v is not None:
                    return v
            return None

        return coalesce
    return _template_getter(source.pattern, tuple(key(c) for c in source.columns))


def getter(expr: Expr, key: ColumnKey) -> Getter:
    """The value of ``expr`` on a row (its source, then its transforms); ``when`` not applied."""
    src = _source_getter(expr.source, key)
    column = key(expr.source.name) if isinstance(expr.source, Column) else None
    return chain(src, list(expr.transforms), column)


def chain(src: Getter, transforms: list[Transform], column: Any = None) -> Getter:
    """``src`` then ``transforms``; ``column`` names src's column when src only reads it."""
    if not transforms:
        return src
    if column is not None:
        fused = _fused_column_chain(column, transforms, chain(src, transforms))
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


def _to_text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _finalizer(target: str, kind: str, expr: Expr) -> Callable[[Any], Any] | None:
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


def _required_but_empty(target: str) -> TransformError:
    return TransformError(
        f"{target} is empty and the record cannot be sent without it: {ACTIVE_REASON};"
        " add a default",
        "invalid_value",
    )


def _prefixed(target: str, exc: TransformError) -> TransformError:
    return TransformError(f"{target}: {exc}", exc.reason_code)


def _setter(step: Assign, key: ColumnKey) -> Setter:
    """The closure that sets a single-valued attribute with ``when`` or ``send_null``."""
    target, required, send_null = step.target, step.required, step.expr.send_null
    get = getter(step.expr, key)
    when = condition(step.expr.when, key) if step.expr.when is not None else None
    finalize = _finalizer(target, step.kind, step.expr)
    head, last = step.path[:-1], step.path[-1]

    def set_(values: Values, data: dict[str, Any]) -> None:
        if when is not None and not when(values):
            return
        try:
            v = get(values)
        except TransformError as exc:
            raise _prefixed(target, exc) from None
        if v is None:
            if required:
                raise _required_but_empty(target)
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
_ResolvedItem = tuple[tuple[_Sub, ...], str, bool | None, Callable[[Values], bool] | None]


def _multi_setter(step: Items, key: ColumnKey) -> Setter:
    """The closure that sets a multi-valued attribute's items on a record."""
    attr = step.attr
    items: list[_ResolvedItem] = []
    for item in step.items:
        subs = tuple(
            (name, None if e.plain_column is None else key(e.plain_column), getter(e, key))
            for name, e in item.subs
        )
        when = condition(item.when, key) if item.when is not None else None
        items.append((subs, item.type, item.primary, when))

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


def _container(data: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    d = data
    for k in path:
        nxt = d.get(k)
        if nxt is None:
            nxt = d[k] = {}
        d = nxt
    return d


class _Source:
    """The lines of the generated function and the factory arguments they name."""

    def __init__(self) -> None:
        self.args: dict[str, Any] = {
            "_base": BASE_SCHEMAS,
            "_container": _container,
            "_TransformError": TransformError,
            "_prefixed": _prefixed,
            "_required_but_empty": _required_but_empty,
        }
        self.lines = ['    data = {"schemas": _base, "externalId": external_id}']
        self.run_path: tuple[str, ...] | None = None  # the container of the copies at hand
        self.run_name = ""

    def arg(self, prefix: str, value: Any) -> str:
        """A generated name for ``value``, passed to the factory under that name."""
        name = f"{prefix}{len(self.args)}"
        self.args[name] = value
        return name

    def call(self, setter: Setter) -> None:
        self.run_path = None
        self.lines.append(f"    {self.arg('s', setter)}(values, data)")

    def assign(self, step: Assign, get: Getter, finalize: Callable[[Any], Any] | None) -> None:
        """An attribute set from its value with no condition, written out (no setter call)."""
        self.run_path = None
        t = self.arg("t", step.target)
        self.lines.append("    try:")
        self.lines.append(f"        v = {self.arg('g', get)}(values)")
        self.lines.append("    except _TransformError as exc:")
        self.lines.append(f"        raise _prefixed({t}, exc) from None")
        indent = "    "
        if step.required:
            self.lines.append("    if v is None:")
            self.lines.append(f"        raise _required_but_empty({t})")
        else:
            self.lines.append("    if v is not None:")
            indent = "        "
        value = "v" if finalize is None else f"{self.arg('f', finalize)}(v)"
        head, last = step.path[:-1], step.path[-1]
        container = f"_container(data, {self.arg('p', head)})" if head else "data"
        self.lines.append(f"{indent}{container}[{self.arg('k', last)}] = {value}")

    def plain_item(self, attr: str, pairs: list[tuple[str, Any]], typ: str) -> None:
        """One item copied from columns, set when any of them is non-empty."""
        self.run_path = None
        self.lines.append("    item = {}")
        for key, col in pairs:
            self.lines.append(f"    v = values[{self.arg('c', col)}]")
            self.lines.append("    if v:")
            self.lines.append(f"        item[{self.arg('k', key)}] = v")
        self.lines.append("    if item:")
        self.lines.append(f"        item['type'] = {self.arg('t', typ)}")
        self.lines.append(f"        data[{self.arg('a', attr)}] = [item]")

    def copy(self, path: tuple[str, ...], key: str, col: Any) -> None:
        """A non-empty cell to ``key``; a run of copies into one container shares ``d``."""
        if path != self.run_path:
            self.run_path = path
            if path:
                self.lines.append("    d = None")
                self.run_name = self.arg("p", path)
        k, c = self.arg("k", key), self.arg("c", col)
        self.lines.append(f"    v = values[{c}]")
        self.lines.append("    if v:")
        if not path:
            self.lines.append(f"        data[{k}] = v")
            return
        self.lines.append("        if d is None:")
        self.lines.append(f"            d = _container(data, {self.run_name})")
        self.lines.append(f"        d[{k}] = v")

    def function(self, namespaces: tuple[str, ...]) -> Applier:
        """The record builder, from the fixed template and the generated names only."""
        lines = list(self.lines)
        if namespaces:
            ns = self.arg("n", namespaces)
            lines.append(f'    data["schemas"] = [*_base, *(x for x in {ns} if x in data)]')
        lines.append("    return data")
        src = (
            f"def make({', '.join(self.args)}):\n"
            "  def apply(values, external_id):\n"
            + "\n".join("  " + line for line in lines)
            + "\n  return apply\n"
        )
        scope: dict[str, Any] = {}
        exec(compile(src, "<mapping>", "exec"), {}, scope)  # noqa: S102 - fixed template
        fn: Applier = scope["make"](**self.args)
        return fn


def build(plan: Plan, key: ColumnKey) -> Applier:
    """The function that maps one row to a SCIM user, reading columns through ``key``.

    The function raises :class:`TransformError` when a value cannot be mapped (the
    row is then rejected).
    """
    src = _Source()
    for step in plan.steps:
        if isinstance(step, Copy):
            src.copy(step.path, step.key, key(step.column))
        elif isinstance(step, Assign) and step.expr.when is None and not step.expr.send_null:
            finalize = _finalizer(step.target, step.kind, step.expr)
            src.assign(step, getter(step.expr, key), finalize)
        elif isinstance(step, Assign):
            src.call(_setter(step, key))
        elif len(step.items) == 1 and step.items[0].plain:
            item = step.items[0]
            pairs = [(name, key(e.plain_column)) for name, e in item.subs if e.plain_column]
            src.plain_item(step.attr, pairs, item.type)
        else:
            src.call(_multi_setter(step, key))
    return src.function(plan.namespaces)
