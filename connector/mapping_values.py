"""A mapped value read from a row: the closures behind the one executor.

:func:`getter` turns a value expression (a column, a constant, a template or a
coalesce, then its transforms) into a closure on a row, read by column name or
position through a :data:`ColumnKey`; :func:`chain` and :func:`fused_steps` are the
ways transforms are called on it (a column through transforms that keep text non-empty
calls them back to back). :func:`condition` is the ``when`` test, :func:`finalizer` and
:func:`item_value` the per-row checks of a value's type before it is set, and
:func:`prefixed`/:func:`required_but_empty` the errors naming the attribute.
:mod:`connector.mapping_run` writes the record builder around them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from connector.errors import TransformError
from connector.mapping_plan import (
    ACTIVE_REASON,
    Coalesce,
    Column,
    Condition,
    Const,
    Expr,
    Source,
)
from connector.transforms import Transform


class Values(Protocol):
    """One row's values by column: a dict by name, or a sequence by position."""

    def __getitem__(self, key: Any, /) -> str: ...


Getter = Callable[[Values], Any]
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


def fused_steps(transforms: list[Transform]) -> tuple[list[Callable[[str], Any]], bool] | None:
    """The ``on_text`` steps of a column's transforms and whether the last output must be
    checked for emptiness; None when they cannot be called back to back (see
    :func:`_fused_column_chain`)."""
    if not transforms:
        return None
    ops: list[Callable[[str], Any]] = []
    for t in transforms:
        if t.on_text is None or t.accepts_none:
            return None
        ops.append(t.on_text)
    if not all(t.keeps_text for t in transforms[:-1]):
        return None
    last = transforms[-1]
    # the last output is checked for emptiness unless it cannot be empty
    return ops, not (last.keeps_text or last.produces_bool)


def _fused_column_chain(col: Any, transforms: list[Transform], slow: Getter) -> Getter | None:
    """A column fed through transforms as one closure, or None when they do not allow it.

    Every transform must have an ``on_text`` form and every one but the last must keep a
    non-empty text non-empty (``keeps_text``): then no value between two steps can be
    None, empty or a non-text, so the generic loop's checks would never fire and the
    steps are called back to back. A value that is not a ``str`` (rows are text, but
    :meth:`Mapping.apply` takes any mapping) goes through ``slow``, the generic chain.
    """
    fused = fused_steps(transforms)
    if fused is None:
        return None
    ops, check = fused
    if len(ops) == 1:
        (f1,) = ops
        if not check:

            def get1(values: Values) -> Any:
                v = values[col]
                if not v:
                    return None
                return f1(v) if v.__class__ is str else slow(values)

            return get1
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


def to_text(v: Any) -> str:
    """A non-text value as SCIM text (booleans as ``true``/``false``)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def finalizer(target: str, kind: str, expr: Expr) -> Callable[[Any], Any] | None:
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
            return to_text(v)
        return v

    return check


def required_but_empty(target: str) -> TransformError:
    """The error for a required attribute whose value is empty on the row."""
    return TransformError(
        f"{target} is empty and the record cannot be sent without it: {ACTIVE_REASON};"
        " add a default",
        "invalid_value",
    )


def prefixed(target: str, exc: TransformError) -> TransformError:
    """A transform's error, naming the attribute it was mapping."""
    return TransformError(f"{target}: {exc}", exc.reason_code)


def item_value(target: str) -> Callable[[Any], Any]:
    """A sub-attribute's value that may not be text: a list is refused, others become text."""

    def check(v: Any) -> Any:
        if isinstance(v, list):
            raise TransformError(f"{target} ended as a list; add a join")
        return v if isinstance(v, str) else to_text(v)

    return check
