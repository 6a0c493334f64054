"""Scriptblock expressions → mapping values (columns, constants, templates, transforms).

PowerShell's semantics kept: ``-eq``/``-ne`` ignore case unless written ``-ceq``/``-cne``
(translated as ``lower`` before ``equals``, the literal lower-cased); a comparison with
``$true`` compares with the text ``True``; ``+`` joins text when its left side is text.
Two differences are documented (docs/mapping.md, "Coming from CSV2SCIM"): an empty
column makes a template empty, and a comparison on an empty column leaves the value
empty (for ``active`` the row is then rejected, rather than the account disabled).
"""

from __future__ import annotations

from typing import Any, Final

from connector.errors import UntranslatableError
from connector.migrate.scriptblock import Cmp, Col, Concat, Expr, Lit, Logic, Method, Not

__all__ = ["constant_of", "expression_value"]

_CASE_METHODS: Final = {
    "tolower": "lower",
    "tolowerinvariant": "lower",
    "toupper": "upper",
    "toupperinvariant": "upper",
    "trim": "trim",
}

#: (column, values, negated, case-sensitive)
_Test = tuple[str, tuple[str, ...], bool, bool]


def constant_of(expr: Expr) -> str | bool | int | float | None:
    """The constant a literal expression stands for; None when it is not a literal."""
    return _number(expr.value) if isinstance(expr, Lit) else None


def _number(value: Any) -> Any:
    """Number tokens kept as text ("1.5", "0x10") become numbers."""
    if isinstance(value, str) and value and (value[0].isdigit()):
        try:
            return int(value, 0)
        except ValueError:
            try:
                return float(value)
            except ValueError:
                return value
    return value


class _Values:
    def __init__(self, label: str, line: int) -> None:
        self.label = label
        self.line = line

    def fail(self, reason: str) -> UntranslatableError:
        return UntranslatableError(reason, path=self.label, line=self.line)

    def value(self, expr: Expr) -> Any:
        if isinstance(expr, Lit):
            if expr.value is None:
                raise self.fail("$null: leave the attribute out (or use send_null in the YAML)")
            return {"const": _number(expr.value)}
        if isinstance(expr, Col):
            return self.column(expr.name)
        if isinstance(expr, Concat):
            return self.concat(expr)
        if isinstance(expr, Method):
            return self.method(expr)
        column, values, negated, case = self.test(expr)
        return _boolean(column, values, negated=negated, case=case)

    def column(self, name: str) -> str:
        if not name.strip() or "{" in name or "}" in name:
            raise self.fail(f"the column name {name!r} cannot be used in a mapping")
        return name

    def concat(self, expr: Concat) -> Any:
        first = expr.parts[0]
        if isinstance(first, Lit) and not isinstance(first.value, str):
            raise self.fail("+ after a number or boolean adds, it does not join text")
        pieces: list[str] = []
        columns = 0
        for part in _flat(expr):
            if isinstance(part, Col):
                pieces.append("{" + self.column(part.name) + "}")
                columns += 1
            elif isinstance(part, Lit):
                text = _text(part.value)
                pieces.append(text.replace("{", "{{").replace("}", "}}"))
            else:
                raise self.fail(
                    "only columns and literal text can be joined; apply a method such as"
                    " .ToLower() to the whole joined value, in parentheses"
                )
        template = "".join(pieces)
        if columns == 0:
            return {"const": template.replace("{{", "{").replace("}}", "}")}
        if (
            columns == 1
            and template.startswith("{")
            and template.endswith("}")
            and (template.count("{") == 1)
        ):
            return template[1:-1]
        return {"template": template}

    def method(self, expr: Method) -> Any:
        name = expr.name.lower()
        if name in _CASE_METHODS and not expr.args:
            step: Any = _CASE_METHODS[name]
        elif name == "substring" and len(expr.args) == 2 and expr.args[0].value == 0:
            length = expr.args[1].value
            if not isinstance(length, int) or length < 1:
                raise self.fail("Substring(0, n) needs a whole number n of at least 1")
            step = {"truncate": length}
        else:
            raise self.fail(
                f"the method {expr.name}() is not translated"
                " (ToLower, ToUpper, Trim and Substring(0, n) are)"
            )
        if isinstance(expr.target, Cmp | Logic | Not):
            raise self.fail(f"the method {expr.name}() on a true/false value is not translated")
        base = self.value(expr.target)
        if isinstance(base, str):
            return {"column": base, "transforms": [step]}
        if "const" in base:
            raise self.fail("a method on a constant: write the constant as you want it")
        return {**base, "transforms": [*base.get("transforms", []), step]}

    def test(self, expr: Expr) -> _Test:
        """A true/false expression over one column, as the values it tests for."""
        if isinstance(expr, Not):
            column, values, negated, case = self.test(expr.operand)
            return column, values, not negated, case
        if isinstance(expr, Cmp):
            return self.compare(expr)
        if isinstance(expr, Logic):
            return self.logic(expr)
        raise self.fail("-not, -and and -or need comparisons such as $_.Status -eq 'Active'")

    def compare(self, expr: Cmp) -> _Test:
        left, right = expr.left, expr.right
        if isinstance(right, Col) and isinstance(left, Lit):
            left, right = right, left
        if not (isinstance(left, Col) and isinstance(right, Lit)):
            raise self.fail("a comparison is translated between a column and a literal only")
        if right.value is None or right.value == "":
            raise self.fail(
                "a comparison with $null or '' (an empty column) is not translated; use"
                f" when: {{column: {left.name}, empty: true}} in the YAML"
            )
        column = self.column(left.name)
        return column, (_text(right.value),), expr.op == "ne", expr.case

    def logic(self, expr: Logic) -> _Test:
        lcol, lvals, lneg, lcase = self.test(expr.left)
        rcol, rvals, rneg, rcase = self.test(expr.right)
        if lcol != rcol:
            raise self.fail(
                f"tests two columns ({lcol}, {rcol}); a mapping value reads one column"
                " (map a column your HR system computes, or split the rule)"
            )
        if lcase != rcase:
            raise self.fail("mixes case-sensitive and case-insensitive comparisons")
        if expr.op == "or" and not lneg and not rneg:
            return lcol, _union(lvals, rvals), False, lcase
        if expr.op == "and" and lneg and rneg:
            return lcol, _union(lvals, rvals), True, lcase
        raise self.fail("only -or of -eq tests and -and of -ne tests on one column are translated")


def _flat(expr: Concat) -> list[Expr]:
    """The parts of a concatenation, nested ones (parentheses, strings) spread out."""
    parts: list[Expr] = []
    for part in expr.parts:
        parts.extend(_flat(part) if isinstance(part, Concat) else [part])
    return parts


def _text(value: Any) -> str:
    """A literal as PowerShell turns it into text."""
    if value is True or value is False:
        return "True" if value else "False"
    return "" if value is None else str(value)


def _union(left: tuple[str, ...], right: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys((*left, *right)))


def _boolean(column: str, values: tuple[str, ...], *, negated: bool, case: bool) -> Any:
    """``column`` tested for ``values``: [lower, {equals: ...}] or a lookup for -ne."""
    wanted = list(dict.fromkeys(values if case else (v.lower() for v in values)))
    steps: list[Any] = [] if case else ["lower"]
    if negated:
        steps.append({"lookup": {"table": dict.fromkeys(wanted, False), "default": True}})
    else:
        steps.append({"equals": wanted[0] if len(wanted) == 1 else wanted})
    return {"column": column, "transforms": steps}


def expression_value(expr: Expr, label: str, line: int) -> Any:
    """The mapping value for a scriptblock's expression; raises UntranslatableError."""
    return _Values(label, line).value(expr)
