"""Writing the translated mapping as YAML text: block style, comments, safe quoting.

The translator builds :class:`Block` trees; this module turns them into text the
mapping loader reads back (value expressions' ``transforms`` in flow style, as the
shipped samples write them). Text from the psd1 file only ever lands in quoted
scalars or in comments with line breaks and control characters escaped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = ["Block", "Hole", "Item", "comment_text", "emit", "scalar"]

_PLAIN: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_RESERVED: Final = frozenset({"true", "false", "null", "yes", "no", "on", "off", "y", "n"})
_FLOW_KEYS: Final = frozenset({"transforms"})
_MAX_SOURCE: Final = 200


@dataclass(slots=True)
class Hole:
    """An entry left untranslated: written as comments at its place."""

    line: int
    key: str
    source: str
    reason: str


@dataclass(slots=True)
class Item:
    """``key: value``; value is a scalar, a value-expression dict, a Block or a list of Blocks."""

    key: str
    value: Any
    comment: str = ""


@dataclass(slots=True)
class Block:
    """Attributes in file order, with holes between them."""

    entries: list[Item | Hole] = field(default_factory=list)

    def has_items(self) -> bool:
        return any(isinstance(e, Item) for e in self.entries)


def scalar(value: Any) -> str:
    """A YAML scalar: plain when unambiguous, else double-quoted with escapes."""
    if value is True or value is False:
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value)
    if _PLAIN.fullmatch(text) and text.lower() not in _RESERVED:
        return text
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch.isprintable() and ch not in "\u2028\u2029\ufeff":
            out.append(ch)
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


def flow(value: Any) -> str:
    """A value in YAML flow style: ``[lower, {equals: active}]``."""
    if isinstance(value, list):
        return "[" + ", ".join(flow(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{scalar(k)}: {flow(v)}" for k, v in value.items()) + "}"
    return scalar(value)


def comment_text(text: str, limit: int = _MAX_SOURCE) -> str:
    """One line of comment text: whitespace runs collapsed, control characters escaped."""
    one = " ".join(text.split())
    one = "".join(ch if ch.isprintable() else f"\\u{ord(ch):04x}" for ch in one)
    return one if len(one) <= limit else one[: limit - 3] + "..."


def _hole(lines: list[str], pad: str, hole: Hole) -> None:
    lines.append(f"{pad}# TODO psd1 line {hole.line}: not translated: {comment_text(hole.reason)}")
    lines.append(f"{pad}#   {comment_text(hole.key)} = {comment_text(hole.source)}")


def emit(lines: list[str], indent: int, block: Block) -> None:
    """Append ``block``'s lines at ``indent`` spaces."""
    for entry in block.entries:
        if isinstance(entry, Hole):
            _hole(lines, " " * indent, entry)
        else:
            _item(lines, indent, entry)


def _item(lines: list[str], indent: int, item: Item) -> None:
    pad = " " * indent
    key = scalar(item.key)
    note = f"  # {comment_text(item.comment)}" if item.comment else ""
    value = item.value
    if isinstance(value, Block):
        lines.append(f"{pad}{key}:{note}")
        emit(lines, indent + 2, value)
    elif isinstance(value, list):
        lines.append(f"{pad}{key}:{note}")
        for block in value:
            sub: list[str] = []
            emit(sub, indent + 4, block)
            first = next((i for i, s in enumerate(sub) if not s.lstrip().startswith("#")), None)
            if first is not None:  # an item of holes only stays as its comments
                sub[first] = f"{pad}  - " + sub[first][indent + 4 :]
            lines.extend(sub)
    elif isinstance(value, dict):
        lines.append(f"{pad}{key}:{note}")
        for sub_key, sub_value in value.items():
            text = flow(sub_value) if sub_key in _FLOW_KEYS else scalar(sub_value)
            lines.append(f"{pad}  {sub_key}: {text}")
    else:
        lines.append(f"{pad}{key}: {scalar(value)}{note}")
