"""The ``$filter`` subset the provisioning-logs endpoint understands, per Graph version.

Documented (v1.0 ``List provisioningObjectSummary``): "supports the ``$filter`` (``eq``,
``contains``, ``gt``, ``lt``) … OData query parameters … The filters are all case
sensitive" (values); the v1.0 resource page: ``activityDateTime`` "Supports $filter (eq,
gt, lt)", the id/identity/system properties "Supports $filter (eq, contains)". The v1.0
``provisioningStatusInfo`` page documents **no** filter on ``status``; the beta page does
("Supports $filter (eq, contains)"), as does the deprecated beta ``statusInfo``.

So on ``/v1.0`` only those operators and properties are accepted; ``ge``/``le``/``ne``,
a status filter and anything else is a 400 ``BadRequest`` "Invalid filter clause" (the
reporting service's answer to a bad filter, seen on signIns: assumed to be the same here).
On ``/beta`` the emulator is never stricter than Microsoft's own beta samples (Graph
Explorer tutorial, Postman collection, web client): ``activityDateTime ge …``,
``provisioningStatusInfo/status`` and ``statusInfo/status`` are accepted there.
Property names are matched case-insensitively (the tutorial writes ``jobid``:
assumption). ``or`` and parentheses are a 400, never ignored.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from connector.errors import FilterError

__all__ = ["BETA_ONLY_PROPERTIES", "STRING_PROPERTIES", "Clause", "FilterError", "parse_filter"]


STRING_PROPERTIES: dict[str, str] = {
    "id": "id",
    "jobid": "jobId",
    "cycleid": "cycleId",
    "changeid": "changeId",
    "tenantid": "tenantId",
    "provisioningaction": "provisioningAction",
    "provisioningstatusinfo/status": "status",
    "statusinfo/status": "status",
    "sourceidentity/id": "sourceId",
    "sourceidentity/displayname": "sourceDisplayName",
    "sourceidentity/identitytype": "identityType",
    "targetidentity/id": "targetId",
    "targetidentity/displayname": "targetDisplayName",
    "targetidentity/identitytype": "identityType",
    "serviceprincipal/id": "servicePrincipalId",
    "sourcesystem/displayname": "sourceSystemName",
    "targetsystem/displayname": "targetSystemName",
}
BETA_ONLY_PROPERTIES = frozenset({"provisioningstatusinfo/status", "statusinfo/status"})
"""Filterable on beta only (v1.0 provisioningStatusInfo documents no $filter on status)."""
DATETIME_PROPERTY = "activitydatetime"
_STRING_OPS = ("eq",)
_DATETIME_OPS: dict[str, tuple[str, ...]] = {
    "v1.0": ("eq", "gt", "lt"),
    "beta": ("eq", "gt", "lt", "ge"),  # ge: Microsoft's beta samples (not in the docs)
}

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<str>'(?:[^']|'')*')
      | (?P<lparen>\()
      | (?P<rparen>\))
      | (?P<comma>,)
      | (?P<word>[A-Za-z0-9_./:+\-]+)
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True, slots=True)
class Clause:
    """One comparison: ``field`` is a key of the flat log row, ``op`` an OData operator."""

    field: str
    op: str
    value: str | datetime

    def matches(self, row: Callable[[str], Any]) -> bool:
        actual = row(self.field)
        if self.op == "contains":
            return isinstance(actual, str) and str(self.value) in actual
        if actual is None:
            return False
        if self.op == "eq":
            return bool(actual == self.value)
        if self.op == "gt":
            return bool(actual > self.value)
        if self.op == "ge":
            return bool(actual >= self.value)
        return bool(actual < self.value)


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise FilterError(
                f"cannot read $filter at character {pos + 1}: {text[pos : pos + 20]!r}"
            )
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def _parse_datetime(raw: str) -> datetime:
    text = raw.strip("'")
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise FilterError(
            f"{raw!r} is not an ISO 8601 date-time (e.g. 2026-01-01T00:00:00Z)"
        ) from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


def _string_literal(kind: str, raw: str, prop: str) -> str:
    if kind != "str":
        raise FilterError(f"the value compared with {prop} must be a quoted string, got {raw!r}")
    return raw[1:-1].replace("''", "'")


def parse_filter(text: str, version: str = "v1.0") -> list[Clause]:
    """Parse ``a eq 'x' and b gt 2026-01-01T00:00:00Z and contains(c,'y')`` into clauses.

    ``version`` (``v1.0`` or ``beta``) decides which operators and properties are allowed.
    """
    tokens = _tokens(text)
    if not tokens:
        raise FilterError("$filter is empty")
    clauses: list[Clause] = []
    i = 0
    while True:
        if i < len(tokens) and tokens[i] == ("word", "contains"):
            clause, i = _parse_contains(tokens, i, version)
        else:
            clause, i = _parse_comparison(tokens, i, version)
        clauses.append(clause)
        if i == len(tokens):
            return clauses
        kind, word = tokens[i]
        if kind == "word" and word == "and":
            i += 1
            continue
        if kind == "word" and word == "or":
            raise FilterError("'or' is not supported in $filter; send one query per alternative")
        raise FilterError(f"expected 'and' after a comparison, got {word!r}")


def _property(raw: str, version: str) -> tuple[str, bool]:
    key = raw.lower()
    if key == DATETIME_PROPERTY:
        return "activityDateTime", True
    field = STRING_PROPERTIES.get(key)
    if field is not None and key in BETA_ONLY_PROPERTIES and version != "beta":
        raise FilterError(
            f"property {raw!r} cannot be filtered on v1.0 (documented on beta only);"
            " filter the entries after reading them"
        )
    if field is None:
        allowed = {k for k in STRING_PROPERTIES if k != "statusinfo/status"}
        if version != "beta":
            allowed -= BETA_ONLY_PROPERTIES
        raise FilterError(
            f"property {raw!r} cannot be filtered here; supported: activityDateTime, "
            + ", ".join(sorted(allowed))
        )
    return field, False


def _parse_comparison(tokens: list[tuple[str, str]], i: int, version: str) -> tuple[Clause, int]:
    if i + 2 >= len(tokens):
        raise FilterError(
            "incomplete comparison at the end of $filter (expected: property op value)"
        )
    (k1, prop_raw), (k2, op_raw), (k3, value_raw) = tokens[i], tokens[i + 1], tokens[i + 2]
    if k1 == "word" and k2 == "lparen":
        raise FilterError(
            f"function {prop_raw!r} is not supported in $filter; use contains(property,'text')"
        )
    if k1 != "word":
        raise FilterError(
            f"expected a property name, got {prop_raw!r} (parentheses are not supported)"
        )
    field, is_dt = _property(prop_raw, version)
    op = op_raw.lower() if k2 == "word" else ""
    allowed = _DATETIME_OPS.get(version, _DATETIME_OPS["v1.0"]) if is_dt else _STRING_OPS
    if op not in allowed:
        raise FilterError(
            f"operator {op_raw!r} is not supported for {prop_raw}; use {', '.join(allowed)}"
        )
    value: str | datetime
    if is_dt:
        if k3 not in ("word", "str"):
            raise FilterError(f"expected a date-time after {prop_raw} {op_raw}")
        value = _parse_datetime(value_raw)
    else:
        value = _string_literal(k3, value_raw, prop_raw)
    return Clause(field, op, value), i + 3


def _parse_contains(tokens: list[tuple[str, str]], i: int, version: str) -> tuple[Clause, int]:
    shape = [k for k, _ in tokens[i : i + 6]]
    if shape != ["word", "lparen", "word", "comma", "str", "rparen"]:
        raise FilterError("contains must be written contains(property,'text')")
    prop_raw = tokens[i + 2][1]
    field, is_dt = _property(prop_raw, version)
    if is_dt:
        raise FilterError("contains cannot be used on activityDateTime")
    return Clause(field, "contains", _string_literal("str", tokens[i + 4][1], prop_raw)), i + 6
