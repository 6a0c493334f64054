"""Running a compiled mapping: a :class:`~connector.mapping_plan.Plan` to a row → user function.

:func:`build` is the one executor. Given how a column is read (its name for rows as
dicts, its position for rows as lists bound to a layout) it makes one function per
mapping that builds the record. Written out in it: plain column copies, attributes
without ``when``/``send_null``, and multi-valued attributes of one item without
``when``; a column fed through transforms that allow it (:func:`fused_steps`) calls
the transforms back to back in it, other values call their value's closure. Values for
one container (``name``, the enterprise block, an extension) go to a local dict that is
attached once when it holds anything. Conditional and ``send_null`` attributes and
multi-valued attributes of several or conditional items are setter closures it calls.

The function's source comes only from the fixed template in :class:`_Source`: every
name in it is generated (``s0``, ``k1``, ``c2``, ...) and every value from the mapping
(attribute names, column names or positions, closures) is an argument of the factory
that returns it, never text in the source, so a mapping file cannot put code into it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from connector.errors import TransformError
from connector.mapping_plan import (
    Assign,
    Coalesce,
    Column,
    Copy,
    Expr,
    Item,
    Plan,
    Source,
    Template,
)
from connector.mapping_setters import Setter, conditional_setter, container, items_setter
from connector.mapping_values import (
    ColumnKey,
    Values,
    finalizer,
    fused_steps,
    getter,
    item_value,
    prefixed,
    required_but_empty,
)
from connector.scim import CORE_USER_SCHEMA, ENTERPRISE_USER_SCHEMA

BASE_SCHEMAS: Final = [CORE_USER_SCHEMA, ENTERPRISE_USER_SCHEMA]

Applier = Callable[[Values, str], dict[str, Any]]


#: at most this many custom namespaces get their ``schemas`` lists made once, by mask
_MASKED_NAMESPACES: Final = 4


class _Source:
    """The lines of the generated function and the factory arguments they name.

    Values for one container (``name``, the enterprise block, an extension) set one after
    another go to a local dict ``d`` (a *run*), attached once at the end of the run when
    it holds anything. ``made`` holds the containers that may exist already, so a new
    one is attached directly and an existing one merged into.
    """

    def __init__(self, key: ColumnKey) -> None:
        self.key = key
        self.args: dict[str, Any] = {
            "_base": BASE_SCHEMAS,
            "_container": container,
            "_TransformError": TransformError,
            "_prefixed": prefixed,
            "_required_but_empty": required_but_empty,
        }
        self.lines = ['    data = {"schemas": _base, "externalId": external_id}']
        self.run: tuple[str, ...] | None = None  # the container the run at hand fills
        self.made: set[tuple[str, ...]] = set()

    def arg(self, prefix: str, value: Any) -> str:
        """A generated name for ``value``, passed to the factory under that name."""
        name = f"{prefix}{len(self.args)}"
        self.args[name] = value
        return name

    def _made(self, path: tuple[str, ...]) -> None:
        self.made.update(path[: i + 1] for i in range(len(path)))

    def _into(self, path: tuple[str, ...]) -> str:
        """The dict a value for the container at ``path`` is written to (``data`` or ``d``)."""
        if not path:
            self.end_run()
            return "data"
        if path != self.run:
            self.end_run()
            self.run = path
            self.lines.append("    d = {}")
        return "d"

    def end_run(self) -> None:
        """Attach the run's dict to its container when it holds anything."""
        if self.run is None:
            return
        path, self.run = self.run, None
        if path in self.made:
            target = [f"_container(data, {self.arg('p', path)}).update(d)"]
        elif len(path) == 1:
            target = [f"data[{self.arg('k', path[0])}] = d"]
        elif len(path) == 2:  # the parent looked up in place (the enterprise manager)
            top, key = self.arg("k", path[0]), self.arg("k", path[1])
            target = [f"c = data.get({top})", "if c is None:", f"    c = data[{top}] = {{}}"]
            target.append(f"c[{key}] = d")
        else:
            parent = f"_container(data, {self.arg('p', path[:-1])})"
            target = [f"{parent}[{self.arg('k', path[-1])}] = d"]
        self.lines += ["    if d:", *(f"        {line}" for line in target)]
        self._made(path)

    def _value(self, expr: Expr, target: str, indent: str) -> None:
        """Lines setting ``v`` to ``expr``'s value on the row, errors prefixed with ``target``.

        A column through transforms that allow it (:func:`fused_steps`) is written out:
        the steps are called back to back with no closure between them.
        """
        t = self.arg("t", target)
        get = getter(expr, self.key)
        fused = fused_steps(list(expr.transforms)) if isinstance(expr.source, Column) else None
        lines = [f"{indent}try:"]
        parts = None if expr.transforms else self._parts(expr.source, indent + "    ")
        if parts is not None:
            lines += parts
        elif fused is None:
            lines.append(f"{indent}    v = {self.arg('g', get)}(values)")
        else:
            ops, check = fused
            assert isinstance(expr.source, Column)
            i = indent + "    "
            lines += [f"{i}v = values[{self.arg('c', self.key(expr.source.name))}]", f"{i}if v:"]
            lines.append(f"{i}    if v.__class__ is str:")
            for op, step in zip(ops, expr.transforms, strict=True):
                lines += self._step(op, step.memo, i + "        ")
            if check:
                lines += [f"{i}        if v == '' or v == []:", f"{i}            v = None"]
            # not text (Mapping.apply takes any values): the generic chain
            lines += [f"{i}    else:", f"{i}        v = {self.arg('g', get)}(values)"]
            lines += [f"{i}else:", f"{i}    v = None"]
        lines += [
            f"{indent}except _TransformError as exc:",
            f"{indent}    raise _prefixed({t}, exc) from None",
        ]
        self.lines += lines

    def _step(self, op: Callable[[str], Any], memo: dict[str, Any] | None, i: str) -> list[str]:
        """Lines applying one fused step to ``v``: its memo's answer, else a call."""
        f = self.arg("f", op)
        if memo is None:
            return [f"{i}v = {f}(v)"]
        m = self.arg("m", memo)
        return [f"{i}r = {m}.get(v)", f"{i}v = {f}(v) if r is None else r"]

    def _parts(self, source: Source, indent: str) -> list[str] | None:
        """Lines setting ``v`` to a template, or the first of a coalesce's columns and
        templates that gives a value; None for other sources (their closure is called)."""
        parts = source.parts if isinstance(source, Coalesce) else (Expr(source),)
        if not all(not p.transforms and isinstance(p.source, Template | Column) for p in parts):
            return None
        lines = [f"{indent}v = None"]
        for n, part in enumerate(parts):
            i = indent if n == 0 else indent + "    "
            if n:
                lines.append(f"{indent}if v is None:")
            if isinstance(part.source, Column):
                lines.append(f"{i}v = values[{self.arg('c', self.key(part.source.name))}] or None")
                continue
            assert isinstance(part.source, Template)
            cells = [f"x{j}" for j in range(len(part.source.columns))]
            for cell, col in zip(cells, part.source.columns, strict=True):
                lines.append(f"{i}{cell} = values[{self.arg('c', self.key(col))}]")
            fmt = self.arg("f", part.source.pattern.format)
            # a template with an empty part is omitted, never half-filled
            lines += [f"{i}if {' and '.join(cells)}:", f"{i}    v = {fmt}({', '.join(cells)})"]
        return lines

    def call(self, setter: Setter, path: tuple[str, ...]) -> None:
        """A setter closure (``when``, ``send_null``, several items) that may fill ``path``."""
        self.end_run()
        self.lines.append(f"    {self.arg('s', setter)}(values, data)")
        self._made(path)

    def assign(self, step: Assign) -> None:
        """An attribute set from its value with no condition, written out (no setter call)."""
        head, last = step.path[:-1], step.path[-1]
        into = self._into(head)
        finalize = finalizer(step.target, step.kind, step.expr)
        self._value(step.expr, step.target, "    ")
        value = "v" if finalize is None else f"{self.arg('f', finalize)}(v)"
        k = self.arg("k", last)
        if step.required:
            t = self.arg("t", step.target)
            self.lines += ["    if v is None:", f"        raise _required_but_empty({t})"]
            self.lines.append(f"    {into}[{k}] = {value}")
        else:
            self.lines += ["    if v is not None:", f"        {into}[{k}] = {value}"]
        if into == "data":
            self.made.add((last,))

    def copy(self, path: tuple[str, ...], key: str, column: str) -> None:
        """A non-empty cell to ``key`` of the container at ``path``."""
        into = self._into(path)
        k, c = self.arg("k", key), self.arg("c", self.key(column))
        self.lines += [f"    v = values[{c}]", "    if v:", f"        {into}[{k}] = v"]
        if into == "data":
            self.made.add((key,))

    def item(self, attr: str, item: Item) -> None:
        """A multi-valued attribute of one item without ``when``, set when it holds anything."""
        self.end_run()
        self.lines.append("    item = {}")
        for name, e in item.subs:
            k = self.arg("k", name)
            if e.plain_column is not None:
                c = self.arg("c", self.key(e.plain_column))
                self.lines += [f"    v = values[{c}]", "    if v:", f"        item[{k}] = v"]
                continue
            target = f"{attr}.{name}"
            self._value(e, target, "    ")
            value = "v" if e.text_only else f"{self.arg('f', item_value(target))}(v)"
            self.lines += ["    if v is not None:", f"        item[{k}] = {value}"]
        self.lines += ["    if item:", f"        item['type'] = {self.arg('t', item.type)}"]
        if item.primary is not None:
            self.lines.append(f"        item['primary'] = {self.arg('b', item.primary)}")
        self.lines.append(f"        data[{self.arg('a', attr)}] = [item]")
        self.made.add((attr,))

    def schemas(self, namespaces: tuple[str, ...]) -> None:
        """``data.schemas``: the base two, then each custom namespace the record holds.

        With a few namespaces every possible list is made once and picked by a mask of
        the namespaces present (records share these lists, as they share the base one).
        """
        if not namespaces:
            return
        if len(namespaces) > _MASKED_NAMESPACES:
            ns = self.arg("n", namespaces)
            self.lines.append(f'    data["schemas"] = [*_base, *(x for x in {ns} if x in data)]')
            return
        lists = tuple(
            [*BASE_SCHEMAS, *(n for i, n in enumerate(namespaces) if mask >> i & 1)]
            for mask in range(1 << len(namespaces))
        )
        self.lines.append("    m = 0")
        for i, n in enumerate(namespaces):
            self.lines += [f"    if {self.arg('n', n)} in data:", f"        m |= {1 << i}"]
        self.lines.append(f'    data["schemas"] = {self.arg("l", lists)}[m]')

    def function(self, namespaces: tuple[str, ...]) -> Applier:
        """The record builder, from the fixed template and the generated names only."""
        self.end_run()
        self.schemas(namespaces)
        lines = [*self.lines, "    return data"]
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
    src = _Source(key)
    for step in plan.steps:
        if isinstance(step, Copy):
            src.copy(step.path, step.key, step.column)
        elif isinstance(step, Assign) and step.expr.when is None and not step.expr.send_null:
            src.assign(step)
        elif isinstance(step, Assign):
            src.call(conditional_setter(step, key), step.path[:-1])
        elif len(step.items) == 1 and step.items[0].when is None:
            src.item(step.attr, step.items[0])
        else:
            src.call(items_setter(step, key), (step.attr,))
    return src.function(plan.namespaces)
