"""Mapping regular expressions with a time bound per value.

A ``replace`` pattern comes from a mapping file and runs on every row. Python's ``re``
backtracks without limit, so a pattern such as ``^(a+)+$`` or ``^(a|aa)+$`` on a
35-character value can run for minutes and stall a sync. Patterns therefore run on the
``regex`` package, which has a ``timeout``: a value that takes longer than
:data:`MATCH_TIMEOUT` seconds raises :class:`~connector.errors.TransformError` with
reason ``pattern_timeout``, so that row is rejected with its line and the rest of the
file goes on. ``regex`` also recognises many such patterns and runs them fast (it
finishes ``^(a+)+$`` at once); the bound covers the others.

After :data:`MAX_TIMEOUTS` timed-out values one pattern rejects every further value at
once: a pattern slow on that many rows is broken, and waiting the bound on each of
100,000 rows would stall the run for hours (the rejected-row cap then refuses the file).

:func:`nested_quantifier` finds the usual cause, a quantified group that holds a
quantifier (``(a+)+``, ``(\\w+\\s?)*``), for a warning when the mapping is loaded.
"""

from __future__ import annotations

from typing import Final

from connector.errors import TransformError

__all__ = [
    "MATCH_TIMEOUT",
    "MAX_TIMEOUTS",
    "PATTERN_TIMEOUT",
    "BoundedPattern",
    "nested_quantifier",
]

#: seconds one value may take in one pattern (a sane pattern needs microseconds)
MATCH_TIMEOUT: Final = 0.1
#: timed-out values after which a pattern rejects every value at once
MAX_TIMEOUTS: Final = 20
#: reason code of a row whose value timed out (as in :class:`connector.extract.RejectReason`)
PATTERN_TIMEOUT: Final = "pattern_timeout"


class BoundedPattern:
    """A compiled pattern whose :meth:`sub` gives up on a value after :data:`MATCH_TIMEOUT`.

    Raises ``ValueError`` at construction for a pattern or replacement that is not valid
    (the mapping loader reports it at its line).
    """

    __slots__ = ("_repl", "_rx", "_timeouts", "name")

    def __init__(self, pattern: str, repl: str, *, name: str = "replace") -> None:
        import regex  # only a mapping with a pattern pays for importing it

        try:
            self._rx = regex.compile(pattern, flags=regex.VERSION0)
        except (regex.error, ValueError, TypeError) as exc:
            raise ValueError(f"{name}.pattern is not a valid regular expression: {exc}") from None
        _check_template(pattern, repl, name)
        self._repl = repl
        self._timeouts = 0
        self.name = name

    def sub(self, value: str) -> str:
        """``value`` with every match replaced; TransformError when it takes too long."""
        if self._timeouts >= MAX_TIMEOUTS:
            raise TransformError(
                f"{self.name}: the pattern timed out on {MAX_TIMEOUTS} values, so it is no"
                " longer run; simplify the pattern (see the warning of connector validate)",
                PATTERN_TIMEOUT,
            )
        try:
            return str(self._rx.sub(self._repl, value, timeout=MATCH_TIMEOUT))
        except TimeoutError:
            self._timeouts += 1
            raise TransformError(
                f"{self.name}: the pattern took over {MATCH_TIMEOUT:g} s on this value"
                " (catastrophic backtracking); simplify the pattern",
                PATTERN_TIMEOUT,
            ) from None


def _check_template(pattern: str, repl: str, name: str) -> None:
    """Refuse a replacement naming a group the pattern lacks, when the mapping is loaded.

    Group references like ``\\1`` are allowed; the replacement is a template, not code.
    ``regex`` checks a template only on a match, so it is expanded on a probe: the
    pattern or nothing, which matches the empty text with the pattern's groups unset.
    """
    import regex

    try:
        probe = regex.compile(f"(?:{pattern})|", flags=regex.VERSION0).match("")
        if probe is not None:
            probe.expand(repl)
    except (regex.error, IndexError, ValueError) as exc:
        raise ValueError(f"{name}.with is not a valid replacement: {exc}") from None


_QUANTIFIERS: Final = frozenset("*+?{")


def _quantifier_at(pattern: str, i: int) -> tuple[bool, int]:
    """Whether a variable repeat (``*``, ``+``, ``{n,}``, ``{n,m}`` with m > n and m > 1)
    starts at ``i``, and the index after it (a lazy or possessive suffix included); an
    exact count like ``{3}`` cannot backtrack and is not one."""
    if i >= len(pattern):
        return False, i
    ch = pattern[i]
    if ch in "*+":
        end = i + 1
    elif ch == "{":
        close = pattern.find("}", i)
        body = pattern[i + 1 : close] if close > 0 else ""
        lo, comma, hi = body.partition(",")
        if close < 0 or not (lo.strip().isdigit() or (comma and not lo.strip())):
            return False, i  # a literal brace
        if comma and hi.strip() and not hi.strip().isdigit():
            return False, i
        least = int(lo) if lo.strip() else 0
        many = bool(comma) and (not hi.strip() or int(hi) > max(least, 1))
        end = close + 1
        if not many:
            return False, end
    else:
        return False, i
    if end < len(pattern) and pattern[end] in "?+":
        end += 1
    return True, end


def nested_quantifier(pattern: str) -> bool:
    """Whether ``pattern`` repeats a group that itself holds a repeat, like ``(a+)+``.

    Such patterns can backtrack exponentially on a value that almost matches. A scan of
    the pattern text (escapes and character classes skipped), not a full parse: it finds
    the common shapes; the time bound of :class:`BoundedPattern` covers the rest.
    """
    stack: list[bool] = []  # per open group: does it hold a repeat?
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "[":
            i = _class_end(pattern, i)
            continue
        if ch == "(":
            stack.append(False)
            i += 1
            continue
        if ch == ")" and stack:
            inner = stack.pop()
            repeats, end = _quantifier_at(pattern, i + 1)
            if repeats and inner:
                return True
            if stack and (inner or repeats):
                stack[-1] = True
            i = max(end, i + 1)
            continue
        if ch in _QUANTIFIERS:
            repeats, end = _quantifier_at(pattern, i)
            if repeats and stack:
                stack[-1] = True
            i = max(end, i + 1)
            continue
        i += 1
    return False


def _class_end(pattern: str, start: int) -> int:
    """The index after the character class opening at ``start``."""
    i = start + 1
    if i < len(pattern) and pattern[i] == "^":
        i += 1
    if i < len(pattern) and pattern[i] == "]":
        i += 1
    while i < len(pattern):
        if pattern[i] == "\\":
            i += 2
            continue
        if pattern[i] == "]":
            return i + 1
        i += 1
    return i
