"""Setter closures: the attributes the generated record builder calls rather than writes out.

A single-valued attribute with ``when`` or ``send_null`` (:func:`conditional_setter`)
and a multi-valued attribute of several or conditional items (:func:`items_setter`)
each become one closure that sets its value on the record when the row gives one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from connector.errors import TransformError
from connector.mapping_plan import Assign, Items
from connector.mapping_values import (
    ColumnKey,
    Getter,
    Values,
    condition,
    finalizer,
    getter,
    prefixed,
    required_but_empty,
    to_text,
)

Setter = Callable[[Values, dict[str, Any]], None]


def container(data: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    """The dict at ``path`` in ``data``, made on the way where missing."""
    d = data
    for k in path:
        nxt = d.get(k)
        if nxt is None:
            nxt = d[k] = {}
        d = nxt
    return d


def conditional_setter(step: Assign, key: ColumnKey) -> Setter:
    """The closure that sets a single-valued attribute with ``when`` or ``send_null``."""
    target, required, send_null = step.target, step.required, step.expr.send_null
    get = getter(step.expr, key)
    when = condition(step.expr.when, key) if step.expr.when is not None else None
    finalize = finalizer(target, step.kind, step.expr)
    head, last = step.path[:-1], step.path[-1]

    def set_(values: Values, data: dict[str, Any]) -> None:
        if when is not None and not when(values):
            return
        try:
            v = get(values)
        except TransformError as exc:
            raise prefixed(target, exc) from None
        if v is None:
            if required:
                raise required_but_empty(target)
            if not send_null:
                return
        elif finalize is not None:
            v = finalize(v)
        (container(data, head) if head else data)[last] = v

    return set_


_Sub = tuple[str, Any, Getter]  # sub-attribute, plain column key (fast path) or None, getter
_ResolvedItem = tuple[tuple[_Sub, ...], str, bool | None, Callable[[Values], bool] | None]


def items_setter(step: Items, key: ColumnKey) -> Setter:
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
                    item[key] = v if isinstance(v, str) else to_text(v)
            if not item:
                continue
            item["type"] = typ
            if primary is not None:
                item["primary"] = primary
            out.append(item)
        if out:
            data[attr] = out

    return set_
