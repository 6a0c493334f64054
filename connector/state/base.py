"""What the sync engine and the state store share: record types, the held lock, key rules.

The store itself is :class:`connector.state.store.StateStore`; these are the values it
takes and returns (a source's :class:`RecordIndex` of :class:`RecordEntry`), the
:class:`SourceLock` a run holds, and the rules that keep source names and document keys
safe as path segments and blob names.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from connector.errors import StateError

__all__ = [
    "DOCUMENT_KEY_PATTERN",
    "FINGERPRINT_SIZE",
    "SOURCE_NAME_PATTERN",
    "Outcome",
    "PayloadUpdates",
    "RecordEntry",
    "RecordIndex",
    "SourceLock",
    "check_document_key",
    "check_source_name",
]

PayloadUpdates = (
    Mapping[str, Mapping[str, Any]]
    | Mapping[str, Mapping[str, Any] | bytes]
    | Iterable[tuple[str, Mapping[str, Any] | bytes]]
)
"""Payloads to store: externalId → payload, or a stream of (externalId, payload) pairs;
a payload may be given as its JSON bytes."""

FINGERPRINT_SIZE = 16
"""Bytes in a record fingerprint (BLAKE2b-128 of the canonical mapped record)."""

SOURCE_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
"""Source names become path segments and blob name prefixes, so they stay plain."""

DOCUMENT_KEY_PATTERN = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$")
"""Document keys and artifact paths: ``/``-separated segments, no ``..``, no leading ``/``."""


class Outcome(StrEnum):
    """What we last know about a record we sent (from the upload, then from the logs)."""

    SENT = "sent"
    """Accepted by bulkUpload (202); no provisioning-log entry matched yet."""
    CREATED = "created"
    UPDATED = "updated"
    DISABLED = "disabled"
    SKIPPED = "skipped"
    FAILED = "failed"
    UNCONFIRMED = "unconfirmed"
    """No log entry appeared before the reconciliation deadline."""


@dataclass(slots=True)
class RecordEntry:
    """What the engine remembers about one externalId of one source.

    ``fingerprint`` is the 16-byte hash of the mapped record as last *accepted* by the
    service (see :func:`connector.sync.delta.fingerprint`); ``active`` whether that record
    was sent as active; ``sent_at`` Unix seconds (UTC) of the last send, kept as an
    int rather than a datetime to keep a million entries small.
    """

    fingerprint: bytes
    active: bool = True
    outcome: str = Outcome.SENT.value
    error_code: str | None = None
    sent_at: int | None = None
    run_id: str | None = None

    @property
    def sent_time(self) -> datetime | None:
        """``sent_at`` as an aware UTC datetime."""
        return None if self.sent_at is None else datetime.fromtimestamp(self.sent_at, UTC)


@dataclass(slots=True)
class RecordIndex:
    """A source's record index as loaded from a store.

    ``version`` identifies the committed state it was read from (``None`` when the
    source has never been saved); ``StateStore.save_records`` refuses to commit over a
    different version. Mutate ``entries`` in place, then save.
    """

    source: str
    entries: dict[str, RecordEntry] = field(default_factory=dict)
    version: str | None = None

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, external_id: object) -> bool:
        return external_id in self.entries

    def get(self, external_id: str) -> RecordEntry | None:
        return self.entries.get(external_id)

    def active_count(self) -> int:
        """Records last sent as active: the population the guard compares against."""
        return sum(1 for e in self.entries.values() if e.active)


class SourceLock(Protocol):
    """A held per-source lock. Released when its context manager exits."""

    @property
    def source(self) -> str: ...

    @property
    def owner(self) -> str: ...

    @property
    def lost(self) -> bool:
        """True once the lock could not be renewed or was taken over: stop writing."""
        ...

    def renew(self) -> None:
        """Extend the lock now (a background heartbeat also renews it while held)."""
        ...


def check_source_name(source: str) -> str:
    """``source`` if it is a safe name, else :class:`StateError` saying the rule."""
    if not SOURCE_NAME_PATTERN.fullmatch(source):
        raise StateError(
            f"source name {source!r} is not allowed: use 1-64 letters, digits, '-' or '_',"
            " starting with a letter or digit"
        )
    return source


def check_document_key(key: str) -> str:
    """``key`` if it is a safe document key / artifact path, else :class:`StateError`."""
    if not DOCUMENT_KEY_PATTERN.fullmatch(key) or ".." in key.split("/"):
        raise StateError(
            f"key {key!r} is not allowed: use '/'-separated segments of letters, digits,"
            " '.', '-' or '_', not starting with '/' or '.'"
        )
    return key
