"""Reading untyped values from JSON documents (run journals, status and sweep records).

Those documents may be written by an older version or edited by hand, so a value of
the wrong type reads as missing instead of failing the invocation.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

__all__ = ["as_int", "as_time"]


def as_int(value: Any) -> int | None:
    """``value`` as an int, or ``None`` when it is missing or not a number."""
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def as_time(text: Any) -> datetime | None:
    """An ISO 8601 timestamp, or ``None`` when it is missing or unreadable."""
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None
