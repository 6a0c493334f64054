"""The expression shapes of CSV2SCIM scriptblocks, parsed (never run) into a small tree.

Supported: one expression over ``$_`` (or ``$PSItem``): column reads (``$_.Name``,
``$_.'Name'``), literals, ``+`` concatenation, double-quoted strings with ``$( )``,
comparisons ``-eq``/``-ne`` (and their ``-i``/``-c`` forms), ``-and``/``-or``/``-not``/``!``
with PowerShell's precedence (``-and`` and ``-or`` are equal and left-associative; unary
operators bind tightest), parentheses, and the string methods ``ToLower()``,
``ToUpper()``, ``Trim()`` and ``Substring(0, n)``. Anything else raises
:class:`~connector.errors.UntranslatableError` saying what was found.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from connector.errors import UntranslatableError
from connector.migrate.tokens import MAX_DEPTH, Sub, Text, Token, Var

__all__ = ["Cmp", "Col", "Concat", "Expr", "Lit", "Logic", "Method", "Not", "parse_expression"]

_COMPARE: Final = {
    "-eq": ("eq", False),
    "-ieq": ("eq", False),
    "-ceq": ("eq", True),
    "-ne": ("ne", False),
    "-ine": ("ne", False),
    "-cne": ("ne", True),
}
_ROW: Final = frozenset({"_", "psitem"})


@dataclass(frozen=True, slots=True)
class Lit:
    """A literal: text, number, boolean or null."""

    value: str | int | float | bool | None


@dataclass(frozen=True, slots=True)
class Col:
    """A column of the row: ``$_.Name``."""

    name: str


@dataclass(frozen=True, slots=True)
class Concat:
    """Text joined from parts (``+`` or a double-quoted string)."""

    parts: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Cmp:
    """``left -eq/-ne right``; ``case``: the ``-c`` form (case-sensitive)."""

    op: str
    left: Expr
    right: Expr
    case: bool


@dataclass(frozen=True, slots=True)
class Logic:
    """``left -and/-or right``."""

    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class Not:
    """``-not x`` or ``!x``."""

    operand: Expr


@dataclass(frozen=True, slots=True)
class Method:
    """``target.Name(args)`` with literal arguments."""

    target: Expr
    name: str
    args: tuple[Lit, ...]


Expr = Lit | Col | Concat | Cmp | Logic | Not | Method


class _Row:
    """``$_`` itself: only meaningful before ``.Column``."""


_ROW_VALUE: Final = _Row()


class _Parser:
    def __init__(self, tokens: tuple[Token, ...], label: str, line: int) -> None:
        self.tokens = [t for t in tokens if t.kind != "eof"]
        self.label = label
        self.line = line
        self.i = 0

    def fail(self, reason: str, tok: Token | None = None) -> UntranslatableError:
        return UntranslatableError(reason, path=self.label, line=tok.line if tok else self.line)

    def peek(self) -> Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def kind(self) -> str:
        tok = self.peek()
        return tok.kind if tok is not None else "eof"

    def take(self) -> Token:
        tok = self.peek()
        if tok is None:
            raise self.fail("the expression ends too early")
        self.i += 1
        return tok

    def newlines(self) -> None:
        while self.kind() == "newline":
            self.i += 1

    def whole(self, depth: int) -> Expr:
        while self.kind() in ("newline", ";"):
            self.i += 1
        first = self.peek()
        if first is not None and first.kind == "word" and first.text.lower() == "return":
            self.i += 1
        if self.kind() == "eof":
            raise self.fail("the scriptblock is empty")
        expr = self.logic(depth)
        while self.kind() in ("newline", ";"):
            self.i += 1
        if self.kind() != "eof":
            tok = self.peek()
            raise self.fail(
                f"only a single expression is translated; found {_show(tok)} after it"
                " (statements, pipelines and if/else have no equivalent)",
                tok,
            )
        return expr

    def logic(self, depth: int) -> Expr:
        left = self.compare(depth)
        while self.kind() == "op" and self.take_if(("-and", "-or")):
            op = self.tokens[self.i - 1].text[1:]
            self.newlines()
            left = Logic(op, left, self.compare(depth))
        return left

    def take_if(self, texts: tuple[str, ...]) -> bool:
        tok = self.peek()
        if tok is not None and tok.text in texts:
            self.i += 1
            return True
        return False

    def compare(self, depth: int) -> Expr:
        left = self.additive(depth)
        tok = self.peek()
        if tok is None or tok.kind != "op":
            return left
        if tok.text in _COMPARE:
            self.i += 1
            self.newlines()
            op, case = _COMPARE[tok.text]
            right = self.additive(depth)
            nxt = self.peek()
            if nxt is not None and nxt.kind == "op" and (nxt.text in _COMPARE):
                raise self.fail("chained comparisons are not translated", nxt)
            return Cmp(op, left, right, case)
        if tok.text in ("-and", "-or"):
            return left
        raise self.fail(f"the {tok.text} operator has no equivalent in the mapping language", tok)

    def additive(self, depth: int) -> Expr:
        left = self.unary(depth)
        parts = [left]
        while self.kind() == "+":
            self.i += 1
            self.newlines()
            parts.append(self.unary(depth))
        if self.kind() == "-":
            raise self.fail("subtraction is not translated", self.peek())
        return left if len(parts) == 1 else Concat(tuple(parts))

    def unary(self, depth: int) -> Expr:
        if depth > MAX_DEPTH:
            raise self.fail(f"nested more than {MAX_DEPTH} levels deep")
        tok = self.peek()
        if tok is not None and (tok.kind == "!" or (tok.kind == "op" and tok.text == "-not")):
            self.i += 1
            return Not(self.unary(depth + 1))
        return self.postfix(depth)

    def postfix(self, depth: int) -> Expr:
        value: Expr | _Row = self.primary(depth)
        while self.kind() == ".":
            dot = self.take()
            name_tok = self.take()
            if name_tok.kind not in ("word", "str") and not (
                name_tok.kind == "dstr" and all(isinstance(p, Text) for p in name_tok.parts)
            ):
                raise self.fail(f"expected a property name after ., found {_show(name_tok)}", dot)
            if isinstance(value, _Row):
                value = Col(name_tok.text)
                continue
            if self.kind() != "(":
                raise self.fail(f"the property .{name_tok.text} of a value is not translated", dot)
            self.take()
            value = Method(value, name_tok.text, self.arguments(name_tok))
        if isinstance(value, _Row):
            raise self.fail("$_ alone is the whole row; read a column with $_.Name")
        return value

    def arguments(self, opening: Token) -> tuple[Lit, ...]:
        args: list[Lit] = []
        while self.kind() != ")":
            tok = self.take()
            if tok.kind == "num":
                args.append(Lit(int(tok.text) if tok.text.isdigit() else tok.text))
            elif tok.kind == "str":
                args.append(Lit(tok.text))
            else:
                raise self.fail("method arguments must be literal numbers or text", opening)
            if self.kind() == ",":
                self.take()
        self.take()
        return tuple(args)

    def primary(self, depth: int) -> Expr | _Row:
        tok = self.take()
        kind = tok.kind
        if kind == "str":
            return Lit(tok.text)
        if kind == "dstr":
            return self.expandable(tok, depth)
        if kind == "num":
            raw = tok.text
            return Lit(int(raw) if raw.isdigit() else raw)
        if kind == "var":
            name = tok.text.lower()
            if name in ("true", "false"):
                return Lit(name == "true")
            if name == "null":
                return Lit(None)
            if name in _ROW:
                return _ROW_VALUE
            raise self.fail(f"the variable ${tok.text} is not translated (only $_ is)", tok)
        if kind in ("(", "$("):
            inner = self.logic(depth + 1)
            self.newlines()
            if self.kind() != ")":
                raise self.fail(f"expected ), found {_show(self.peek())}", tok)
            self.take()
            return inner
        if kind == "word" and tok.text.lower() in ("if", "switch", "foreach", "for", "while"):
            raise self.fail(
                f"{tok.text} statements have no equivalent in the mapping language", tok
            )
        if kind == "[":
            raise self.fail("type casts and static calls ([...]) are not translated", tok)
        raise self.fail(
            f"{_show(tok)} is not one of the translated shapes (commands, pipelines and"
            " other PowerShell have no equivalent)",
            tok,
        )

    def expandable(self, tok: Token, depth: int) -> Expr:
        parts: list[Expr] = []
        for part in tok.parts:
            if isinstance(part, Text):
                parts.append(Lit(part.value))
            elif isinstance(part, Var):
                if part.name.lower() in _ROW:
                    raise self.fail(
                        'in a double-quoted string "$_.Name" expands $_ alone (the whole row)'
                        ' and then the text ".Name"; write "$($_.Name)"',
                        tok,
                    )
                raise self.fail(f"the variable ${part.name} is not translated (only $_ is)", tok)
            elif isinstance(part, Sub):
                parts.append(_Parser(part.tokens, self.label, part.line).whole(depth + 1))
        if len(parts) == 1 and isinstance(parts[0], Lit):
            return parts[0]
        return Concat(tuple(parts))


def _show(tok: Token | None) -> str:
    if tok is None:
        return "the end"
    if tok.kind == "newline":
        return "a new line"
    text = tok.text if len(tok.text) <= 40 else tok.text[:37] + "..."
    return repr(text)


def parse_expression(tokens: tuple[Token, ...], label: str, line: int) -> Expr:
    """The expression a scriptblock's tokens hold; raises UntranslatableError."""
    return _Parser(tokens, label, line).whole(0)
