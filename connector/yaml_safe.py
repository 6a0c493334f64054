"""The one YAML loading path of mapping and sources files: safe, and bounded in depth.

PyYAML's composer recurses once per nesting level (a few Python frames each), so a
file nested some hundreds of levels deep ends in ``RecursionError``, a traceback
instead of an error naming the file. No real mapping or sources file nests more than
a handful of levels; past :data:`MAX_DEPTH` the loader stops with a
``yaml.MarkedYAMLError`` carrying the line, which the callers turn into their
:class:`~connector.errors.MappingError` or :class:`~connector.errors.ConfigError`.
Only PyYAML's safe loader is used: tags that would build objects are refused there.
"""

from __future__ import annotations

from typing import Any, Final

import yaml
from yaml.composer import ComposerError

__all__ = ["MAX_DEPTH", "BoundedSafeLoader", "compose_yaml", "load_yaml", "problem_line"]

#: deepest nesting of blocks and lists accepted (a mapping file uses about six)
MAX_DEPTH: Final = 64


class BoundedSafeLoader(yaml.SafeLoader):
    """PyYAML's safe loader refusing documents nested deeper than :data:`MAX_DEPTH`."""

    def __init__(self, stream: str | bytes) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise ComposerError(None, None, f"nested deeper than {MAX_DEPTH} levels", mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def compose_yaml(text: str) -> yaml.Node | None:
    """The node tree of ``text`` (None for an empty document); raises ``yaml.YAMLError``."""
    loader = BoundedSafeLoader(text)
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()


def load_yaml(text: str) -> Any:
    """Plain Python values of ``text`` (safe tags only); raises ``yaml.YAMLError``."""
    return yaml.load(text, Loader=BoundedSafeLoader)  # noqa: S506 - a SafeLoader subclass


def problem_line(exc: yaml.YAMLError) -> tuple[int | None, str]:
    """``(line, problem)`` of a YAML error, on one line (without PyYAML's file excerpt)."""
    if isinstance(exc, yaml.MarkedYAMLError):
        line = exc.problem_mark.line + 1 if exc.problem_mark is not None else None
        return line, str(exc.problem or exc.context or "not valid YAML")
    return None, str(exc).splitlines()[0] if str(exc) else "not valid YAML"
