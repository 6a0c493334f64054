"""The fixed set of value transforms a mapping may chain. Nothing here evaluates code.

Each transform is built once from its YAML argument (bad arguments raise ``ValueError``
with a message the mapping loader places at the right line) and then applied per row
to a value that is a ``str``, ``bool``, ``int``, a ``list[str]`` (after ``split``) or
``None`` (empty). Only ``default`` sees ``None``; every other transform passes it on.

A transform that cannot handle a row's value raises :class:`TransformError`; the
row is rejected with its line and the rest of the extract goes on. Messages describe
the rule, never the value, so they are safe to log.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from connector.errors import TransformError
from connector.patterns import MATCH_TIMEOUT, BoundedPattern, nested_quantifier

__all__ = [
    "TRANSFORM_NAMES",
    "Transform",
    "make_transform",
    "strip_diacritics",
]

Value = Any  # str | bool | int | float | list[str] | None

_CACHE_LIMIT: Final = 8192
_MAX_PATTERN: Final = 500


@dataclass(frozen=True, slots=True)
class Transform:
    """One compiled transform: ``fn`` maps a value; ``accepts_none`` if it handles empties.

    ``on_text``, when set, gives the same result (or raises the same error) as ``fn`` for a
    non-empty ``str``, without the type check: the mapping compiler chains these directly
    when a column feeds the transforms. ``keeps_text``: ``on_text`` turns a non-empty
    ``str`` into a non-empty ``str``, so the next transform needs no emptiness check.
    ``warning``: a risk in the argument the mapping loader reports at the transform's line.
    ``memo``: results ``on_text`` gave before (a text → a result that is not None); the
    record builder looks a value up there first and calls ``on_text`` only when it is not.
    """

    name: str
    fn: Callable[[Value], Value]
    accepts_none: bool = False
    produces_bool: bool = False
    on_text: Callable[[str], Value] | None = None
    keeps_text: bool = False
    warning: str | None = None
    memo: dict[str, Value] | None = None


_FOLD: Final = {
    "ß": "ss",
    "ẞ": "SS",
    "æ": "ae",
    "Æ": "AE",
    "œ": "oe",
    "Œ": "OE",
    "ø": "o",
    "Ø": "O",
    "đ": "d",
    "Đ": "D",
    "ð": "d",
    "Ð": "D",
    "ł": "l",
    "Ł": "L",
    "þ": "th",
    "Þ": "Th",
    "ı": "i",
    "ħ": "h",
    "Ħ": "H",
}
_FOLD_TABLE: Final = str.maketrans(_FOLD)


def strip_diacritics(text: str) -> str:
    """Remove accents and fold letters without a decomposition (ß→ss, ø→o, ł→l) for UPNs."""
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFKD", text.translate(_FOLD_TABLE))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _cached(fn: Callable[[str], Value]) -> Callable[[str], Value]:
    """Bounded per-transform memo: HR columns repeat values (dates, names) a lot."""
    cache: dict[str, Value] = {}

    def run(value: str) -> Value:
        try:
            return cache[value]
        except KeyError:
            pass
        out = fn(value)
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        cache[value] = out
        return out

    return run


def _need_str(name: str, value: Value) -> str:
    if isinstance(value, str):
        return value
    raise TransformError(f"{name} needs text, got {type(value).__name__}")


def _text_fn(name: str, op: Callable[[str], str]) -> Callable[[Value], Value]:
    def run(value: Value) -> Value:
        if value.__class__ is str:  # the common case, without a second call
            return op(value)
        return op(_need_str(name, value))

    return run


def _scalar(arg: Any, what: str) -> str | bool | int | float:
    if isinstance(arg, str | bool | int | float):
        return arg
    raise ValueError(f"{what} must be a text, number or boolean")


def _key(value: Value) -> str:
    """Lookup/equals compare on text: YAML keys like ``true`` or ``1`` match "true"/"1"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


#: a lookup's checked argument: the table (keys as text, casefolded with ``ignore_case``),
#: ``ignore_case``, whether it has a default, the default
_LookupTable = tuple[dict[str, Any], bool, bool, Any]


def _lookup_table(arg: Any) -> _LookupTable:
    """The table, its case setting and default from a lookup's argument, checked."""
    if not isinstance(arg, dict) or not arg:
        raise ValueError("lookup needs a non-empty table, e.g. {Active: true, Inactive: false}")
    structured = "table" in arg and isinstance(arg["table"], dict)
    table_arg: dict[Any, Any] = arg["table"] if structured else arg
    extra = set(arg) - {"table", "default", "ignore_case"} if structured else set()
    if extra:
        raise ValueError(f"lookup has unknown keys: {', '.join(sorted(map(str, extra)))}")
    ignore_case = bool(arg.get("ignore_case", False)) if structured else False
    has_default = structured and "default" in arg
    default = arg.get("default") if structured else None
    if has_default and default is not None:
        default = _scalar(default, "lookup default")
    table: dict[str, Any] = {}
    for k, v in table_arg.items():
        if v is not None:
            _scalar(v, f"lookup value for {k!r}")
        key = _key(k)
        table[key.casefold() if ignore_case else key] = v
    if not table:
        raise ValueError("lookup table is empty")
    return table, ignore_case, has_default, default


def _lookup_missing(has_default: bool, default: Any) -> Callable[[], Value]:
    """The answer for a value not in the table: the default, or a rejection."""

    def missing() -> Value:
        if has_default:
            return default
        raise TransformError(
            "value is not in the lookup table (add it, or set lookup.default)",
            "invalid_value",
        )

    return missing


_LookupFns = tuple[Callable[[str], Value], Callable[[Value], Value], dict[str, Value]]


def _exact_lookup(table: dict[str, Any], missing: Callable[[], Value]) -> _LookupFns:
    """``on_text``, ``fn`` and memo of a case-sensitive lookup: the table is its own memo."""

    def on_text(value: str) -> Value:
        try:
            return table[value]
        except KeyError:
            pass
        return missing()

    def run(value: Value) -> Value:
        key = value if value.__class__ is str else _key(value)
        try:
            return table[key]
        except KeyError:
            pass
        return missing()

    return on_text, run, table


def _case_folding_lookup(table: dict[str, Any], missing: Callable[[], Value]) -> _LookupFns:
    """``on_text``, ``fn`` and memo of an ``ignore_case`` lookup: the memo holds the values
    met, as they are spelled."""
    memo: dict[str, Value] = {}

    def on_text(value: str) -> Value:
        try:
            out = table[value.casefold()]
        except KeyError:
            return missing()
        if out is not None and len(memo) < _CACHE_LIMIT:
            memo[value] = out
        return out

    def run(value: Value) -> Value:
        key = value if value.__class__ is str else _key(value)
        try:
            return table[key.casefold()]
        except KeyError:
            pass
        return missing()

    return on_text, run, memo


def _lookup(arg: Any) -> Transform:
    table, ignore_case, has_default, default = _lookup_table(arg)
    all_bool = all(isinstance(v, bool) for v in table.values()) and (
        not has_default or isinstance(default, bool)
    )
    # one closure per case setting, so a row pays no flag test
    lookup = _case_folding_lookup if ignore_case else _exact_lookup
    on_text, run, memo = lookup(table, _lookup_missing(has_default, default))
    return Transform("lookup", run, produces_bool=all_bool, on_text=on_text, memo=memo)


def _equals(arg: Any) -> Transform:
    options = arg if isinstance(arg, list) else [arg]
    if not options:
        raise ValueError("equals needs a value or a list of values")
    wanted = frozenset(_key(_scalar(o, "equals value")) for o in options)

    def run(value: Value) -> Value:
        return (value if value.__class__ is str else _key(value)) in wanted

    return Transform("equals", run, produces_bool=True, on_text=wanted.__contains__)


def _parse_tz(name: str) -> tzinfo:
    if name in ("Z", "UTC", "utc"):
        return UTC
    m = re.fullmatch(r"([+-])(\d{2}):?(\d{2})", name)
    if m:
        sign = 1 if m.group(1) == "+" else -1
        hours, minutes = int(m.group(2)), int(m.group(3))
        if hours > 23 or minutes > 59:
            raise ValueError(f"timezone offset {name!r} is out of range")
        return timezone(sign * timedelta(hours=hours, minutes=minutes))
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown timezone {name!r}: use an IANA name (Europe/Paris), an offset (+02:00) or UTC"
        ) from None


_ALLOWED_DIRECTIVES: Final = frozenset("dmyYHMSfbBpzjIaA%")


#: a date transform's checked argument: its formats, timezone, and whether it outputs a date
_DateFormat = tuple[tuple[str, ...], tzinfo, bool]


def _date_format(arg: Any) -> _DateFormat:
    """The formats, timezone and output of a date transform's argument, checked."""
    if arg is None:
        arg = {}
    if isinstance(arg, str):
        arg = {"formats": [arg]}
    if not isinstance(arg, dict):
        raise ValueError("date needs a format string or {formats, timezone, output}")
    extra = set(arg) - {"formats", "timezone", "output"}
    if extra:
        raise ValueError(f"date has unknown keys: {', '.join(sorted(map(str, extra)))}")
    formats = arg.get("formats", ["%Y-%m-%d"])
    if isinstance(formats, str):
        formats = [formats]
    if not isinstance(formats, list) or not formats or not all(isinstance(f, str) for f in formats):
        raise ValueError("date.formats must be a list of strptime formats, e.g. ['%Y-%m-%d']")
    for f in formats:
        bad = {d for d in re.findall(r"%(.)", f) if d not in _ALLOWED_DIRECTIVES}
        if bad:
            raise ValueError(f"date format {f!r} uses unsupported directives: {sorted(bad)}")
    tz = _parse_tz(str(arg.get("timezone", "UTC")))
    output = arg.get("output", "datetime")
    if output not in ("datetime", "date"):
        raise ValueError("date.output must be 'datetime' (ISO 8601 with offset) or 'date'")
    return tuple(formats), tz, output == "date"


def _date_parser(fmts: tuple[str, ...], tz: tzinfo, as_date: bool) -> Callable[[str], Value]:
    """Text → its ISO 8601 form by the first format that reads it, else ``_BAD_DATE``."""

    def parse(text: str) -> Value:
        parsed: datetime | None = None
        for fmt in fmts:
            try:
                if fmt == "%Y-%m-%d" and len(text) == 10:
                    parsed = datetime.combine(date.fromisoformat(text), datetime.min.time())
                else:
                    parsed = datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
        if parsed is None:
            return _BAD_DATE
        if as_date:
            return parsed.date().isoformat()
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=tz)
        return parsed.isoformat()

    return parse


def _date(arg: Any) -> Transform:
    fmts, tz, as_date = _date_format(arg)
    parse = _date_parser(fmts, tz, as_date)
    seen: dict[str, Value] = {}  # HR columns repeat dates a lot: valid ones are kept
    allowed = ", ".join(fmts)

    def on_text(value: str) -> Value:
        out = seen.get(value)
        if out is None:
            out = parse(value)
            if out is _BAD_DATE:
                raise TransformError(f"not a valid date in the formats {allowed}", "invalid_value")
            if len(seen) >= _CACHE_LIMIT:
                seen.clear()
            seen[value] = out
        return out

    def run(value: Value) -> Value:
        return on_text(_need_str("date", value))

    return Transform("date", run, on_text=on_text, memo=seen)


_BAD_DATE: Final = object()


def _split(arg: Any) -> Transform:
    if isinstance(arg, str):
        arg = {"separator": arg}
    if (
        not isinstance(arg, dict)
        or not isinstance(arg.get("separator"), str)
        or not arg.get("separator")
    ):
        raise ValueError("split needs a separator: split: ';' or {separator: ';', index: 0}")
    extra = set(arg) - {"separator", "index"}
    if extra:
        raise ValueError(f"split has unknown keys: {', '.join(sorted(map(str, extra)))}")
    sep: str = arg["separator"]
    index = arg.get("index")
    if index is not None and (isinstance(index, bool) or not isinstance(index, int)):
        raise ValueError("split.index must be an integer")

    def run(value: Value) -> Value:
        parts = [p.strip() for p in _need_str("split", value).split(sep)]
        if index is None:
            return [p for p in parts if p]
        try:
            return parts[index] or None
        except IndexError:
            return None

    return Transform("split", run)


def _join(arg: Any) -> Transform:
    if not isinstance(arg, str):
        raise ValueError("join needs a separator text, e.g. join: ' '")

    def run(value: Value) -> Value:
        if isinstance(value, list):
            return arg.join(str(v) for v in value if v not in (None, "")) or None
        return value

    return Transform("join", run)


def _replace(arg: Any) -> Transform:
    if not isinstance(arg, dict) or not isinstance(arg.get("pattern"), str):
        raise ValueError("replace needs {pattern: <regex>, with: <text>}")
    extra = set(arg) - {"pattern", "with"}
    if extra:
        raise ValueError(f"replace has unknown keys: {', '.join(sorted(map(str, extra)))}")
    pattern: str = arg["pattern"]
    if len(pattern) > _MAX_PATTERN:
        raise ValueError(f"replace.pattern is longer than {_MAX_PATTERN} characters")
    repl = arg.get("with", "")
    if not isinstance(repl, str):
        raise ValueError("replace.with must be text")
    rx = BoundedPattern(pattern, repl)
    warning = None
    if nested_quantifier(pattern):
        warning = (
            "replace.pattern repeats a group that holds a repeat (like (a+)+): it can"
            f" backtrack for a very long time; each value is cut off after {MATCH_TIMEOUT:g} s"
            " and its row rejected. Rewrite it without the nested repeat"
        )

    def on_text(value: str) -> Value:
        return rx.sub(value)

    def run(value: Value) -> Value:
        return rx.sub(_need_str("replace", value))

    return Transform("replace", run, on_text=on_text, warning=warning)


def _truncate(arg: Any) -> Transform:
    if isinstance(arg, bool) or not isinstance(arg, int) or arg < 1:
        raise ValueError("truncate needs a positive number of characters")

    def on_text(value: str) -> Value:
        return value[:arg]

    def run(value: Value) -> Value:
        return _need_str("truncate", value)[:arg]

    # arg >= 1, so a non-empty text stays non-empty
    return Transform("truncate", run, on_text=on_text, keeps_text=True)


def _default(arg: Any) -> Transform:
    const = _scalar(arg, "default")

    def run(value: Value) -> Value:
        return const if value is None or value == "" else value

    return Transform("default", run, accepts_none=True, produces_bool=isinstance(const, bool))


def _no_arg(
    name: str, op: Callable[[str], str], cache: bool = False, keeps_text: bool = False
) -> Callable[[Any], Transform]:
    fn = _cached(op) if cache else op

    def make(arg: Any) -> Transform:
        if arg is not None:
            raise ValueError(f"{name} takes no argument; write it as a plain name")
        return Transform(name, _text_fn(name, fn), on_text=fn, keeps_text=keeps_text)

    return make


_FACTORIES: Final[dict[str, Callable[[Any], Transform]]] = {
    "trim": _no_arg("trim", str.strip),
    # Unicode case mappings never map a character to nothing: non-empty stays non-empty
    "lower": _no_arg("lower", str.lower, keeps_text=True),
    "upper": _no_arg("upper", str.upper, keeps_text=True),
    "title": _no_arg("title", str.title, keeps_text=True),
    "strip_diacritics": _no_arg("strip_diacritics", strip_diacritics, cache=True),
    "lookup": _lookup,
    "equals": _equals,
    "date": _date,
    "split": _split,
    "join": _join,
    "replace": _replace,
    "truncate": _truncate,
    "default": _default,
}

TRANSFORM_NAMES: Final = tuple(sorted(_FACTORIES))


def make_transform(name: str, arg: Any = None) -> Transform:
    """Build one transform; ``ValueError`` for an unknown name or a bad argument."""
    try:
        factory = _FACTORIES[name]
    except KeyError:
        raise ValueError(
            f"unknown transform {name!r}; known: {', '.join(TRANSFORM_NAMES)}"
        ) from None
    return factory(arg)
