"""Database and JSON values → the strings a CSV export of the same data would hold.

One set of rules, so a mapping written for a CSV export works unchanged on a pulled
snapshot: NULL → empty; booleans ``true``/``false``; integers as digits; decimals as
written, never in exponent form (``12.50`` stays ``12.50``); floats by their shortest
round-trip form, an integral float without ``.0``; dates, times and datetimes in ISO 8601
(a timezone-aware datetime keeps its offset; microseconds only when non-zero); UUIDs in
their canonical form; JSON objects and arrays (SQL ``json`` columns) as compact JSON.
Bytes and non-finite floats have no faithful text:
:class:`~connector.errors.UnconvertibleValueError` names the column (never the value).
"""

from __future__ import annotations

import math
from datetime import date, datetime, time
from decimal import Decimal
from uuid import UUID

import orjson

from connector.errors import UnconvertibleValueError

__all__ = ["to_text"]


def _float_text(value: float, column: str) -> str:
    if not math.isfinite(value):
        raise UnconvertibleValueError(column, "non-finite numbers (NaN or infinity)")
    if value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return repr(value)


def _decimal_text(value: Decimal, column: str) -> str:
    if not value.is_finite():
        raise UnconvertibleValueError(column, "non-finite numbers (NaN or infinity)")
    return format(value, "f")


def to_text(value: object, column: str) -> str:
    """``value`` as text by the module's rules; ``column`` names it in errors."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float_text(value, column)
    if isinstance(value, Decimal):
        return _decimal_text(value, column)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        raise UnconvertibleValueError(column, "binary")
    if isinstance(value, dict | list | tuple):
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    return str(value)
