"""Why a run is left ``uploading`` for a later call: the structured waiting reasons.

A deferred upload is noted on its journal with a :class:`WaitingReason`, so callers,
reports and telemetry never search error text. Pure: the errors that defer an upload
map to a reason here, and so do the notes of journals written before the reason was
stored.
"""

from __future__ import annotations

from enum import StrEnum

from connector.errors import (
    BucketFullError,
    ConcurrentRunError,
    QuotaExhaustedError,
    ThrottledError,
)

__all__ = ["WaitingReason", "stored_waiting_reason", "waiting_reason_of"]


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
    JOB_NOT_READY = "job_not_ready"
    """The provisioning job would not process an upload (paused, quarantined, not
    configured or not started, its on-premises agent inactive): nothing was sent; a later
    pass checks again (not before ``waitingUntil`` when the service named a time)."""


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


def stored_waiting_reason(value: object, note: object) -> WaitingReason | None:
    """The reason a stored journal gives (``waitingReason``; an unknown value reads as
    transient), else the one its waiting ``note`` implies: journals written before the
    reason was stored start the note with the error type."""
    if value:
        try:
            return WaitingReason(str(value))
        except ValueError:
            return WaitingReason.TRANSIENT
    if not note:
        return None
    kind = str(note).split(":", 1)[0]
    return {
        "QuotaExhaustedError": WaitingReason.QUOTA,
        "BucketFullError": WaitingReason.BUCKET_FULL,
        "ThrottledError": WaitingReason.THROTTLED,
    }.get(kind, WaitingReason.TRANSIENT)
