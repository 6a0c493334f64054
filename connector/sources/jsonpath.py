"""A small, safe JSONPath subset for finding records and paging values in API answers.

Supported: ``$`` (the document), ``.name``, ``['name']`` / ``["name"]`` (any key,
including ``@odata.nextLink``), ``[n]`` (an index) and ``[*]`` / ``.*`` (every item of
an array or value of an object). No filters, scripts or recursion: paths in a config
never evaluate code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["JsonPath", "parse_path"]

_STEP: Final = re.compile(
    r"""\.(?P<name>[A-Za-z_@$][\w@$-]*)"""
    r"""|\.(?P<dotstar>\*)"""
    r"""|\[\s*(?:'(?P<sq>[^']*)'|"(?P<dq>[^"]*)"|(?P<idx>-?\d+)|(?P<star>\*))\s*\]"""
)


@dataclass(frozen=True, slots=True)
class JsonPath:
    """A parsed path: each step a key (str), an index (int) or ``None`` for a wildcard."""

    text: str
    steps: tuple[str | int | None, ...]

    def find(self, doc: Any) -> list[Any]:
        """Every value the path reaches in ``doc`` (missing keys reach nothing)."""
        current = [doc]
        for step in self.steps:
            nxt: list[Any] = []
            for value in current:
                if step is None:
                    if isinstance(value, list):
                        nxt.extend(value)
                    elif isinstance(value, dict):
                        nxt.extend(value.values())
                elif isinstance(step, int):
                    if isinstance(value, list) and -len(value) <= step < len(value):
                        nxt.append(value[step])
                elif isinstance(value, dict) and step in value:
                    nxt.append(value[step])
            current = nxt
        return current

    def first(self, doc: Any) -> Any:
        """The first value reached, or None."""
        found = self.find(doc)
        return found[0] if found else None


def parse_path(text: str) -> JsonPath:
    """Parse ``text``; ``ValueError`` names the position that is not understood."""
    if not text.startswith("$"):
        raise ValueError(f"a path starts with '$' (like '$.value[*]'), got {text!r}")
    steps: list[str | int | None] = []
    pos = 1
    while pos < len(text):
        m = _STEP.match(text, pos)
        if m is None:
            raise ValueError(
                f"path {text!r}: cannot read from position {pos} ({text[pos:]!r}); supported"
                " are .name, ['name'], [n] and [*]"
            )
        if m.group("name") is not None:
            steps.append(m.group("name"))
        elif m.group("sq") is not None:
            steps.append(m.group("sq"))
        elif m.group("dq") is not None:
            steps.append(m.group("dq"))
        elif m.group("idx") is not None:
            steps.append(int(m.group("idx")))
        else:
            steps.append(None)
        pos = m.end()
    return JsonPath(text, tuple(steps))
