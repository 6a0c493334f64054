"""Reading a mapping file: YAML text to a tree of values that keep their line numbers.

PyYAML's safe loader, bounded in depth (:mod:`connector.yaml_safe`), builds the nodes;
anchors and aliases, tags other than plain blocks and lists, ``<<`` merges and duplicate
keys are refused, and only YAML 1.2 booleans (``true``/``false``) are booleans, so ``yes``
or ``No`` stay text. Every problem is collected with its line before
:class:`~connector.errors.MappingError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from connector.errors import MappingError
from connector.yaml_safe import BoundedSafeLoader

_YAML12_BOOL: Final = frozenset({"true", "false"})
_PLAIN_TAGS: Final = frozenset({"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"})


@dataclass(slots=True)
class YamlValue:
    """A YAML value with the (1-based) line it starts on; dict keys are their raw text."""

    v: Any
    line: int


def _reader_problem(label: str, text: str, exc: yaml.reader.ReaderError) -> str:
    """A character YAML does not allow (NUL, ESC, ...), by code point and line, not value."""
    char = exc.character
    code = ord(char) if isinstance(char, str) else int(char)
    line = text.count("\n", 0, max(exc.position, 0)) + 1
    return f"{label}:{line}: character U+{code:04X} is not allowed in YAML (remove it)"


def read_tree(text: str, label: str) -> YamlValue:
    """Parse ``text``; every problem is collected with its line before MappingError."""
    root = _root_node(text, label)
    walk = _TreeWalk(label)
    try:
        tree = walk.node(root)
    finally:
        walk.constructor.dispose()
    if walk.problems:
        raise MappingError(f"{label} cannot be read", walk.problems)
    return tree


def _root_node(text: str, label: str) -> yaml.Node:
    """The document's node tree; text that is not YAML, or is empty, is a MappingError."""
    try:
        loader = BoundedSafeLoader(text)
    except yaml.reader.ReaderError as exc:
        raise MappingError(
            f"{label} is not valid YAML", [_reader_problem(label, text, exc)]
        ) from None
    try:
        root = loader.get_single_node()
    except yaml.reader.ReaderError as exc:
        raise MappingError(
            f"{label} is not valid YAML", [_reader_problem(label, text, exc)]
        ) from None
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 0
        raise MappingError(
            f"{label} is not valid YAML", [f"{label}:{line}: {exc.problem or exc}"]
        ) from None
    except yaml.YAMLError as exc:
        raise MappingError(f"{label} is not valid YAML", [f"{label}: {exc}"]) from None
    finally:
        loader.dispose()
    if root is None:
        raise MappingError(f"{label} is empty", [f"{label}:1: the mapping file is empty"])
    return root


class _TreeWalk:
    """Nodes to values with their lines, collecting every refused construct in ``problems``."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.problems: list[str] = []
        self.seen: set[int] = set()
        self.constructor = yaml.SafeLoader("")

    def node(self, node: yaml.Node) -> YamlValue:
        """Any node: an alias (a node met before) or a tag is refused, else its value."""
        line = node.start_mark.line + 1
        if id(node) in self.seen:
            self.problems.append(f"{self.label}:{line}: YAML anchors and aliases are not supported")
            return YamlValue(None, line)
        self.seen.add(id(node))
        if isinstance(node, yaml.MappingNode | yaml.SequenceNode) and node.tag not in _PLAIN_TAGS:
            self.problems.append(f"{self.label}:{line}: YAML tag {node.tag!r} is not allowed")
            return YamlValue(None, line)
        if isinstance(node, yaml.MappingNode):
            return YamlValue(self.mapping(node, line), line)
        if isinstance(node, yaml.SequenceNode):
            return YamlValue([self.node(n) for n in node.value], line)
        assert isinstance(node, yaml.ScalarNode)
        return _scalar(node, self.constructor, self.problems, self.label)

    def mapping(self, node: yaml.MappingNode, line: int) -> dict[str, YamlValue]:
        """A block's entries by key text; merges, non-text and duplicate keys are refused."""
        out: dict[str, YamlValue] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                self.problems.append(
                    f"{self.label}:{line}: keys must be plain text (no '<<' merges)"
                )
                continue
            key = str(key_node.value)
            if key in out:
                self.problems.append(
                    f"{self.label}:{key_node.start_mark.line + 1}: duplicate key {key!r}"
                )
                continue
            out[key] = self.node(value_node)
        return out


def _scalar(
    node: yaml.ScalarNode, constructor: yaml.SafeLoader, problems: list[str], label: str
) -> YamlValue:
    """A scalar as text, a YAML 1.2 boolean, a number or null; dates become ISO text."""
    line = node.start_mark.line + 1
    if node.tag == "tag:yaml.org,2002:bool" and node.value.lower() not in _YAML12_BOOL:
        return YamlValue(node.value, line)  # YAML 1.2 booleans only: 'yes', 'No', 'on' stay text
    try:
        value = constructor.construct_object(node)
    except yaml.YAMLError as exc:
        problems.append(f"{label}:{line}: {getattr(exc, 'problem', None) or exc}")
        return YamlValue(None, line)
    if not isinstance(value, str | bool | int | float) and value is not None:
        value = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return YamlValue(value, line)


def plain(y: YamlValue) -> Any:
    """The value without line numbers (a transform's or a test's argument)."""
    if isinstance(y.v, dict):
        return {k: plain(v) for k, v in y.v.items()}
    if isinstance(y.v, list):
        return [plain(v) for v in y.v]
    return y.v


def read_source(path_or_text: str | Path) -> tuple[str, str]:
    """``(text, label)`` from a file path, or from YAML text (text has a newline)."""
    if isinstance(path_or_text, Path) or "\n" not in path_or_text:
        path = Path(path_or_text)
        try:
            return path.read_text(encoding="utf-8-sig"), str(path)
        except FileNotFoundError:
            raise MappingError(f"mapping file {path} not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise MappingError(f"mapping file {path} cannot be read: {exc}") from None
    return path_or_text, "<mapping>"
