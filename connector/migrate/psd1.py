"""A reader for PowerShell data files (``.psd1``) that never runs them.

CSV2SCIM mappings are read by ``Import-PowerShellDataFile``; this module reads the same
subset with a small tokenizer and a recursive-descent parser: hashtables ``@{}``, arrays
``@()`` and comma lists, single- and double-quoted strings with PowerShell's escaping
rules, numbers, ``$true``/``$false``/``$null``, comments (``#`` and ``<# #>``) and
backtick line continuations (tokens: :mod:`connector.migrate.tokens`). A scriptblock
``{ ... }`` is kept as its tokens and source text for :mod:`connector.migrate.scriptblock`;
nothing is evaluated.

Every problem is a :class:`~connector.errors.Psd1Error` naming the file and line. Size
and nesting are bounded so a hostile file cannot exhaust memory or the stack.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

from connector.errors import Psd1Error
from connector.migrate.tokens import MAX_DEPTH, Text, Token, tokenize

__all__ = [
    "MAX_BYTES",
    "Array",
    "Entry",
    "Expandable",
    "Hashtable",
    "Literal",
    "ScriptBlock",
    "Value",
    "decode_psd1",
    "parse_psd1",
    "read_psd1",
]

#: a mapping file is a few kilobytes; anything near this is not one
MAX_BYTES: Final = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Literal:
    """Text, a number, a boolean or null."""

    value: str | int | float | bool | None
    line: int


@dataclass(frozen=True, slots=True)
class Expandable:
    """A double-quoted string with ``$`` expansions (only meaningful inside a scriptblock)."""

    token: Token
    line: int


@dataclass(frozen=True, slots=True)
class ScriptBlock:
    """``{ ... }``: its tokens (braces excluded) and its source text, never run."""

    tokens: tuple[Token, ...]
    source: str
    line: int


@dataclass(frozen=True, slots=True)
class Entry:
    """One ``key = value`` of a hashtable."""

    key: str
    value: Value
    line: int


@dataclass(frozen=True, slots=True)
class Hashtable:
    """``@{ ... }``: entries in file order (keys are unique, ignoring case)."""

    entries: tuple[Entry, ...]
    line: int


@dataclass(frozen=True, slots=True)
class Array:
    """``@( ... )`` or ``a, b``."""

    items: tuple[Value, ...]
    line: int


Value = Literal | Expandable | ScriptBlock | Hashtable | Array


class _Parser:
    """Recursive descent over the tokens of a data file."""

    def __init__(self, tokens: list[Token], text: str, label: str) -> None:
        self.tokens = tokens
        self.text = text
        self.label = label
        self.i = 0

    def error(self, message: str, tok: Token | None = None) -> Psd1Error:
        return Psd1Error(message, path=self.label, line=(tok or self.peek()).line)

    def peek(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        tok = self.tokens[self.i]
        if tok.kind != "eof":
            self.i += 1
        return tok

    def skip(self, kinds: tuple[str, ...] = ("newline", ";")) -> None:
        while self.peek().kind in kinds:
            self.i += 1

    def document(self) -> Hashtable:
        self.skip()
        first = self.peek()
        if first.kind != "@{":
            raise self.error(
                f"not a PowerShell data file: expected @{{ (a hashtable), found {_show(first)}"
            )
        self.take()
        table = self.hashtable(first, 1)
        self.skip()
        if self.peek().kind != "eof":
            raise self.error(f"unexpected {_show(self.peek())} after the file's closing }}")
        return table

    def hashtable(self, opening: Token, depth: int) -> Hashtable:
        entries: list[Entry] = []
        seen: dict[str, int] = {}
        while True:
            self.skip()
            tok = self.take()
            if tok.kind == "}":
                return Hashtable(tuple(entries), opening.line)
            if tok.kind == "eof":
                raise self.error(f"the @{{ opened on line {opening.line} is never closed", tok)
            key = self.key(tok)
            if key.lower() in seen:
                raise self.error(
                    f"duplicate key {key!r} (also on line {seen[key.lower()]}; keys ignore case)",
                    tok,
                )
            seen[key.lower()] = tok.line
            if self.take().kind != "=":
                raise self.error(f"expected = after the key {key!r}", tok)
            self.skip(("newline",))
            value = self.value(depth + 1)
            entries.append(Entry(key, value, tok.line))
            end = self.peek()
            if end.kind == "eof":
                raise self.error(f"the @{{ opened on line {opening.line} is never closed", end)
            if end.kind not in ("newline", ";", "}"):
                raise self.error(f"expected a new line, ; or }} after the value of {key!r}")

    def key(self, tok: Token) -> str:
        if tok.kind in ("word", "num", "str") or (tok.kind == "dstr" and _plain(tok)):
            return tok.text
        raise self.error(f"expected a key (a name or a quoted string), found {_show(tok)}", tok)

    def value(self, depth: int) -> Value:
        """A value, or a comma list of values (an array)."""
        first = self.primary(depth)
        if self.peek().kind != ",":
            return first
        items = [first]
        while self.peek().kind == ",":
            self.take()
            self.skip(("newline",))
            items.append(self.primary(depth))
        return Array(tuple(items), first.line)

    def primary(self, depth: int) -> Value:
        if depth > MAX_DEPTH:
            raise self.error(f"nested more than {MAX_DEPTH} levels deep")
        tok = self.take()
        kind = tok.kind
        if kind == "str" or (kind == "dstr" and _plain(tok)):
            return Literal(tok.text, tok.line)
        if kind == "dstr":
            return Expandable(tok, tok.line)
        if kind == "num" or (kind == "-" and self.peek().kind == "num"):
            return self.number(tok)
        if kind == "var":
            return self.variable(tok)
        if kind == "@{":
            return self.hashtable(tok, depth)
        if kind == "@(":
            return self.array(tok, depth)
        if kind == "{":
            return self.scriptblock(tok, depth)
        if kind == "(":
            inner = self.value(depth + 1)
            if self.take().kind != ")":
                raise self.error(f"the ( opened on line {tok.line} is never closed", tok)
            return inner
        if kind == "[":
            raise self.error("type casts like [string] are not allowed in a data file", tok)
        raise self.error(
            "expected a value (a quoted string, a number, $true, $false, $null, @{...}, @(...)"
            f" or {{...}}), found {_show(tok)}",
            tok,
        )

    def number(self, tok: Token) -> Literal:
        sign = 1
        if tok.kind == "-":
            sign, tok = -1, self.take()
        raw = tok.text
        num: int | float = int(raw, 16) if raw[:2].lower() == "0x" else _decimal(raw)
        return Literal(sign * num, tok.line)

    def variable(self, tok: Token) -> Literal:
        name = tok.text.lower()
        if name in ("true", "false"):
            return Literal(name == "true", tok.line)
        if name == "null":
            return Literal(None, tok.line)
        raise self.error(
            f"variables are not allowed in a data file (${tok.text}); only $true, $false, $null",
            tok,
        )

    def array(self, opening: Token, depth: int) -> Array:
        items: list[Value] = []
        while True:
            self.skip()
            tok = self.peek()
            if tok.kind == ")":
                self.take()
                return Array(tuple(items), opening.line)
            if tok.kind in ("eof", "}"):
                raise self.error(f"the @( opened on line {opening.line} is never closed", tok)
            value = self.value(depth + 1)
            items.extend(value.items if isinstance(value, Array) else [value])  # @() unrolls
            if self.peek().kind not in ("newline", ";", ")"):
                raise self.error(f"expected a new line, ; or ) in the @( of line {opening.line}")

    def scriptblock(self, opening: Token, depth: int) -> ScriptBlock:
        level = 0
        start = self.i
        while True:
            tok = self.take()
            if tok.kind == "eof":
                raise self.error(f"the {{ opened on line {opening.line} is never closed", tok)
            if tok.kind in ("{", "@{"):
                level += 1
                if depth + level > MAX_DEPTH:
                    raise self.error(f"nested more than {MAX_DEPTH} levels deep", tok)
            elif tok.kind == "}":
                if level == 0:
                    body = tuple(self.tokens[start : self.i - 1])
                    source = self.text[opening.start : tok.end]
                    return ScriptBlock(body, source, opening.line)
                level -= 1


def _plain(tok: Token) -> bool:
    """A double-quoted string without expansions is plain text."""
    return all(isinstance(p, Text) for p in tok.parts)


def _decimal(raw: str) -> int | float:
    return float(raw) if any(c in raw for c in ".eE") else int(raw)


def _show(tok: Token) -> str:
    if tok.kind == "eof":
        return "the end of the file"
    if tok.kind == "newline":
        return "a line end"
    shown = tok.text if len(tok.text) <= 40 else tok.text[:37] + "..."
    return repr(shown)


def parse_psd1(text: str, label: str = "<psd1>") -> Hashtable:
    """The top-level hashtable of a data file's text; raises Psd1Error with file and line."""
    if len(text) > MAX_BYTES:
        raise Psd1Error(f"over the {MAX_BYTES // 1024} KiB limit for a mapping file", path=label)
    tokens = tokenize(text, label)
    return _Parser(tokens, text, label).document()


def decode_psd1(data: bytes, label: str, encoding: str | None = None) -> str:
    """Text of a psd1 file: a UTF-8/UTF-16 byte-order mark wins, else ``encoding`` or UTF-8."""
    if len(data) > MAX_BYTES:
        raise Psd1Error(
            f"{len(data)} bytes, over the {MAX_BYTES // 1024} KiB limit for a mapping file",
            path=label,
        )
    boms = ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))
    for bom, codec in boms:
        if data.startswith(bom):
            data, encoding = data[len(bom) :], codec
            break
    try:
        return data.decode(encoding or "utf-8")
    except LookupError:
        raise Psd1Error(f"unknown encoding {encoding!r}", path=label) from None
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise Psd1Error(
            f"not {encoding or 'UTF-8'} text; save the file as UTF-8 or pass --encoding"
            " (Windows PowerShell 5.1 reads files without a byte-order mark as cp1252)",
            path=label,
            line=line,
        ) from None


def read_psd1(path: Path, encoding: str | None = None) -> tuple[Hashtable, str]:
    """``(top-level hashtable, text)`` of a psd1 file; raises Psd1Error naming the file."""
    label = str(path)
    try:
        with path.open("rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise Psd1Error(f"cannot be read: {exc.strerror or exc}", path=label) from None
    text = decode_psd1(data, label, encoding)
    return parse_psd1(text, label), text
