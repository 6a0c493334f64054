"""Tokens of PowerShell source: the part of the language a data file and a simple
scriptblock use, with PowerShell's quoting and escaping rules.

Strings: single-quoted (a doubled quote is one quote; typographic quotes count, as in
PowerShell) and double-quoted (backtick escapes, ``$name`` and ``$( ... )`` kept as
parts, never expanded). Comments ``#`` and ``<# #>``, and backtick line continuations,
are skipped. Errors are :class:`~connector.errors.Psd1Error` with the file and line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from connector.errors import Psd1Error

__all__ = ["MAX_DEPTH", "Part", "Sub", "Text", "Token", "Var", "tokenize"]

#: nesting of hashtables, arrays, parentheses, scriptblocks and subexpressions
MAX_DEPTH: Final = 64

_SINGLE_QUOTES: Final = "'\u2018\u2019\u201a\u201b"
_DOUBLE_QUOTES: Final = '"\u201c\u201d\u201e'
_ESCAPES: Final = {
    "0": "\0",
    "a": "\a",
    "b": "\b",
    "e": "\x1b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
}
_NUMBER: Final = re.compile(r"0[xX][0-9a-fA-F]+|\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
_WORD: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ALNUM: Final = re.compile(r"[A-Za-z0-9_]+")
_IN_STRING_VAR: Final = re.compile(r"\{[^}\n]*\}|[A-Za-z0-9_]+(?::[A-Za-z0-9_]+)?")
_UNICODE_ESCAPE: Final = re.compile(r"\{([0-9a-fA-F]{1,6})\}")
_VAR_NAME: Final = re.compile(r"[A-Za-z0-9_]+(?::[A-Za-z0-9_]+)?|[$?^]")
_PUNCT: Final = frozenset("=,.+;()[]{}!")


@dataclass(frozen=True, slots=True)
class Text:
    """Literal text inside a double-quoted string."""

    value: str


@dataclass(frozen=True, slots=True)
class Var:
    """``$name`` inside a double-quoted string (``$_.A`` expands ``$_`` only)."""

    name: str


@dataclass(frozen=True, slots=True)
class Sub:
    """``$( ... )`` inside a double-quoted string, as tokens."""

    tokens: tuple[Token, ...]
    line: int


Part = Text | Var | Sub


@dataclass(frozen=True, slots=True)
class Token:
    """One token: ``kind`` is the punctuation itself or str/dstr/num/var/word/op/newline/other/eof.

    ``text`` is a string's value, an operator's lower-case name (``-eq``), a variable's
    name, or the source text; ``parts`` a double-quoted string's pieces.
    """

    kind: str
    text: str
    line: int
    start: int
    end: int
    parts: tuple[Part, ...] = ()


class _Lexer:
    """Turns source text into tokens; ``$( )`` inside strings recurses (depth-bounded)."""

    def __init__(self, text: str, label: str) -> None:
        self.text = text
        self.label = label
        self.pos = 0
        self.line = 1

    def error(self, message: str, line: int | None = None) -> Psd1Error:
        return Psd1Error(message, path=self.label, line=self.line if line is None else line)

    def run(self, *, until_paren: bool = False, depth: int = 0) -> list[Token]:
        """Tokens to the end (or, inside ``$(``, to its closing parenthesis, consumed)."""
        if depth > MAX_DEPTH:
            raise self.error(f"nested more than {MAX_DEPTH} levels deep")
        out: list[Token] = []
        parens = 0
        opened = self.line
        while True:
            tok = self._next(depth)
            if tok.kind == "eof":
                if until_paren:
                    raise self.error("$( is never closed", opened)
                out.append(tok)
                return out
            if until_paren:
                if tok.kind in ("(", "$(", "@("):
                    parens += 1
                elif tok.kind == ")":
                    if parens == 0:
                        return out
                    parens -= 1
            out.append(tok)

    def _tok(
        self, kind: str, start: int, text: str | None = None, line: int | None = None
    ) -> Token:
        raw = self.text[start : self.pos]
        return Token(
            kind,
            raw if text is None else text,
            self.line if line is None else line,
            start,
            self.pos,
        )

    def _skip_space(self) -> None:
        text = self.text
        while self.pos < len(text):
            ch = text[self.pos]
            if ch == "\n":
                return
            if ch.isspace() or ch == "\ufeff":
                self.pos += 1
            elif ch == "`" and text.startswith("\n", self.pos + 1):
                self.pos += 2
                self.line += 1
            elif ch == "`" and text.startswith("\r\n", self.pos + 1):
                self.pos += 3
                self.line += 1
            elif ch == "#":
                end = text.find("\n", self.pos)
                self.pos = len(text) if end < 0 else end
            elif text.startswith("<#", self.pos):
                end = text.find("#>", self.pos + 2)
                if end < 0:
                    raise self.error("a <# block comment is never closed with #>")
                self.line += text.count("\n", self.pos, end)
                self.pos = end + 2
            else:
                return

    def _next(self, depth: int) -> Token:
        self._skip_space()
        text, start = self.text, self.pos
        if start >= len(text):
            return Token("eof", "", self.line, start, start)
        ch = text[start]
        if ch == "\n":
            self.pos += 1
            self.line += 1
            return Token("newline", "\n", self.line - 1, start, self.pos)
        if ch in _SINGLE_QUOTES:
            return self._single(start)
        if ch in _DOUBLE_QUOTES:
            return self._double(start, depth)
        if ch == "@":
            return self._at(start)
        if ch == "$":
            return self._dollar(start)
        if ch == "-":
            m = _WORD.match(text, start + 1)
            self.pos = m.end() if m else start + 1
            return (
                self._tok("op", start, text[start : self.pos].lower())
                if m
                else self._tok("-", start)
            )
        m = _NUMBER.match(text, start)
        if m and not _WORD.match(text, m.end()):
            self.pos = m.end()
            return self._tok("num", start)
        m = _ALNUM.match(text, start)
        if m:
            self.pos = m.end()
            return self._tok("word", start)
        self.pos += 1
        if text.startswith("::", start):
            self.pos += 1
        return self._tok(ch if ch in _PUNCT else "other", start)

    def _at(self, start: int) -> Token:
        nxt = self.text[start + 1 : start + 2]
        if nxt in ("{", "("):
            self.pos += 2
            return self._tok("@" + nxt, start)
        if nxt and nxt in _SINGLE_QUOTES + _DOUBLE_QUOTES:
            raise self.error("here-strings (@' '@, @\" \"@) are not supported; use a quoted string")
        self.pos += 1
        return self._tok("other", start)

    def _dollar(self, start: int) -> Token:
        text = self.text
        nxt = text[start + 1 : start + 2]
        if nxt == "(":
            self.pos += 2
            return self._tok("$(", start)
        if nxt == "{":
            end = text.find("}", start + 2)
            if end < 0 or "\n" in text[start:end]:
                raise self.error("a ${ variable name is never closed with }")
            self.pos = end + 1
            return self._tok("var", start, text[start + 2 : end])
        m = _VAR_NAME.match(text, start + 1)
        if m is None:
            self.pos += 1
            return self._tok("other", start)
        self.pos = m.end()
        return self._tok("var", start, m.group(0))

    def _single(self, start: int) -> Token:
        text, line = self.text, self.line
        chars: list[str] = []
        i = start + 1
        while i < len(text):
            ch = text[i]
            if ch in _SINGLE_QUOTES:
                if i + 1 < len(text) and text[i + 1] in _SINGLE_QUOTES:
                    chars.append(ch)
                    i += 2
                    continue
                self.pos = i + 1
                return self._tok("str", start, "".join(chars), line)
            if ch == "\n":
                self.line += 1
            chars.append(ch)
            i += 1
        raise self.error("a single-quoted string is never closed", line)

    def _double(self, start: int, depth: int) -> Token:
        text, line = self.text, self.line
        parts: list[Part] = []
        chars: list[str] = []
        i = start + 1

        def flush() -> None:
            if chars:
                parts.append(Text("".join(chars)))
                chars.clear()

        while i < len(text):
            ch = text[i]
            if ch in _DOUBLE_QUOTES:
                if i + 1 < len(text) and text[i + 1] in _DOUBLE_QUOTES:
                    chars.append(ch)
                    i += 2
                    continue
                flush()
                self.pos = i + 1
                value = "".join(p.value for p in parts if isinstance(p, Text))
                tok = self._tok("dstr", start, value, line)
                return Token(tok.kind, tok.text, tok.line, tok.start, tok.end, tuple(parts))
            if ch == "`" and i + 1 < len(text):
                i = self._escape(i, chars)
                continue
            if ch == "$" and text.startswith("(", i + 1):
                flush()
                self.pos = i + 2
                sub_line = self.line
                tokens = self.run(until_paren=True, depth=depth + 1)
                parts.append(Sub(tuple(tokens), sub_line))
                i = self.pos
                continue
            if ch == "$":
                m = _IN_STRING_VAR.match(text, i + 1)
                if m:
                    flush()
                    name = m.group(0)
                    parts.append(Var(name[1:-1] if name.startswith("{") else name))
                    i = m.end()
                    continue
            if ch == "\n":
                self.line += 1
            chars.append(ch)
            i += 1
        raise self.error("a double-quoted string is never closed", line)

    def _escape(self, i: int, chars: list[str]) -> int:
        """A backtick escape at ``i``; returns the index after it."""
        text = self.text
        nxt = text[i + 1]
        if nxt == "u" and text.startswith("{", i + 2):
            m = _UNICODE_ESCAPE.match(text, i + 2)
            code = int(m.group(1), 16) if m is not None else -1
            if not (0 <= code <= 0x10FFFF) or 0xD800 <= code <= 0xDFFF:
                raise self.error("a `u{...} escape needs 1 to 6 hex digits naming a character")
            chars.append(chr(code))
            return m.end() if m is not None else i + 2
        if nxt == "\n":
            self.line += 1
        chars.append(_ESCAPES.get(nxt, nxt))
        return i + 2


def tokenize(text: str, label: str) -> list[Token]:
    """Every token of ``text`` (ending with an ``eof`` token); raises Psd1Error."""
    return _Lexer(text, label).run()
