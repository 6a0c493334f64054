"""Runs: their states, the journal document and how it is stored.

One extract of one source becomes one **run** (``<source>-<20 hex of the file's SHA-256>``,
plus ``-<extract time>`` for bytes equal to an older run's file delivered as a later extract;
automatic and operator re-sends are child runs ``<run>-retryN`` and ``<source>-refsN``).
Its journal is a JSON document in the state store at ``runs/<source>/<run id>``, written
with ETag-conditional puts while the source's lock is held. Other documents kept per
source: ``sources/<source>`` (last applied extract), ``approvals/<run id>`` (approval
markers), ``attempted/<source>`` (refused fingerprints), ``reference-resends/<source>``
(automatic re-sends for manager references). The engine (:mod:`connector.pipeline`)
moves runs between the states; this module only models and stores them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from connector.errors import (
    BucketFullError,
    ConcurrentRunError,
    LockLostError,
    QuotaExhaustedError,
    ThrottledError,
)
from connector.state.base import SourceLock
from connector.state.store import StateStore

__all__ = [
    "DISCARDABLE_STATES",
    "MAX_REJECTED_IN_JOURNAL",
    "OPEN_STATES",
    "REFERENCES_KIND",
    "Journal",
    "PassResult",
    "ProgressCallback",
    "RunState",
    "RunSummary",
    "WaitingReason",
    "acked_indices",
    "approval_key",
    "attempted_key",
    "check_lock",
    "discard_key",
    "from_iso",
    "later_copy_run_id",
    "load_journal",
    "lock_lost",
    "loggable",
    "make_run_id",
    "records_key",
    "resends_key",
    "run_key",
    "save_journal",
    "source_key",
    "to_iso",
    "waiting_reason_from_doc",
    "waiting_reason_of",
]


class RunState(StrEnum):
    """Journal states of a run."""

    RECEIVED = "received"
    PLANNED = "planned"
    HELD = "held"
    UPLOADING = "uploading"
    UPLOADED = "uploaded"
    RECONCILING = "reconciling"
    DONE = "done"
    FAILED = "failed"
    BLOCKED = "blocked"
    """Stopped by an error retrying cannot fix (401 after refresh, 403, 404, unsafe or
    missing credentials/endpoint); an operator resumes it once the cause is fixed."""
    SUPERSEDED = "superseded"
    DISCARDED = "discarded"


OPEN_STATES = frozenset(
    {
        RunState.RECEIVED,
        RunState.PLANNED,
        RunState.HELD,
        RunState.UPLOADING,
        RunState.UPLOADED,
        RunState.RECONCILING,
        RunState.BLOCKED,
    }
)


REFERENCES_KIND = "references"
"""Journal ``kind`` (and plan action) of an automatic re-send for manager references."""

MAX_REJECTED_IN_JOURNAL = 1000
"""Rejected rows listed in a refused run's journal (the rest are counted)."""


class WaitingReason(StrEnum):
    """Why a run is left ``uploading`` for a later call to continue (structured, so callers
    never have to search error text)."""

    QUOTA = "quota"
    """The daily call budget (or the service's quota, a very long Retry-After) is spent."""
    BUCKET_FULL = "bucket_full"
    """500 "bucket full": the job's queue pushes back; minutes, not seconds."""
    THROTTLED = "throttled"
    """429 persisted after the retries the policy allows."""
    TRANSIENT = "transient"
    """5xx, timeouts or dropped connections persisted after the retries allowed."""
    LOCK_LOST = "lock_lost"
    """This process lost the source's lock mid-run and stopped; another holder goes on."""
    QUEUED = "queued"
    """Behind an older run of the same source that has not finished uploading."""


def waiting_reason_of(exc: BaseException) -> WaitingReason:
    """The waiting reason for an error that deferred an upload."""
    if isinstance(exc, QuotaExhaustedError):
        return WaitingReason.QUOTA
    if isinstance(exc, BucketFullError):
        return WaitingReason.BUCKET_FULL
    if isinstance(exc, ThrottledError):
        return WaitingReason.THROTTLED
    if isinstance(exc, ConcurrentRunError):
        return WaitingReason.LOCK_LOST
    return WaitingReason.TRANSIENT


ProgressCallback = Callable[[int, int], None]


@dataclass(slots=True)
class RunSummary:
    """What a caller (CLI, Functions) needs to know about a run after a call."""

    run_id: str
    source: str
    file_name: str
    state: str
    planned: dict[str, int] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)
    outcome_labels: dict[str, int] = field(default_factory=dict)
    """``outcomes`` as people read them: a record skipped only for its manager reference
    counts as ``created (manager unresolved)`` (see :func:`connector.reconcile.outcome_label`)."""
    duplicate: bool = False
    dry_run: bool = False
    held_reason: str | None = None
    failed_reason: str | None = None
    waiting: str | None = None
    """The note of the error that left the run waiting (text for people)."""
    waiting_reason: WaitingReason | None = None
    """Why the run is waiting, for programs (None unless ``uploading`` and waiting)."""
    job_health: str | None = None
    batches_total: int = 0
    batches_done: int = 0
    reports: dict[str, str] = field(default_factory=dict)
    received_at: str | None = None


class PassResult(list[RunSummary]):
    """The runs a pass over every source touched, plus the sources it skipped.

    ``skipped`` maps a source name to why it was not handled in this pass (its lock is
    held by another run: that run, or the next pass, picks the work up). A plain list
    otherwise, so callers iterating the summaries keep working.
    """

    def __init__(
        self,
        items: Iterable[RunSummary] = (),
        skipped: Mapping[str, str] | None = None,
        *,
        blocked: Mapping[str, str] | None = None,
        errors: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(items)
        self.skipped: dict[str, str] = dict(skipped or {})
        self.blocked: dict[str, str] = dict(blocked or {})
        """Delta sources whose queue is stopped by a blocked run: source → that run and why
        (later runs of the source stay queued until it is resumed or discarded)."""
        self.errors: dict[str, str] = dict(errors or {})
        """Sources this pass could not handle because of an error (source → the error,
        personal data removed); the other sources were still handled."""


def make_run_id(source: str, content_sha256: str) -> str:
    """``<source>-<first 20 hex of the file's SHA-256>``: same file, same run."""
    return f"{source}-{content_sha256[:20]}"


def later_copy_run_id(run_id: str, extract_at: datetime) -> str:
    """The run of a file whose bytes match an earlier run's but whose extract is later
    (``<run id>-<extract time, UTC, to the second>``): day 3 may legitimately equal day 1
    after day 2 changed things, and must be applied, not taken for a redelivery."""
    return f"{run_id}-{extract_at.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}"


_EMAILISH = re.compile(r"[^\s@'\"<>(),;:]+@[^\s@'\"<>(),;:]+")


def loggable(exc: BaseException, limit: int = 200) -> str:
    """An error for a log line: its type, its code if any, and its message with anything
    that looks like an email address or UPN removed (a service's message can echo one)."""
    code = getattr(exc, "code", None)
    head = type(exc).__name__ + (f"[{code}]" if code else "")
    text = " ".join(_EMAILISH.sub("<redacted>", str(exc)).split())
    return f"{head}: {text[:limit]}" if text else head


def to_iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def from_iso(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


# -- the journal ----------------------------------------------------------------------------


@dataclass(slots=True)
class Journal:
    """A run's journal document and the etag it was read at."""

    doc: dict[str, Any]
    etag: str | None = None
    lock: SourceLock | None = None
    """The source lock held while this journal is being changed (checked before writes)."""

    @property
    def run_id(self) -> str:
        return str(self.doc["runId"])

    @property
    def source(self) -> str:
        return str(self.doc["source"])

    @property
    def state(self) -> RunState:
        return RunState(self.doc["state"])

    @property
    def key(self) -> str:
        return run_key(self.source, self.run_id)

    @property
    def batches(self) -> list[dict[str, Any]]:
        return self.doc.setdefault("batches", [])  # type: ignore[no-any-return]


def run_key(source: str, run_id: str) -> str:
    return f"runs/{source}/{run_id}"


def source_key(source: str) -> str:
    return f"sources/{source}"


def approval_key(run_id: str) -> str:
    return f"approvals/{run_id}"


def discard_key(run_id: str) -> str:
    """A discard marker: the next pass discards the run (``{"by": …}`` optional)."""
    return f"discards/{run_id}"


DISCARDABLE_STATES = frozenset(
    {RunState.RECEIVED, RunState.PLANNED, RunState.HELD, RunState.UPLOADING, RunState.BLOCKED}
)
"""States a run can be discarded from: it has not finished sending."""


def records_key(source: str, run_id: str) -> str:
    """Artifact with every accepted mapped record of a run (``line, externalId, data``),
    kept when the run may have to be planned again against a newer record index."""
    return f"{source}/{run_id}/records.jsonl.gz"


def attempted_key(source: str) -> str:
    return f"attempted/{source}"


def resends_key(source: str) -> str:
    """Automatic re-sends per record for unresolved manager references."""
    return f"reference-resends/{source}"


def acked_indices(journal: Journal) -> set[int]:
    """Batch indices acknowledged so far (journals before the window kept them in order)."""
    return {int(b.get("i", k)) for k, b in enumerate(journal.batches)}


def lock_lost(journal: Journal) -> bool:
    return bool(journal.lock is not None and getattr(journal.lock, "lost", False))


def check_lock(journal: Journal) -> None:
    if lock_lost(journal):
        raise LockLostError(
            f"run {journal.run_id}: the lock on source {journal.source!r} was lost (renewal"
            " failed or another run took it over); stopping without writing — the holder"
            " continues from the journal"
        )


def waiting_reason_from_doc(doc: Mapping[str, Any]) -> WaitingReason | None:
    value = doc.get("waitingReason")
    if value:
        try:
            return WaitingReason(value)
        except ValueError:
            return WaitingReason.TRANSIENT
    note = doc.get("waiting")
    if not note:
        return None
    # Journals written before the reason was stored: the note starts with the error type.
    kind = str(note).split(":", 1)[0]
    return {
        "QuotaExhaustedError": WaitingReason.QUOTA,
        "BucketFullError": WaitingReason.BUCKET_FULL,
        "ThrottledError": WaitingReason.THROTTLED,
    }.get(kind, WaitingReason.TRANSIENT)


def load_journal(store: StateStore, source: str, run_id: str) -> Journal | None:
    """The run's journal and its etag, None when the run does not exist."""
    got = store.get_document(run_key(source, run_id))
    return None if got is None else Journal(got[0], got[1])


def save_journal(store: StateStore, journal: Journal, now: datetime) -> None:
    """Write the journal (small: counters and batch metadata, never per-record data),
    only while the source's lock is still ours; the new etag is kept on ``journal``."""
    check_lock(journal)
    journal.doc["updatedAt"] = to_iso(now)
    if journal.etag is None:
        journal.etag = store.put_document(journal.key, journal.doc, if_none_match=True)
    else:
        journal.etag = store.put_document(journal.key, journal.doc, if_match=journal.etag)
