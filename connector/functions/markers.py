"""Markers in ``approvals``: what an operator's blob there asks for, read without I/O.

A marker is ``<run id>`` (approve, or what its JSON body's ``action`` says) or
``<run id>.discard``. Reading one never fails: a marker that is unreadable or not
understood is :attr:`MarkerAction.INVALID`, and nothing is done for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson

__all__ = ["DISCARD_SUFFIX", "MAX_MARKER_BYTES", "ApprovalMarker", "MarkerAction"]

#: A marker in ``approvals`` larger than this is not read; it is filed as invalid (it may
#: hold a discard, so its name alone must not approve the run).
MAX_MARKER_BYTES = 64 * 1024
#: A blob ``<run id>.discard`` in ``approvals`` discards the run (run ids never hold a dot).
DISCARD_SUFFIX = ".discard"
_MAX_BY = 100
_MAX_REASON = 300


class MarkerAction(StrEnum):
    """What an operator's marker in ``approvals`` asks for."""

    APPROVE = "approve"
    DISCARD = "discard"
    RESUME = "resume"
    """Resume a blocked run once its cause is fixed (the timer never retries one)."""
    INVALID = "invalid"  # unreadable or not understood: nothing is done


@dataclass(frozen=True, slots=True)
class ApprovalMarker:
    """A blob in ``approvals``: ``<run id>`` or ``<run id>.discard``.

    ``<run id>`` with no body, or a JSON object body without ``action`` (or with
    ``"action": "approve"``), approves the run; ``"action": "discard"`` discards it;
    ``"action": "resume"`` resumes it when it is blocked.
    ``<run id>.discard`` discards it (a body, when present, is a JSON object that may name
    ``by`` and ``reason``). Anything else (a body that is not a JSON object, an unknown
    ``action``, a ``.discard`` marker saying ``approve``, a body over
    :data:`MAX_MARKER_BYTES`) is :attr:`MarkerAction.INVALID`: doing nothing is the
    cautious reading of a marker that might have meant either.
    """

    name: str  # the blob name inside ``approvals``
    etag: str
    data: bytes  # empty when the marker was not read (``complete`` is then False)
    complete: bool = True

    @property
    def run_id(self) -> str:
        if self.name.endswith(DISCARD_SUFFIX):
            return self.name[: -len(DISCARD_SUFFIX)]
        return self.name

    def _body(self) -> dict[str, Any] | None:
        """The JSON object body ({} when empty); None when it is not one (or unread)."""
        if not self.complete:
            return None
        if not self.data.strip():
            return {}
        try:
            doc = orjson.loads(self.data)
        except orjson.JSONDecodeError:
            return None
        return doc if isinstance(doc, dict) else None

    @property
    def action(self) -> MarkerAction:
        body = self._body()
        if body is None:
            return MarkerAction.INVALID
        named = self.name.endswith(DISCARD_SUFFIX)
        raw = body.get("action")
        if raw is None:
            return MarkerAction.DISCARD if named else MarkerAction.APPROVE
        asked = raw.strip().lower() if isinstance(raw, str) else None
        if asked == MarkerAction.DISCARD:
            return MarkerAction.DISCARD
        if asked == MarkerAction.APPROVE and not named:
            return MarkerAction.APPROVE
        if asked == MarkerAction.RESUME and not named:
            return MarkerAction.RESUME
        return MarkerAction.INVALID

    @property
    def by(self) -> str | None:
        """``by`` from the JSON body (``{"by": "hr-operations"}``), if any."""
        return _short_text((self._body() or {}).get("by"), _MAX_BY)

    @property
    def approved_by(self) -> str | None:
        """Kept for callers of the approval-only marker: same as :attr:`by`."""
        return self.by

    @property
    def reason(self) -> str | None:
        """``reason`` from the JSON body of a discard marker, if any."""
        return _short_text((self._body() or {}).get("reason"), _MAX_REASON)


def _short_text(value: Any, limit: int) -> str | None:
    """One line of at most ``limit`` characters, or None for a missing/blank/non-string."""
    if not isinstance(value, str) or not value.strip():
        return None
    return " ".join(value.split())[:limit]
