"""Runs: plan → (hold) → upload → reconcile, with a journal that survives crashes.

One extract of one source becomes one **run**. Its id is the source name plus a hash
of the file's bytes, so the same file delivered twice finds its run and does nothing.
The run's journal is a JSON document in the state store (``runs/<source>/<run id>``),
written with ETag-conditional puts while the source's lock is held; the states are

    received → planned → [held] → uploading → uploaded → reconciling → done
                                           ↘ failed / superseded / discarded

- **Plan**: the delta (:mod:`connector.delta`) is stored as an artifact
  (``<source>/<run>/plan.jsonl.gz``) so a held run can be approved, and an interrupted
  one resumed, without the extract. Batches are rebuilt from it deterministically.
- **Upload**: one bulk request at a time; each acknowledged batch (202) is journaled
  before the next is sent, so a crash re-sends at most the batch in flight. Quota
  exhaustion, a full bucket, throttling or an outage leave the run ``uploading``
  with a ``waiting`` note; :meth:`Engine.resume_waiting` (next CLI call or timer)
  continues from the first unacknowledged batch.
- **State**: a record's fingerprint and last payload advance only once its batch was
  acknowledged. Acknowledged batches are folded into the record index idempotently
  (``indexed`` counter), so a crash between the two is repaired on the next call.
- **Reconcile**: provisioning logs since the first upload minus the skew are matched
  to the run's records (:mod:`connector.reconcile`); outcomes go to the journal, the
  record index and the reports. Failed records keep their new fingerprint, so they are
  not re-sent until their data changes or an operator runs ``retry-failed``.
- **Order**: an extract older than the last one applied for its source is
  ``superseded``; a newer extract also supersedes older runs still held or waiting
  (their un-sent records are planned again against the newer data).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import gzip
import hashlib
import logging
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import IO, Any, Protocol

import httpx
import orjson
import yaml

from connector.clock import Clock
from connector.config import Source, SourcesConfig
from connector.delta import (
    Change,
    ChangeKind,
    DeltaPlan,
    attach_leaver_payloads,
    check_guard,
    plan_delta,
)
from connector.errors import (
    AuthenticationError,
    BadRequestError,
    BucketFullError,
    ConcurrentRunError,
    ConfigError,
    ConnectorError,
    GraphError,
    LockLostError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExhaustedError,
    RunError,
    StateError,
    ThrottledError,
    TooManyRejectedRowsError,
)
from connector.graph.auth import TokenProvider
from connector.graph.client import GraphClient, LogQuery, RetryPolicy, split_payload
from connector.graph.endpoint import Cloud, ProvisioningEndpoint
from connector.mapping import load_mapping
from connector.pacing import DailyBudget, SlidingWindowLimiter
from connector.reconcile import (
    Outcome,
    RecordOutcome,
    SentRecord,
    check_job_health,
    reconcile,
)
from connector.records import MappedRecord, RecordStream, iter_records
from connector.references import (
    DEFAULT_MAX_REFERENCE_RESENDS,
    UNRESOLVED_REFERENCE,
    ResendCandidate,
    count_resends,
    manager_of,
    order_by_level,
    reference_levels,
    select_reference_resends,
)
from connector.report import (
    RecordRow,
    RejectedRow,
    ReportInput,
    TimelineEvent,
    write_reports,
)
from connector.scim import BulkOperation, BulkPayload, build_bulk_requests, make_bulk_id
from connector.state.base import (
    FINGERPRINT_SIZE,
    RecordEntry,
    RecordIndex,
    SourceLock,
    StateStore,
    StoreCallBudget,
)
from connector.state.base import Outcome as StateOutcome

__all__ = [
    "MAX_REJECTED_IN_JOURNAL",
    "OPEN_STATES",
    "BatchReceipt",
    "Engine",
    "ExtractRecords",
    "GraphTarget",
    "PassResult",
    "ProvisioningTarget",
    "RunState",
    "RunSummary",
    "TargetFactory",
    "WaitingReason",
    "graph_targets",
    "make_run_id",
    "read_mapped_records",
    "source_cloud",
]

log = logging.getLogger(__name__)


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
_UNSENT_STATES = frozenset({RunState.RECEIVED, RunState.PLANNED, RunState.HELD})

DEFAULT_WINDOW = 8
"""Bulk requests in flight at once per run: enough to reach 40 calls / 5 s at ~1 s latency."""
DEFAULT_ISOLATION_CALLS = 60
"""Extra calls one run may spend finding the records a 400 is about."""
NEVER_ACCEPTED = bytes(FINGERPRINT_SIZE)
"""Fingerprint of a record the service has never accepted (refused at its first send)."""

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


# -- seams ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BatchReceipt:
    """What the service said about one bulk request: accepted (202), except ``rejected``.

    ``rejected`` maps externalIds the service refused with 400 (isolated by the Graph
    client) to ``(error code, message)``; they count as failed at once.
    """

    request_id: str | None = None
    client_request_id: str | None = None
    rejected: Mapping[str, tuple[str | None, str]] = field(default_factory=dict)


class ProvisioningTarget(Protocol):
    """One source's provisioning job, as the engine needs it (Graph or the emulator).

    ``send`` raises :class:`~connector.errors.QuotaExhaustedError`,
    :class:`~connector.errors.BucketFullError` or another
    :class:`~connector.errors.GraphError` when the request was not accepted.
    """

    @property
    def job_id(self) -> str | None: ...

    async def send(self, payload: BulkPayload) -> BatchReceipt: ...

    def iter_logs(self, since: datetime) -> AsyncIterator[Any]:
        """Provisioning-log entries of the job with ``activityDateTime`` ≥ ``since``,
        every page (Graph dicts or :class:`~connector.graph.models.ProvisioningObjectSummary`)."""
        ...

    async def get_job(self) -> Any:
        """The synchronization job (dict or model), None if not found."""
        ...

    async def aclose(self) -> None: ...


TargetFactory = Callable[[Source], ProvisioningTarget]


class ExtractRecords(Protocol):
    """Mapped records of an extract, streamed, plus what was rejected and counted."""

    def __iter__(self) -> Iterator[Any]: ...

    @property
    def rejected(self) -> Iterable[Any]: ...

    @property
    def rows(self) -> int: ...


RecordReader = Callable[[Source, Path], ExtractRecords]
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
        self, items: Iterable[RunSummary] = (), skipped: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(items)
        self.skipped: dict[str, str] = dict(skipped or {})


def make_run_id(source: str, content_sha256: str) -> str:
    """``<source>-<first 20 hex of the file's SHA-256>``: same file, same run."""
    return f"{source}-{content_sha256[:20]}"


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


# -- the journal ----------------------------------------------------------------------------


@dataclass(slots=True)
class _Journal:
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
        return _run_key(self.source, self.run_id)

    @property
    def batches(self) -> list[dict[str, Any]]:
        return self.doc.setdefault("batches", [])  # type: ignore[no-any-return]


def _run_key(source: str, run_id: str) -> str:
    return f"runs/{source}/{run_id}"


def _source_key(source: str) -> str:
    return f"sources/{source}"


def _approval_key(run_id: str) -> str:
    return f"approvals/{run_id}"


def _attempted_key(source: str) -> str:
    return f"attempted/{source}"


def _resends_key(source: str) -> str:
    """Automatic re-sends per record for unresolved manager references."""
    return f"reference-resends/{source}"


def _acked_indices(journal: _Journal) -> set[int]:
    """Batch indices acknowledged so far (journals before the window kept them in order)."""
    return {int(b.get("i", k)) for k, b in enumerate(journal.batches)}


def _lock_lost(journal: _Journal) -> bool:
    return bool(journal.lock is not None and getattr(journal.lock, "lost", False))


def _check_lock(journal: _Journal) -> None:
    if _lock_lost(journal):
        raise LockLostError(
            f"run {journal.run_id}: the lock on source {journal.source!r} was lost (renewal"
            " failed or another run took it over); stopping without writing — the holder"
            " continues from the journal"
        )


class _SystemicRefusal(BadRequestError):
    """A 400 that is about the payload's shape for this job, not about single records."""


@dataclass(frozen=True, slots=True)
class _Stop:
    """Why the upload window stopped: ``failed``, ``blocked`` or ``waiting``."""

    kind: str
    error: BaseException
    batch: int


# -- plan storage ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _PlannedOp:
    kind: str
    external_id: str
    line: int | None
    fingerprint: bytes
    active: bool
    data: Mapping[str, Any]
    prev: str | None = None
    """The run that last sent this record (its log entry is not this send's)."""
    level: int = 0
    """Depth in the manager chain within the plan (0: its manager exists or is not in it)."""


def _may_not_exist(change: Change, entry: RecordEntry | None) -> bool:
    """Whether the directory may not hold this record yet (its reports must wait for it)."""
    if change.kind is ChangeKind.JOINER or entry is None:
        return True
    if entry.fingerprint == NEVER_ACCEPTED:
        return True
    # A create that failed: nobody exists until a later send succeeds.
    return entry.outcome == StateOutcome.FAILED.value and not entry.active


def _order_plan(changes: Iterable[Change], index: RecordIndex | None = None) -> list[_PlannedOp]:
    """The records to send, managers before their reports (stable within a level).

    Only managers that may not exist yet (joiners, records never accepted) make a
    report wait; movers and leavers exist already, so a daily delta is one level.
    """
    entries = index.entries if index is not None else {}
    todo = [c for c in changes if c.data is not None]
    by_id = {c.external_id: c for c in todo}

    def needs_wait(ext: str) -> bool:
        change = by_id.get(ext)
        return change is not None and _may_not_exist(change, entries.get(ext))

    levels = reference_levels([(c.external_id, manager_of(c.data)) for c in todo], needs_wait)
    ops: list[_PlannedOp] = []
    for k in order_by_level(len(todo), levels):
        c = todo[k]
        old = entries.get(c.external_id)
        ops.append(
            _PlannedOp(
                c.kind.value,
                c.external_id,
                c.line,
                c.fingerprint,
                c.active,
                c.data or {},
                old.run_id if old is not None else None,
                levels[k],
            )
        )
    return ops


def _encode_plan(ops: Iterable[_PlannedOp]) -> bytes:
    buf = bytearray()
    for op in ops:
        buf += orjson.dumps(
            [
                op.kind,
                op.external_id,
                op.line,
                op.fingerprint.hex(),
                op.active,
                op.data,
                op.prev,
                op.level,
            ]
        )
        buf += b"\n"
    return gzip.compress(bytes(buf), compresslevel=5)


def _decode_plan(blob: bytes) -> list[_PlannedOp]:
    ops: list[_PlannedOp] = []
    for raw in gzip.decompress(blob).splitlines():
        if not raw:
            continue
        kind, ext, line, fp, active, data, *rest = orjson.loads(raw)
        prev = rest[0] if rest else None
        level = int(rest[1]) if len(rest) > 1 else 0  # plans stored before levels: one level
        ops.append(_PlannedOp(kind, ext, line, bytes.fromhex(fp), bool(active), data, prev, level))
    return ops


def _suppress_refused_resends(
    plan: DeltaPlan, index: RecordIndex, attempted: Mapping[str, str]
) -> None:
    """Records the service refused (400) and that come back unchanged are not re-sent.

    Their index entry keeps the last accepted fingerprint, so the delta sees a change;
    the refused attempt's fingerprint (``attempted``) says it is the same data again.
    A record refused at its very first send counts as a joiner when its data changes.
    """
    if not attempted:
        return
    kept: list[Change] = []
    for c in plan.changes:
        entry = index.entries.get(c.external_id)
        if c.kind is ChangeKind.MOVER and entry is not None:
            if attempted.get(c.external_id) == c.fingerprint.hex():
                plan.movers -= 1
                plan.unchanged += 1
                continue
            if entry.fingerprint == NEVER_ACCEPTED:
                plan.movers -= 1
                plan.joiners += 1
                c = Change(
                    ChangeKind.JOINER, c.external_id, c.line, c.data, c.fingerprint, c.active
                )
        kept.append(c)
    plan.changes = kept


def _batches(ops: list[_PlannedOp]) -> list[BulkPayload]:
    """Deterministic: the same plan always gives the same batches in the same order."""
    return [payload for payload, _ in _leveled_batches(ops)]


def _leveled_batches(ops: list[_PlannedOp]) -> list[tuple[BulkPayload, tuple[int, int]]]:
    """The plan's batches, each with the lowest and highest manager-chain level it holds.

    Batches are packed as before (50 operations), so ordering costs no extra calls; a
    batch may end one level and start the next (operations of one request are processed
    in order — SCIM bulk semantics, our assumption for Entra).
    """
    payloads = list(
        build_bulk_requests(
            BulkOperation(make_bulk_id(op.external_id, op.line), op.external_id, op.data)
            for op in ops
        )
    )
    out: list[tuple[BulkPayload, tuple[int, int]]] = []
    k = 0
    for payload in payloads:
        n = len(payload)
        levels = [op.level for op in ops[k : k + n]]
        k += n
        out.append((payload, (min(levels, default=0), max(levels, default=0))))
    return out


# -- the engine -----------------------------------------------------------------------------


class Engine:
    """The sync engine: one object per process, shared by the CLI and the Functions app.

    ``targets`` builds the provisioning target of a source (Graph client or emulator);
    ``records`` reads and maps an extract file (default: :func:`read_mapped_records`).
    All time comes from ``clock``. ``window``: bulk requests of one run in flight at once
    (1 sends one at a time); ``isolation_calls``: extra calls one run may spend finding
    the records a 400 is about; ``max_reference_resends``: automatic re-sends of a record
    skipped for an unresolved manager, once the manager exists (0 turns them off).
    """

    def __init__(
        self,
        config: SourcesConfig,
        store: StateStore,
        targets: TargetFactory,
        clock: Clock,
        *,
        records: RecordReader | None = None,
        owner: str | None = None,
        window: int = DEFAULT_WINDOW,
        isolation_calls: int = DEFAULT_ISOLATION_CALLS,
        max_reference_resends: int = DEFAULT_MAX_REFERENCE_RESENDS,
    ) -> None:
        if window < 1:
            raise ValueError("window must be at least 1")
        if max_reference_resends < 0:
            raise ValueError("max_reference_resends must be 0 (off) or more")
        self.config = config
        self.store = store
        self.targets = targets
        self.clock = clock
        self.records = records or read_mapped_records
        self.owner = owner or f"engine-{uuid.uuid4().hex[:8]}"
        self.window = window
        self.isolation_calls = isolation_calls
        self.max_reference_resends = max_reference_resends

    # -- public API -------------------------------------------------------------------

    async def ingest(
        self,
        source: str,
        name: str,
        stream: IO[bytes] | Path,
        received_at: datetime | None = None,
        *,
        dry_run: bool = False,
        full_resend: bool = False,
        progress: ProgressCallback | None = None,
    ) -> RunSummary:
        """Take one extract of ``source``: plan it, hold it or upload it.

        ``name`` is the file's name (used for the extract timestamp and reports);
        ``stream`` its bytes (a binary stream or a path). A dry run plans and reports
        counts without writing anything.
        """
        src = self.config.source(source)
        received = received_at or self.clock.now()
        if not dry_run:
            # Fail before recording a run when the target cannot even be built (bad
            # endpoint, loopback without permission, missing credentials).
            await self.targets(src).aclose()
        with _spooled(stream, name) as (path, sha):
            run_id = make_run_id(src.name, sha)
            if dry_run:
                return self._dry_run(src, name, path, run_id, full_resend=full_resend)
            with self.store.lock(src.name, owner=self.owner) as lock:
                self._repair(src.name)
                existing = self._load(src.name, run_id)
                replannable = existing is not None and (
                    existing.state in (RunState.FAILED, RunState.RECEIVED, RunState.PLANNED)
                    and not existing.batches
                )
                if existing is not None and not replannable:
                    log.info("run %s: file already received; nothing to do", run_id)
                    summary = self._summary(existing)
                    summary.duplicate = True
                    return summary
                if existing is not None:
                    # It stopped before sending anything (a mapping error since fixed, or a
                    # crash while planning): delivering the same file again plans it again.
                    journal = existing
                    journal.lock = lock
                    journal.doc.pop("failedReason", None)
                    journal.doc.pop("rejected", None)
                    journal.doc.pop("decision", None)
                    self._transition(journal, RunState.RECEIVED, f"file {name} received again")
                else:
                    journal = self._receive(src, run_id, name, received, lock)
                if src.mode == "delta":
                    # Changes only: an older run's unsent changes are not in this file, so
                    # that run goes first (and this one queues behind it if it cannot).
                    await self._finish_older_runs(src, journal, lock)
                journal = self._plan(src, journal, path, full_resend=full_resend)
                if journal.state is RunState.PLANNED:
                    journal = await self._decide(src, journal, progress)
                self._write_reports(journal)
                return self._summary(journal)

    async def _finish_older_runs(self, src: Source, journal: _Journal, lock: SourceLock) -> None:
        for run_id in self._resumable_ids(src.name):
            other = self._load(src.name, run_id)
            if other is None or other.key == journal.key or other.state is not RunState.UPLOADING:
                continue
            other.lock = lock
            other = await self._upload(src, other, None)
            self._write_reports(other)
            if other.state is RunState.UPLOADING:
                return

    async def resume(self, run_id: str, progress: ProgressCallback | None = None) -> RunSummary:
        """Continue one run where its journal stopped (the redelivery path).

        Uploading → sends its unacknowledged batches; held with an approval marker →
        approved and uploaded; planned (a crash after planning) → the stored guard
        decision is applied; blocked (an error retrying cannot fix, since fixed) → tried
        again. Any other state is returned as is. Raises
        :class:`~connector.errors.ConcurrentRunError` when the source is busy.
        """
        src, _ = self._find(run_id)
        with self.store.lock(src.name, owner=self.owner) as lock:
            self._repair(src.name)
            journal = self._require(src.name, run_id)
            return await self._resume_locked(src, journal, lock, progress, operator=True)

    async def resume_waiting(self, progress: ProgressCallback | None = None) -> PassResult:
        """Continue every run left uploading (oldest first), apply the guard decision of
        runs interrupted after planning, and release held runs that have an approval
        marker document (``approvals/<run id>``).

        Each source is handled on its own: a source whose lock is held elsewhere is left
        for the next pass and named in :attr:`PassResult.skipped`; the others go on.
        """
        out = PassResult()
        for src in self.config.sources:
            if not self._resumable_ids(src.name):
                continue
            try:
                with self.store.lock(src.name, owner=self.owner) as lock:
                    self._repair(src.name)
                    for run_id in self._resumable_ids(src.name):
                        journal = self._load(src.name, run_id)
                        if journal is None:
                            continue
                        summary = await self._resume_locked(src, journal, lock, progress)
                        out.append(summary)
                        if summary.waiting_reason is not None:
                            break  # later runs of this source queue behind this one
            except ConcurrentRunError as exc:
                log.info("source %s: busy, skipped this pass", src.name)
                out.skipped[src.name] = str(exc)
        return out

    def _resumable_ids(self, source: str) -> list[str]:
        """Runs a timer pass may move on, oldest first (by extract time, then receipt)."""
        found: list[tuple[str, str, str]] = []
        for key in self.store.list_documents(f"runs/{source}/"):
            got = self.store.get_document(key)
            if got is None:
                continue
            doc = got[0]
            state = RunState(doc["state"])
            run_id = str(doc["runId"])
            wanted = state in (RunState.UPLOADING, RunState.PLANNED) or (
                state is RunState.HELD
                and self.store.get_document(_approval_key(run_id)) is not None
            )
            if wanted:
                found.append((str(doc.get("extractAt") or ""), str(doc.get("receivedAt")), run_id))
        return [r for _, _, r in sorted(found)]

    async def _resume_locked(
        self,
        src: Source,
        journal: _Journal,
        lock: SourceLock,
        progress: ProgressCallback | None,
        *,
        operator: bool = False,
    ) -> RunSummary:
        journal.lock = lock
        state = journal.state
        if state is RunState.HELD:
            marker = self.store.get_document(_approval_key(journal.run_id))
            if marker is None:
                return self._summary(journal)
            by = str(marker[0].get("by") or "approval marker")
            journal = await self._approve_locked(src, journal, by, progress)
        elif state is RunState.PLANNED:
            journal = await self._decide(src, journal, progress)
        elif state is RunState.UPLOADING or (state is RunState.BLOCKED and operator):
            if state is RunState.BLOCKED:
                journal.doc.pop("blockedReason", None)
                self._transition(journal, RunState.UPLOADING, "resumed by an operator")
            journal = await self._upload(src, journal, progress)
        else:
            return self._summary(journal)
        self._write_reports(journal)
        return self._summary(journal)

    async def reconcile_open_runs(self) -> PassResult:
        """One reconciliation pass over every uploaded/reconciling run of every source.

        Sources are independent: a busy source (lock held) is skipped for this pass and
        named in :attr:`PassResult.skipped`.
        """
        out = PassResult()
        for src in self.config.sources:
            keys = self.store.list_documents(f"runs/{src.name}/")
            open_ids = []
            for key in keys:
                got = self.store.get_document(key)
                if got and got[0]["state"] in (RunState.UPLOADED, RunState.RECONCILING):
                    open_ids.append(got[0]["runId"])
            if not open_ids:
                continue
            target = self.targets(src)
            try:
                with self.store.lock(src.name, owner=self.owner) as lock:
                    self._repair(src.name)
                    job = await target.get_job()
                    health = check_job_health(_as_mapping(job))
                    if not health.ok:
                        log.error("source %s: %s", src.name, health.message)
                    for run_id in open_ids:
                        journal = self._load(src.name, run_id)
                        if journal is None or journal.state not in (
                            RunState.UPLOADED,
                            RunState.RECONCILING,
                        ):
                            continue
                        journal.lock = lock
                        journal = await self._reconcile(src, journal, target, health)
                        self._write_reports(journal)
                        out.append(self._summary(journal))
                    if health.ok:
                        resend = await self._resend_unresolved_references(src, lock)
                        if resend is not None:
                            out.append(resend)
            except ConcurrentRunError as exc:
                log.info("source %s: busy, reconciliation skipped this pass", src.name)
                out.skipped[src.name] = str(exc)
            finally:
                await target.aclose()
        return out

    async def _resend_unresolved_references(
        self, src: Source, lock: SourceLock
    ) -> RunSummary | None:
        """Re-send records skipped for an unresolved manager whose manager now exists.

        Runs after reconciliation, under the source's lock, as a run of its own
        (``<source>-refs<n>``, kind ``references``) carrying each record's last accepted
        payload, so it is journaled, reconciled and reported like any other run.
        Bounded: at most ``max_reference_resends`` automatic re-sends per record with
        the same data, none when the manager is unknown to the source, failed or not yet
        confirmed (see :func:`connector.references.select_reference_resends`), and none
        while a run of the source still has batches to send (its data is newer).
        """
        if self.max_reference_resends == 0 or self._run_with_batches_left(src.name):
            return None
        index = self.store.load_records(src.name)
        skipped = [
            ext
            for ext, e in index.entries.items()
            if e.outcome == StateOutcome.SKIPPED.value and e.error_code == UNRESOLVED_REFERENCE
        ]
        if not skipped:
            return None
        payloads = self.store.get_payloads(src.name, skipped)
        got = self.store.get_document(_resends_key(src.name))
        resent: dict[str, tuple[str, int]] = {
            ext: (str(v[0]), int(v[1]))
            for ext, v in ((got[0] if got else {}).get("records") or {}).items()
        }
        chosen, left = select_reference_resends(
            index.entries, payloads, resent, max_resends=self.max_reference_resends
        )
        if not chosen:
            return None
        changes = [
            Change(
                ChangeKind.RETRY,
                c.external_id,
                None,
                payloads[c.external_id],
                index.entries[c.external_id].fingerprint,
                index.entries[c.external_id].active,
            )
            for c in chosen
        ]
        body = {
            "source": src.name,
            "records": {
                ext: list(v)
                for ext, v in count_resends(
                    resent, ((c.external_id, c.fingerprint) for c in changes)
                ).items()
            },
        }
        if got is None:
            self.store.put_document(_resends_key(src.name), body, if_none_match=True)
        else:
            self.store.put_document(_resends_key(src.name), body, if_match=got[1])
        parents = sorted({c.run_id for c in chosen if c.run_id})
        n = len(self.store.list_documents(f"runs/{src.name}/{src.name}-refs"))
        run_id = f"{src.name}-refs{n + 1}"
        last = self._last_applied(src.name)
        not_resent: dict[str, int] = {}
        for why in left.values():
            not_resent[why] = not_resent.get(why, 0) + 1
        journal = _Journal(
            {
                "runId": run_id,
                "source": src.name,
                "file": None,
                "kind": REFERENCES_KIND,
                "parentRunIds": parents,
                "receivedAt": _iso(self.clock.now()),
                "extractAt": _iso(last) if last is not None else None,
                "state": RunState.RECEIVED.value,
                "timeline": [],
                "batches": [],
                "indexed": 0,
                "notResent": not_resent,
            },
            lock=lock,
        )
        detail = (
            f"re-send of {len(changes)} records skipped for an unresolved manager reference"
            f" (their managers are now provisioned); from runs {', '.join(parents) or '-'}"
        )
        self._event(journal, RunState.RECEIVED, detail)
        journal.etag = self.store.put_document(journal.key, journal.doc, if_none_match=True)
        self._store_plan(journal, changes, index, kind=REFERENCES_KIND)
        journal.doc["planned"] = {"references": len(changes)}
        self._transition(journal, RunState.PLANNED, f"{len(changes)} references to resolve")
        for parent_id in parents:
            self._note_resend(src.name, parent_id, run_id, chosen, lock)
        self._transition(journal, RunState.UPLOADING, "automatic re-send")
        log.info("run %s: re-sending %d records for manager references", run_id, len(changes))
        journal = await self._upload(src, journal, None)
        self._write_reports(journal)
        return self._summary(journal)

    def _note_resend(
        self,
        source: str,
        parent_id: str,
        child_id: str,
        chosen: Iterable[ResendCandidate],
        lock: SourceLock,
    ) -> None:
        """Record on the skipped records' run which of them were re-sent, and where."""
        parent = self._load(source, parent_id)
        if parent is None:
            return
        parent.lock = lock
        count = sum(1 for c in chosen if c.run_id == parent_id)
        parent.doc.setdefault("referenceResends", {})[child_id] = count
        self._event(
            parent,
            parent.state,
            f"{count} records skipped for an unresolved manager re-sent in run {child_id}",
        )
        self._save(parent)
        self._write_reports(parent)

    def _run_with_batches_left(self, source: str) -> bool:
        for key in self.store.list_documents(f"runs/{source}/"):
            got = self.store.get_document(key)
            if got is not None and got[0]["state"] in (RunState.UPLOADING, RunState.BLOCKED):
                return True
        return False

    async def approve(
        self, run_id: str, *, by: str = "operator", progress: ProgressCallback | None = None
    ) -> RunSummary:
        """Release a held run and upload it now.

        Refused (the run stays held) when the extract is older than the last one applied,
        or when no token can be obtained for the source's job (fix the identity first).
        """
        src, _ = self._find(run_id)
        with self.store.lock(src.name, owner=self.owner) as lock:
            self._repair(src.name)
            journal = self._require(src.name, run_id)
            journal.lock = lock
            if journal.state is not RunState.HELD:
                raise RunError(
                    f"run {run_id} is {journal.state.value}, not held; only a held run can be"
                    " approved (see `connector runs show " + run_id + "`)"
                )
            journal = await self._approve_locked(src, journal, by, progress)
            self._write_reports(journal)
            return self._summary(journal)

    async def _approve_locked(
        self, src: Source, journal: _Journal, by: str, progress: ProgressCallback | None
    ) -> _Journal:
        run_id = journal.run_id
        last = self._last_applied(src.name)
        extract_at = _dt(journal.doc.get("extractAt"))
        if last is not None and extract_at is not None and extract_at < last:
            raise RunError(
                f"run {run_id} holds an extract from {_iso(extract_at)}, older than the last"
                f" one applied ({_iso(last)}); discard it instead"
            )
        await self._preflight(src)
        journal.doc["approvedBy"] = by
        self._supersede_older_open_runs(src, journal)
        self._transition(journal, RunState.UPLOADING, f"approved by {by}")
        self._mark_applied(src.name, journal)
        with contextlib.suppress(StateError):
            self.store.delete_document(_approval_key(run_id))
        if self._older_run_uploading(src.name, journal):
            self._queue(journal)
            return journal
        return await self._upload(src, journal, progress)

    def discard(self, run_id: str, *, by: str = "operator") -> RunSummary:
        """Drop a run that has not finished sending (received, planned, held, waiting or
        blocked): nothing more of it is sent; batches it delivered are still reconciled."""
        src, _ = self._find(run_id)
        with self.store.lock(src.name, owner=self.owner) as lock:
            self._repair(src.name)
            journal = self._require(src.name, run_id)
            journal.lock = lock
            if journal.state not in (
                RunState.RECEIVED,
                RunState.HELD,
                RunState.PLANNED,
                RunState.UPLOADING,
                RunState.BLOCKED,
            ):
                raise RunError(
                    f"run {run_id} is {journal.state.value}; only a received, planned, held,"
                    " waiting or blocked run can be discarded"
                )
            self._stop_run(src.name, journal, RunState.DISCARDED, f"discarded by {by}")
            with contextlib.suppress(StateError):
                self.store.delete_document(_approval_key(run_id))
            return self._summary(journal)

    async def retry_failed(
        self, run_id: str, *, progress: ProgressCallback | None = None
    ) -> RunSummary:
        """Re-send the records of ``run_id`` whose last outcome is failed, as a new run.

        Only records still owned by that run (no later run sent them) are retried, with
        the data that run sent (from its stored plan; the last payload stored as a
        fallback). Returns the new run; RunError when there is nothing to retry.
        """
        src, _ = self._find(run_id)
        with self.store.lock(src.name, owner=self.owner) as lock:
            self._repair(src.name)
            parent = self._require(src.name, run_id)
            index = self.store.load_records(src.name)
            failed = [
                ext
                for ext, e in index.entries.items()
                if e.run_id == run_id and e.outcome == StateOutcome.FAILED.value
            ]
            if not failed:
                raise RunError(f"run {run_id} has no failed records to retry")
            planned = {op.external_id: op for op in self._plan_or_empty(parent)}
            missing = [ext for ext in failed if ext not in planned]
            payloads = self.store.get_payloads(src.name, missing) if missing else {}
            changes: list[Change] = []
            for ext in failed:
                entry = index.entries[ext]
                op = planned.get(ext)
                if op is not None:
                    data: Mapping[str, Any] = op.data
                    fp, active, line = op.fingerprint, op.active, op.line
                elif ext in payloads:
                    data, fp, active, line = payloads[ext], entry.fingerprint, entry.active, None
                else:
                    continue
                changes.append(Change(ChangeKind.RETRY, ext, line, data, fp, active))
            n = sum(1 for k in self.store.list_documents(f"runs/{src.name}/{run_id}-retry"))
            child_id = f"{run_id}-retry{n + 1}"
            now = self.clock.now()
            journal = _Journal(
                {
                    "runId": child_id,
                    "source": src.name,
                    "file": parent.doc.get("file"),
                    "kind": "retry",
                    "parentRunId": run_id,
                    "receivedAt": _iso(now),
                    "extractAt": parent.doc.get("extractAt"),
                    "state": RunState.RECEIVED.value,
                    "timeline": [],
                    "batches": [],
                    "indexed": 0,
                },
                lock=lock,
            )
            self._event(journal, RunState.RECEIVED, f"retry of {len(changes)} failed records")
            journal.etag = self.store.put_document(journal.key, journal.doc, if_none_match=True)
            self._store_plan(journal, changes, index)
            journal.doc["planned"] = {"retries": len(changes)}
            self._transition(journal, RunState.PLANNED, f"{len(changes)} retries")
            self._transition(journal, RunState.UPLOADING, "retry requested by operator")
            journal = await self._upload(src, journal, progress)
            self._write_reports(journal)
            return self._summary(journal)

    def list_runs(self, source: str | None = None) -> list[RunSummary]:
        """Every run's summary, oldest first (by received time)."""
        out: list[RunSummary] = []
        for src in self.config.sources:
            if source is not None and src.name != source:
                continue
            for key in self.store.list_documents(f"runs/{src.name}/"):
                got = self.store.get_document(key)
                if got is not None:
                    out.append(self._summary(_Journal(got[0], got[1])))
        out.sort(key=lambda s: s.received_at or "")
        return out

    def get_run(self, run_id: str) -> dict[str, Any]:
        """The run's journal document."""
        src, _ = self._find(run_id)
        return self._require(src.name, run_id).doc

    def report_paths(self, run_id: str, *, refresh: bool = False) -> dict[str, str]:
        """Where the run's reports are; ``refresh`` rebuilds them from the journal first."""
        src, _ = self._find(run_id)
        journal = self._require(src.name, run_id)
        if refresh:
            return self._write_reports(journal)
        return {
            n: self.store.artifact_location(f"{src.name}/{run_id}/{n}")
            for n in ("report.html", "report.json", "failures.csv")
        }

    # -- receive and plan -------------------------------------------------------------

    def _receive(
        self, src: Source, run_id: str, name: str, received: datetime, lock: SourceLock
    ) -> _Journal:
        extract_at = src.extract_time(name, received)
        journal = _Journal(
            {
                "runId": run_id,
                "source": src.name,
                "file": name,
                "kind": "extract",
                "receivedAt": _iso(received),
                "extractAt": _iso(extract_at),
                "state": RunState.RECEIVED.value,
                "timeline": [],
                "batches": [],
                "indexed": 0,
            },
            lock=lock,
        )
        self._event(journal, RunState.RECEIVED, f"file {name}")
        journal.etag = self.store.put_document(journal.key, journal.doc, if_none_match=True)
        log.info("run %s: received for source %s", run_id, src.name)
        return journal

    def _plan(self, src: Source, journal: _Journal, path: Path, *, full_resend: bool) -> _Journal:
        """Plan the run and record the guard's decision with it (applied by :meth:`_decide`),
        so a crash between the two can be continued without the extract."""
        extract_at = _dt(journal.doc["extractAt"])
        last = self._last_applied(src.name)
        if last is not None and extract_at is not None and extract_at < last:
            reason = (
                f"extract taken {_iso(extract_at)} is older than the last one applied"
                f" ({_iso(last)}); not applied over newer data"
            )
            journal.doc["supersededReason"] = reason
            self._transition(journal, RunState.SUPERSEDED, reason)
            log.warning("run %s: superseded (older extract)", journal.run_id)
            return journal
        try:
            plan, rows, rejected, index = self._compute_plan(src, path, full_resend=full_resend)
        except TooManyRejectedRowsError as exc:
            self._journal_refused_rows(journal, exc)
            journal.doc["failedReason"] = str(exc)
            self._transition(journal, RunState.FAILED, str(exc))
            log.error("run %s: refused at the rejected-row cap", journal.run_id)
            return journal
        except ConnectorError as exc:
            journal.doc["failedReason"] = str(exc)
            self._transition(journal, RunState.FAILED, str(exc))
            log.error("run %s: failed to plan: %s", journal.run_id, exc)
            return journal
        counts = plan.counts()
        counts["rejected"] = len(rejected)
        journal.doc["planned"] = counts
        journal.doc["rowsInFile"] = rows
        journal.doc["rejectedCount"] = len(rejected)
        journal.doc.pop("rejected", None)
        self._store_rejected(journal, rejected)
        self._store_plan(journal, plan.to_send, index)
        hold = check_guard(
            plan, index.active_count(), rows, src.thresholds, rejected_rows=len(rejected)
        )
        journal.doc["decision"] = {"hold": hold.to_dict() if hold is not None else None}
        self._transition(
            journal,
            RunState.PLANNED,
            f"{plan.joiners} joiners, {plan.movers} movers, {len(plan.leavers)} leavers,"
            f" {plan.unchanged} unchanged, {len(rejected)} rejected",
        )
        return journal

    async def _decide(
        self, src: Source, journal: _Journal, progress: ProgressCallback | None
    ) -> _Journal:
        """Apply a planned run's guard decision: hold it, or supersede older runs and upload.

        Older runs are superseded only here, once this run is going to be sent: a held
        newer file must not end runs that passed the guard. In ``delta`` mode an older run
        still uploading is never superseded (its unsent changes are not in this file):
        this run queues behind it.
        """
        decision = journal.doc.get("decision")
        if not isinstance(decision, Mapping):
            return journal  # planned by an older version: deliver the file again to re-plan
        hold = decision.get("hold")
        if hold:
            journal.doc["hold"] = hold
            journal.doc["heldReason"] = hold.get("message")
            self._transition(journal, RunState.HELD, str(hold.get("message")))
            log.warning("run %s: held by the mass-change guard (%s)", journal.run_id, hold["code"])
            return journal
        self._supersede_older_open_runs(src, journal)
        self._mark_applied(src.name, journal)
        self._transition(
            journal, RunState.UPLOADING, f"{journal.doc.get('toSend', 0)} records to send"
        )
        if self._older_run_uploading(src.name, journal):
            self._queue(journal)
            return journal
        return await self._upload(src, journal, progress)

    def _older_run_uploading(self, source: str, journal: _Journal) -> str | None:
        """The id of an older run of ``source`` that still has batches to send, if any."""
        mine = (str(journal.doc.get("extractAt") or ""), str(journal.doc.get("receivedAt")))
        for key in self.store.list_documents(f"runs/{source}/"):
            if key == journal.key:
                continue
            got = self.store.get_document(key)
            if got is None:
                continue
            doc = got[0]
            if doc["state"] not in (RunState.UPLOADING, RunState.BLOCKED):
                continue
            theirs = (str(doc.get("extractAt") or ""), str(doc.get("receivedAt")))
            if theirs <= mine:
                return str(doc["runId"])
        return None

    def _queue(self, journal: _Journal) -> None:
        older = self._older_run_uploading(journal.source, journal)
        note = f"queued behind run {older}, which has batches left to send"
        if journal.doc.get("waiting") != note:
            self._event(journal, RunState.UPLOADING, note)
        journal.doc["waiting"] = note
        journal.doc["waitingReason"] = WaitingReason.QUEUED.value
        self._save(journal)

    def _journal_refused_rows(self, journal: _Journal, exc: TooManyRejectedRowsError) -> None:
        """Keep a refused file's rejected rows (first :data:`MAX_REJECTED_IN_JOURNAL`) and
        counts on its run, so error files list them without reading the extract again."""
        rows: list[dict[str, Any]] = []
        for r in list(getattr(exc, "rejected", ()) or ())[:MAX_REJECTED_IN_JOURNAL]:
            code = getattr(r, "reason_code", None)
            message = getattr(r, "message", None) or getattr(r, "reason", None) or ""
            rows.append(
                {
                    "line": int(getattr(r, "line", 0) or 0),
                    "externalId": getattr(r, "external_id", None) or None,
                    "reason": f"{code}: {message}" if code else str(message),
                }
            )
        stats = getattr(exc, "stats", None)
        total = int(getattr(stats, "rows_rejected", len(rows)) or len(rows))
        journal.doc["rejected"] = rows
        journal.doc["rejectedCount"] = total
        journal.doc["rejectedOmitted"] = max(0, total - len(rows))
        if stats is not None:
            journal.doc["rowsInFile"] = int(getattr(stats, "rows_read", 0) or 0)
            by_reason = getattr(stats, "rejected_by_reason", None)
            if isinstance(by_reason, Mapping):
                journal.doc["rejectedByReason"] = {str(k): int(v) for k, v in by_reason.items()}

    def _compute_plan(
        self, src: Source, path: Path, *, full_resend: bool
    ) -> tuple[DeltaPlan, int, list[RejectedRow], RecordIndex]:
        index = self.store.load_records(src.name)
        mapped = self.records(src, path)
        plan = plan_delta(
            mapped,
            index,
            mode=src.mode,
            leaver_policy=src.leavers,
            ignore_attributes=src.ignore_attributes,
            rejected_ids=(),  # filled below once the stream is consumed
            full_resend=full_resend,
            retry_unconfirmed=src.retry_unconfirmed,
        )
        if not full_resend:
            _suppress_refused_resends(plan, index, self._load_attempted(src.name))
        rejected = [
            r
            if isinstance(r, RejectedRow)
            else RejectedRow(
                line=int(getattr(r, "line", 0) or 0),
                reason=str(getattr(r, "reason", "") or getattr(r, "message", "") or ""),
                external_id=getattr(r, "external_id", None) or None,
            )
            for r in mapped.rejected
        ]
        rejected_ids = {r.external_id for r in rejected if r.external_id}
        if rejected_ids and plan.leavers:
            # A rejected row still means the person is in the file: never disable them.
            plan.leavers = [c for c in plan.leavers if c.external_id not in rejected_ids]
        if plan.leavers:
            payloads = self.store.get_payloads(src.name, plan.leaver_ids)
            plan = attach_leaver_payloads(plan, payloads, ignore_attributes=src.ignore_attributes)
        return plan, mapped.rows, rejected, index

    def _dry_run(
        self, src: Source, name: str, path: Path, run_id: str, *, full_resend: bool
    ) -> RunSummary:
        plan, rows, rejected, index = self._compute_plan(src, path, full_resend=full_resend)
        counts = plan.counts()
        counts["rejected"] = len(rejected)
        hold = check_guard(
            plan, index.active_count(), rows, src.thresholds, rejected_rows=len(rejected)
        )
        n_batches = len(_batches(_order_plan(plan.to_send, index)))
        return RunSummary(
            run_id=run_id,
            source=src.name,
            file_name=name,
            state="dry-run",
            planned=counts,
            dry_run=True,
            held_reason=hold.message if hold else None,
            batches_total=n_batches,
        )

    def _store_plan(
        self,
        journal: _Journal,
        changes: Iterable[Change],
        index: RecordIndex,
        *,
        kind: str | None = None,
    ) -> None:
        ops = _order_plan(changes, index)
        if kind is not None:
            ops = [dataclasses.replace(op, kind=kind) for op in ops]
        self.store.write_artifact(
            f"{journal.source}/{journal.run_id}/plan.jsonl.gz",
            _encode_plan(ops),
            content_type="application/gzip",
        )
        journal.doc["batchesTotal"] = len(_batches(ops))
        journal.doc["toSend"] = len(ops)
        levels = max((op.level for op in ops), default=0) + 1
        if levels > 1:
            journal.doc["referenceLevels"] = levels

    def _store_rejected(self, journal: _Journal, rejected: list[RejectedRow]) -> None:
        """Rejected rows live next to the plan, not in the journal (rewritten per batch)."""
        if not rejected:
            return
        rows = [[r.line, r.reason, r.external_id] for r in rejected]
        self.store.write_artifact(
            f"{journal.source}/{journal.run_id}/rejected.json.gz",
            gzip.compress(orjson.dumps(rows), compresslevel=5),
            content_type="application/gzip",
        )

    def _load_rejected(self, journal: _Journal) -> list[RejectedRow]:
        inline = journal.doc.get("rejected")
        if inline:
            return [
                RejectedRow(int(r["line"]), str(r["reason"]), r.get("externalId")) for r in inline
            ]
        if not journal.doc.get("rejectedCount"):
            return []
        try:
            blob = self.store.read_artifact(f"{journal.source}/{journal.run_id}/rejected.json.gz")
        except StateError:
            return []
        return [RejectedRow(int(a), str(b), c) for a, b, c in orjson.loads(gzip.decompress(blob))]

    def _load_plan(self, journal: _Journal) -> list[_PlannedOp]:
        try:
            blob = self.store.read_artifact(f"{journal.source}/{journal.run_id}/plan.jsonl.gz")
        except StateError as exc:
            raise RunError(
                f"run {journal.run_id}: its stored plan is missing ({exc}); discard the run and"
                " deliver the extract again"
            ) from exc
        return _decode_plan(blob)

    def _load_attempted(self, source: str) -> dict[str, str]:
        got = self.store.get_document(_attempted_key(source))
        return dict(got[0].get("fingerprints") or {}) if got else {}

    # -- upload -----------------------------------------------------------------------

    async def _preflight(self, src: Source) -> None:
        """Check the source's target can get a token before anything is released."""
        target = self.targets(src)
        try:
            check = getattr(target, "preflight", None)
            if callable(check):
                await check()
        finally:
            await target.aclose()

    async def _upload(
        self, src: Source, journal: _Journal, progress: ProgressCallback | None
    ) -> _Journal:
        """Send the run's unacknowledged batches, up to ``window`` at once.

        Each acknowledgement is journaled as it arrives (with its batch index), so after
        a crash only the batches that were in flight are sent again. A spent budget, back-
        pressure or an outage stops new sends; batches in flight finish; every batch not
        acknowledged is left for the next call.
        """
        ops = self._load_plan(journal)
        leveled = _leveled_batches(ops)
        batches = [b for b, _ in leveled]
        total = len(batches)
        journal.doc["batchesTotal"] = total
        acked = _acked_indices(journal)
        pending = [i for i in range(total) if i not in acked]
        if progress is not None:
            progress(len(acked), total)
        stop: _Stop | None = None
        if pending:
            target = self.targets(src)
            try:
                stop = await self._send_window(
                    journal, target, batches, pending, progress, [lv for _, lv in leveled]
                )
            finally:
                await target.aclose()
        if stop is not None:
            return self._stopped(src.name, journal, ops, batches, stop)
        self._index_acks(src.name, journal, ops, batches)
        first = min((b["sentAt"] for b in journal.batches), default=_iso(self.clock.now()))
        journal.doc.setdefault("firstSentAt", first)
        self._transition(
            journal, RunState.UPLOADED, f"{total} batch{'es' if total != 1 else ''} acknowledged"
        )
        log.info("run %s: uploaded %d batches", journal.run_id, total)
        return journal

    async def _send_window(
        self,
        journal: _Journal,
        target: ProvisioningTarget,
        batches: list[BulkPayload],
        pending: list[int],
        progress: ProgressCallback | None,
        levels: list[tuple[int, int]] | None = None,
    ) -> _Stop | None:
        """Send ``pending`` batches, ``window`` at a time, managers before their reports.

        ``levels`` gives each batch's lowest and highest manager-chain level. A batch
        holding level *n* records is sent only once every earlier batch holding records
        below level *n* was acknowledged: the service resolves a manager only against
        users it has processed, so a report must not overtake its manager's request.
        Batches hold whole levels in order, so a plan with one level (the usual daily
        delta) never waits, and a first load waits once per level boundary.
        """
        total = len(batches)
        lv = levels or [(0, 0)] * total
        queue = iter(pending)
        stops: list[_Stop] = []
        in_flight: set[int] = set()
        acked_now = asyncio.Condition()

        def may_send(i: int) -> bool:
            top = lv[i][1]
            return bool(stops) or all(lv[j][0] >= top for j in in_flight if j < i)

        async def release(i: int) -> None:
            async with acked_now:
                in_flight.discard(i)
                acked_now.notify_all()

        async def stop_all(stop: _Stop) -> None:
            stops.append(stop)
            async with acked_now:
                acked_now.notify_all()

        async def worker() -> None:
            while not stops:
                i = next(queue, None)
                if i is None:
                    return
                in_flight.add(i)
                if not may_send(i):
                    async with acked_now:
                        await acked_now.wait_for(functools.partial(may_send, i))
                    if stops:
                        return
                try:
                    _check_lock(journal)
                    receipt = await self._send_batch(journal, target, batches[i])
                except _SystemicRefusal as exc:
                    await stop_all(_Stop("failed", exc, i))
                    return
                except (
                    AuthenticationError,
                    PermissionDeniedError,
                    NotFoundError,
                    ConfigError,
                ) as exc:
                    await stop_all(_Stop("blocked", exc, i))
                    return
                except (GraphError, ConcurrentRunError) as exc:
                    await stop_all(_Stop("waiting", exc, i))
                    return
                meta: dict[str, Any] = {
                    "i": i,
                    "n": len(batches[i]),
                    "sentAt": _iso(self.clock.now()),
                    "requestId": receipt.request_id,
                }
                if receipt.rejected:
                    meta["rejected"] = {k: list(v) for k, v in receipt.rejected.items()}
                journal.batches.append(meta)
                try:
                    self._note_whole_refusal(journal, batches[i], receipt)
                    if not stops or stops[0].kind == "waiting":
                        journal.doc.pop("waiting", None)
                        journal.doc.pop("waitingReason", None)
                    self._save(journal)
                except (_SystemicRefusal, ConcurrentRunError) as exc:
                    kind = "failed" if isinstance(exc, _SystemicRefusal) else "waiting"
                    await stop_all(_Stop(kind, exc, i))
                    return
                await release(i)
                if progress is not None:
                    progress(len(journal.batches), total)

        width = max(1, min(self.window, len(pending)))
        tasks = [asyncio.create_task(worker()) for _ in range(width)]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            # An unexpected error (or cancellation) ends the run's call: stop the others
            # and let it propagate as is; unacknowledged batches stay for the next call.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        if not stops:
            return None
        # The most serious reason wins: a failed run over a blocked one over waiting.
        rank = {"failed": 0, "blocked": 1, "waiting": 2}
        return min(stops, key=lambda s: rank[s.kind])

    def _stopped(
        self,
        source: str,
        journal: _Journal,
        ops: list[_PlannedOp],
        batches: list[BulkPayload],
        stop: _Stop,
    ) -> _Journal:
        total = len(batches)
        done = len(journal.batches)
        exc = stop.error
        if isinstance(exc, LockLostError) or (
            isinstance(exc, ConcurrentRunError) and _lock_lost(journal)
        ):
            # Not ours any more: write nothing; the new holder continues from the journal.
            journal.doc["waiting"] = f"{type(exc).__name__}: {exc}"
            journal.doc["waitingReason"] = WaitingReason.LOCK_LOST.value
            log.warning(
                "run %s: lost the source lock; stopped after %d/%d", journal.run_id, done, total
            )
            return journal
        if stop.kind == "failed":
            reason = (
                f"the service refused batch {stop.batch + 1}/{total} (400) in a way that is not"
                f" about single records: {exc}. The payload is invalid for this job: fix the"
                " mapping or the job schema (e.g. `connector schema add`), then deliver the"
                " extract again"
            )
            journal.doc["failedReason"] = reason
            self._index_acks(source, journal, ops, batches)
            self._transition(journal, RunState.FAILED, reason)
            log.error("run %s: failed: systemic 400 at batch %d", journal.run_id, stop.batch + 1)
            return journal
        if stop.kind == "blocked":
            reason = (
                f"{type(exc).__name__}: {exc}. Retrying cannot fix this; fix the identity,"
                " permission or endpoint, then resume the run with"
                f" `connector runs resume {journal.run_id}`"
            )
            journal.doc["blockedReason"] = reason
            self._index_acks(source, journal, ops, batches)
            self._transition(journal, RunState.BLOCKED, reason)
            log.error(
                "run %s: blocked (%s) after %d/%d batches",
                journal.run_id,
                type(exc).__name__,
                done,
                total,
            )
            return journal
        note = f"{type(exc).__name__}: {exc}"
        journal.doc["waits"] = int(journal.doc.get("waits", 0)) + 1
        if journal.doc.get("waiting") != note:
            # One timeline entry per new reason, not one per timer tick.
            self._event(
                journal, RunState.UPLOADING, f"waiting after {done}/{total} batches: {note}"
            )
        journal.doc["waiting"] = note
        journal.doc["waitingReason"] = waiting_reason_of(exc).value
        self._save(journal)
        self._index_acks(source, journal, ops, batches)
        log.warning(
            "run %s: paused after %d/%d batches (%s)",
            journal.run_id,
            done,
            total,
            type(exc).__name__,
        )
        return journal

    async def _send_batch(
        self, journal: _Journal, target: ProvisioningTarget, payload: BulkPayload
    ) -> BatchReceipt:
        try:
            return await target.send(payload)
        except BadRequestError as exc:
            return await self._isolate(journal, target, payload, exc)

    async def _isolate(
        self,
        journal: _Journal,
        target: ProvisioningTarget,
        payload: BulkPayload,
        refusal: BadRequestError,
    ) -> BatchReceipt:
        """Find the records a 400 is about, within one allowance of extra calls per run.

        The refused batch is split in halves and both are sent: if both are refused too,
        the 400 is not about single records (e.g. an attribute missing from the job's
        schema) and the run fails with the service's message instead of bisecting every
        batch. Otherwise the refused half is bisected (a refused group's halves: the left
        is sent; if accepted the right holds the bad record and is split unsent — the 400
        is assumed deterministic). When the run's allowance (``isolation_calls``) is spent,
        the undecided records are reported refused as a group.
        """
        rejected: dict[str, tuple[str | None, str]] = {}
        request_ids: list[str] = []

        def left() -> int:
            return self.isolation_calls - int(journal.doc.get("isolationCalls", 0))

        def reject(group: BulkPayload, err: BadRequestError) -> None:
            for ext in group.external_ids:
                rejected[ext] = (err.code or "BadRequest", str(err))

        async def send(group: BulkPayload) -> BadRequestError | None:
            journal.doc["isolationCalls"] = int(journal.doc.get("isolationCalls", 0)) + 1
            try:
                receipt = await target.send(group)
            except BadRequestError as err:
                return err
            if receipt.request_id:
                request_ids.append(receipt.request_id)
            for ext, why in receipt.rejected.items():
                rejected[ext] = why
            return None

        pending: list[tuple[BulkPayload, BadRequestError]] = []
        if len(payload) == 1 or left() < 2:
            reject(payload, refusal)
        else:
            half = len(payload) // 2
            lhs, rhs = split_payload(payload, [range(half), range(half, len(payload))])
            l_err, r_err = await send(lhs), await send(rhs)
            if l_err is not None and r_err is not None:
                raise _SystemicRefusal(str(l_err), code=l_err.code, request_id=l_err.request_id)
            pending.extend((g, e) for g, e in ((lhs, l_err), (rhs, r_err)) if e is not None)
        while pending:
            group, err = pending.pop()
            if len(group) == 1 or left() <= 0:
                reject(group, err)
                continue
            half = len(group) // 2
            lhs, rhs = split_payload(group, [range(half), range(half, len(group))])
            l_err = await send(lhs)
            if l_err is None:
                pending.append((rhs, err))
                continue
            pending.append((lhs, l_err))
            if left() <= 0:
                reject(rhs, err)
                continue
            r_err = await send(rhs)
            if r_err is not None:
                pending.append((rhs, r_err))
        return BatchReceipt(
            request_id=request_ids[0] if request_ids else refusal.request_id,
            rejected=rejected,
        )

    def _note_whole_refusal(
        self, journal: _Journal, payload: BulkPayload, receipt: BatchReceipt
    ) -> None:
        """Two batches in a row refused record by record is systemic, not bad data."""
        if receipt.rejected and len(receipt.rejected) >= len(payload):
            streak = int(journal.doc.get("refusedInARow", 0)) + 1
            journal.doc["refusedInARow"] = streak
            if streak >= 2:
                code, message = next(iter(receipt.rejected.values()))
                raise _SystemicRefusal(
                    f"two batches in a row were refused whole: {message}", code=code
                )
        else:
            journal.doc["refusedInARow"] = 0

    def _index_acks(
        self,
        source: str,
        journal: _Journal,
        ops: list[_PlannedOp] | None = None,
        batches: list[BulkPayload] | None = None,
    ) -> None:
        """Fold acknowledged batches into the record index (idempotent, resumable).

        Accepted records get the planned fingerprint and payload. Records the service
        refused (400) keep their last *accepted* fingerprint, payload and active flag;
        the fingerprint of what was refused is kept apart (``attempted/<source>``) so an
        unchanged refused record is not sent again until its data changes or an operator
        retries it.
        """
        done = int(journal.doc.get("indexed", 0))
        acked = len(journal.batches)
        if done >= acked:
            return
        if ops is None:
            ops = self._load_plan(journal)
        if batches is None:
            batches = _batches(ops)
        by_id = {op.external_id: op for op in ops}
        index = self.store.load_records(source)
        attempted_doc = self.store.get_document(_attempted_key(source))
        attempted: dict[str, str] = (
            dict(attempted_doc[0].get("fingerprints") or {}) if attempted_doc else {}
        )
        attempted_before = dict(attempted)
        payloads: dict[str, Mapping[str, Any]] = {}
        for k in range(done, acked):
            meta = journal.batches[k]
            sent_at = int(datetime.fromisoformat(meta["sentAt"]).timestamp())
            refused: Mapping[str, list[Any]] = meta.get("rejected") or {}
            for ext in batches[int(meta.get("i", k))].external_ids:
                op = by_id[ext]
                if ext in refused:
                    old = index.entries.get(ext)
                    index.entries[ext] = RecordEntry(
                        fingerprint=old.fingerprint if old is not None else NEVER_ACCEPTED,
                        active=old.active if old is not None else False,
                        outcome=StateOutcome.FAILED.value,
                        error_code=refused[ext][0] or "BadRequest",
                        sent_at=sent_at,
                        run_id=journal.run_id,
                    )
                    attempted[ext] = op.fingerprint.hex()
                    continue
                index.entries[ext] = RecordEntry(
                    fingerprint=op.fingerprint,
                    active=op.active,
                    outcome=StateOutcome.SENT.value,
                    sent_at=sent_at,
                    run_id=journal.run_id,
                )
                attempted.pop(ext, None)
                payloads[ext] = op.data
        self.store.save_records(index, payloads=payloads)
        if attempted != attempted_before:
            body = {"source": source, "fingerprints": attempted}
            if attempted_doc is None:
                self.store.put_document(_attempted_key(source), body, if_none_match=True)
            else:
                self.store.put_document(_attempted_key(source), body, if_match=attempted_doc[1])
        journal.doc["indexed"] = acked
        self._save(journal)

    # -- reconcile --------------------------------------------------------------------

    def _sent_records(self, journal: _Journal) -> list[SentRecord]:
        ops = self._load_plan(journal)
        batches = _batches(ops)
        kinds = {op.external_id: op for op in ops}
        previous: dict[str, dict[str, list[Any]]] = {}
        out: list[SentRecord] = []
        for k, meta in enumerate(journal.batches):
            sent_at = datetime.fromisoformat(meta["sentAt"])
            refused = meta.get("rejected") or {}
            for ext in batches[int(meta.get("i", k))].external_ids:
                if ext in refused:
                    continue
                op = kinds[ext]
                after = None
                if op.prev and op.prev != journal.run_id:
                    if op.prev not in previous:
                        previous[op.prev] = self._load_outcomes(
                            _Journal({"runId": op.prev, "source": journal.source})
                        )
                    row = previous[op.prev].get(ext)
                    used = _dt(row[5]) if row is not None and len(row) > 5 else None
                    # The entry the previous run used is not this send's, unless it is
                    # later than this send (then the previous run took ours: no bound).
                    if used is not None and used < sent_at:
                        after = used
                out.append(SentRecord(ext, sent_at, meta.get("requestId"), op.kind, op.line, after))
        return out

    async def _reconcile(
        self, src: Source, journal: _Journal, target: ProvisioningTarget, health: Any
    ) -> _Journal:
        if journal.state is RunState.UPLOADED:
            self._transition(journal, RunState.RECONCILING, "reading provisioning logs")
        journal.doc["jobHealth"] = None if health.ok else health.message
        sent = self._sent_records(journal)
        cfg = self.config.reconciliation
        if sent:
            since = min(s.sent_at for s in sent) - cfg.skew
            entries = [e async for e in target.iter_logs(since)]
        else:
            entries = []
        result = reconcile(
            sent,
            (_as_mapping(e) or {} for e in entries),
            now=self.clock.now(),
            job_id=target.job_id,
            skew=cfg.skew,
            deadline=cfg.deadline,
        )
        outcomes = dict(result.outcomes)
        outcomes.update(self._refused_outcomes(journal))
        counts: dict[str, int] = {}
        for o in outcomes.values():
            counts[o.outcome.value] = counts.get(o.outcome.value, 0) + 1
        journal.doc["outcomes"] = dict(sorted(counts.items()))
        journal.doc["lastReconciledAt"] = _iso(self.clock.now())
        self._store_outcomes(journal, outcomes.values())
        self._apply_outcomes(src.name, journal.run_id, outcomes.values())
        if result.complete:
            self._transition(journal, RunState.DONE, _counts_text(journal.doc["outcomes"]))
            log.info("run %s: done %s", journal.run_id, journal.doc["outcomes"])
        else:
            self._save(journal)
        return journal

    def _refused_outcomes(self, journal: _Journal) -> dict[str, RecordOutcome]:
        """Records the service refused with 400 at upload: failed, no log entry expected."""
        out: dict[str, RecordOutcome] = {}
        lines: dict[str, int | None] | None = None
        for meta in journal.batches:
            for ext, (code, message) in (meta.get("rejected") or {}).items():
                if lines is None:
                    lines = {op.external_id: op.line for op in self._plan_or_empty(journal)}
                out[ext] = RecordOutcome(
                    external_id=ext,
                    outcome=Outcome.FAILED,
                    action="",
                    line=lines.get(ext),
                    request_id=meta.get("requestId"),
                    error_code=code or "BadRequest",
                    reason=message,
                )
        return out

    def _store_outcomes(self, journal: _Journal, outcomes: Iterable[RecordOutcome]) -> None:
        rows = [
            [
                o.external_id,
                o.outcome.value,
                o.error_code,
                o.reason,
                o.provisioning_action,
                _iso(o.activity_at) if o.activity_at is not None else None,
                o.log_id,
            ]
            for o in outcomes
        ]
        self.store.write_artifact(
            f"{journal.source}/{journal.run_id}/outcomes.json.gz",
            gzip.compress(orjson.dumps(rows), compresslevel=5),
            content_type="application/gzip",
        )

    def _load_outcomes(self, journal: _Journal) -> dict[str, list[Any]]:
        try:
            blob = self.store.read_artifact(f"{journal.source}/{journal.run_id}/outcomes.json.gz")
        except StateError:
            return {}
        return {row[0]: row for row in orjson.loads(gzip.decompress(blob))}

    def _apply_outcomes(self, source: str, run_id: str, outcomes: Iterable[RecordOutcome]) -> None:
        index = self.store.load_records(source)
        changed = False
        for o in outcomes:
            if o.outcome is Outcome.PENDING:
                continue
            entry = index.entries.get(o.external_id)
            if entry is None or entry.run_id != run_id:
                continue  # a later run has sent this record since; its outcome is newer
            value = o.outcome.value
            if entry.outcome != value or entry.error_code != o.error_code:
                entry.outcome = value
                entry.error_code = o.error_code
                changed = True
            if o.outcome is Outcome.FAILED and o.action == ChangeKind.JOINER.value and entry.active:
                # The create failed: nobody exists in Entra to count in the guard's
                # population or to disable later as a leaver.
                entry.active = False
                changed = True
        if changed:
            self.store.save_records(index)

    # -- bookkeeping ------------------------------------------------------------------

    def _repair(self, source: str) -> None:
        """Fold acknowledged-but-unindexed batches of any run into the index (crash repair)."""
        for key in self.store.list_documents(f"runs/{source}/"):
            got = self.store.get_document(key)
            if got is None:
                continue
            doc = got[0]
            if len(doc.get("batches") or []) > int(doc.get("indexed", 0)):
                log.info("run %s: recording acknowledged batches after an interruption", key)
                self._index_acks(source, _Journal(doc, got[1]))

    def _supersede_older_open_runs(self, src: Source, journal: _Journal) -> None:
        """End older runs this one replaces (it is about to be sent).

        Held and planned older runs are superseded in every mode. Older runs still
        uploading (or blocked) are superseded only in ``full`` mode, where this file
        carries everyone; in ``delta`` mode their unsent changes are not in this file, so
        they finish first.
        """
        extract_at = _dt(journal.doc.get("extractAt"))
        states = {RunState.HELD, RunState.PLANNED}
        if src.mode == "full":
            states |= {RunState.UPLOADING, RunState.BLOCKED}
        for key in self.store.list_documents(f"runs/{src.name}/"):
            if key == journal.key:
                continue
            got = self.store.get_document(key)
            if got is None:
                continue
            other = _Journal(got[0], got[1], lock=journal.lock)
            if other.state not in states:
                continue
            other_at = _dt(other.doc.get("extractAt"))
            if extract_at is not None and other_at is not None and other_at > extract_at:
                continue
            reason = f"superseded by newer extract run {journal.run_id}"
            self._stop_run(src.name, other, RunState.SUPERSEDED, reason)

    def _stop_run(self, source: str, journal: _Journal, state: RunState, reason: str) -> None:
        """End an unfinished run. Batches it already delivered still get reconciled: such a
        run goes to ``uploaded`` (partially) instead, with the reason kept."""
        key = "supersededReason" if state is RunState.SUPERSEDED else "discardedReason"
        journal.doc[key] = reason
        if journal.batches:
            self._index_acks(source, journal)
            total = int(journal.doc.get("batchesTotal", 0))
            done = len(journal.batches)
            journal.doc.setdefault("firstSentAt", min(b["sentAt"] for b in journal.batches))
            self._transition(
                journal,
                RunState.UPLOADED,
                f"{reason}; the {done} of {total} batches already delivered are reconciled",
            )
        else:
            self._transition(journal, state, reason)
        self._write_reports(journal)

    def _last_applied(self, source: str) -> datetime | None:
        got = self.store.get_document(_source_key(source))
        return _dt(got[0].get("lastAppliedExtractAt")) if got else None

    def _mark_applied(self, source: str, journal: _Journal) -> None:
        got = self.store.get_document(_source_key(source))
        doc = dict(got[0]) if got else {"source": source}
        new = _dt(journal.doc.get("extractAt"))
        old = _dt(doc.get("lastAppliedExtractAt"))
        if new is not None and (old is None or new >= old):
            doc["lastAppliedExtractAt"] = _iso(new)
            doc["lastAppliedRunId"] = journal.run_id
        if got is None:
            self.store.put_document(_source_key(source), doc, if_none_match=True)
        else:
            self.store.put_document(_source_key(source), doc, if_match=got[1])

    def _event(self, journal: _Journal, state: RunState, detail: str) -> None:
        journal.doc.setdefault("timeline", []).append(
            {"at": _iso(self.clock.now()), "state": state.value, "detail": detail}
        )

    def _transition(self, journal: _Journal, state: RunState, detail: str = "") -> None:
        journal.doc["state"] = state.value
        if state is not RunState.UPLOADING:
            journal.doc.pop("waiting", None)
            journal.doc.pop("waitingReason", None)
        self._event(journal, state, detail)
        self._save(journal)

    def _save(self, journal: _Journal) -> None:
        """Write the journal (small: counters and batch metadata, never per-record data),
        only while the source's lock is still ours."""
        _check_lock(journal)
        journal.doc["updatedAt"] = _iso(self.clock.now())
        if journal.etag is None:
            journal.etag = self.store.put_document(journal.key, journal.doc, if_none_match=True)
        else:
            journal.etag = self.store.put_document(journal.key, journal.doc, if_match=journal.etag)

    def _load(self, source: str, run_id: str) -> _Journal | None:
        got = self.store.get_document(_run_key(source, run_id))
        return None if got is None else _Journal(got[0], got[1])

    def _require(self, source: str, run_id: str) -> _Journal:
        journal = self._load(source, run_id)
        if journal is None:
            raise RunError(f"no run {run_id} for source {source}; see `connector runs list`")
        return journal

    def _find(self, run_id: str) -> tuple[Source, str]:
        for src in self.config.sources:
            if run_id.startswith(src.name + "-") and self._load(src.name, run_id) is not None:
                return src, run_id
        raise RunError(f"no run {run_id!r} in the state store; see `connector runs list`")

    # -- reports ----------------------------------------------------------------------

    def report_input(self, journal_doc: Mapping[str, Any]) -> ReportInput:
        """Build a report's data from a journal (and the run's stored plan and outcomes)."""
        journal = _Journal(dict(journal_doc))
        outcomes = self._load_outcomes(journal)
        records: list[RecordRow] = []
        plan_batches = self._plan_batches(journal)
        acked = {
            ext: meta
            for k, meta in enumerate(journal.batches)
            if int(meta.get("i", k)) < len(plan_batches)
            for ext in plan_batches[int(meta.get("i", k))].external_ids
        }
        for op in self._plan_or_empty(journal):
            meta = acked.get(op.external_id)
            row = outcomes.get(op.external_id)
            if row is not None:
                outcome, code, reason = row[1], row[2], row[3]
            else:
                outcome, code, reason = ("pending" if meta else "not sent"), None, None
            records.append(
                RecordRow(
                    external_id=op.external_id,
                    action=op.kind,
                    outcome=outcome,
                    line=op.line,
                    request_id=meta.get("requestId") if meta else None,
                    error_code=code,
                    reason=reason,
                )
            )
        counts = dict(journal.doc.get("outcomes") or {})
        if not counts:
            for r in records:
                counts[r.outcome] = counts.get(r.outcome, 0) + 1
        status = journal.state.value
        if journal.state is RunState.UPLOADING and journal.doc.get("waiting"):
            status += " (waiting)"
        rejected = self._load_rejected(journal)
        return ReportInput(
            run_id=journal.run_id,
            source=journal.source,
            file_name=str(journal.doc.get("file") or ""),
            status=status,
            generated_at=self.clock.now(),
            planned=dict(journal.doc.get("planned") or {}),
            outcome_counts=counts,
            records=records,
            timeline=[
                TimelineEvent(datetime.fromisoformat(e["at"]), e["state"], e.get("detail", ""))
                for e in journal.doc.get("timeline", [])
            ],
            rejected=rejected,
            request_ids=[b["requestId"] for b in journal.batches if b.get("requestId")],
            held_reason=journal.doc.get("heldReason") if journal.state is RunState.HELD else None,
            failed_reason=journal.doc.get("failedReason")
            or journal.doc.get("blockedReason")
            or journal.doc.get("supersededReason")
            or journal.doc.get("discardedReason")
            or journal.doc.get("waiting"),
            job_health=journal.doc.get("jobHealth"),
            batches_total=int(journal.doc.get("batchesTotal", 0)),
            batches_done=len(journal.batches),
            extract_at=_dt(journal.doc.get("extractAt")),
        )

    def _plan_or_empty(self, journal: _Journal) -> list[_PlannedOp]:
        try:
            return self._load_plan(journal)
        except RunError:
            return []

    def _plan_batches(self, journal: _Journal) -> list[BulkPayload]:
        return _batches(self._plan_or_empty(journal))

    def _write_reports(self, journal: _Journal) -> dict[str, str]:
        data = self.report_input(journal.doc)

        def put(name: str, body: bytes, ctype: str) -> str:
            return self.store.write_artifact(
                f"{journal.source}/{journal.run_id}/{name}", body, content_type=ctype
            )

        paths = {k: str(v) for k, v in write_reports(data, put).items()}
        return paths

    def _summary(self, journal: _Journal) -> RunSummary:
        d = journal.doc
        return RunSummary(
            run_id=journal.run_id,
            source=journal.source,
            file_name=str(d.get("file") or ""),
            state=journal.state.value,
            planned=dict(d.get("planned") or {}),
            outcomes=dict(d.get("outcomes") or {}),
            held_reason=d.get("heldReason") if journal.state is RunState.HELD else None,
            failed_reason=d.get("failedReason")
            or d.get("blockedReason")
            or d.get("supersededReason")
            or d.get("discardedReason"),
            waiting=d.get("waiting") if journal.state is RunState.UPLOADING else None,
            waiting_reason=_waiting_reason(d) if journal.state is RunState.UPLOADING else None,
            job_health=d.get("jobHealth"),
            batches_total=int(d.get("batchesTotal", 0)),
            batches_done=len(d.get("batches") or []),
            reports={
                n: self.store.artifact_location(f"{journal.source}/{journal.run_id}/{n}")
                for n in ("report.html", "report.json", "failures.csv")
            },
            received_at=d.get("receivedAt"),
        )


# -- helpers --------------------------------------------------------------------------------


def _waiting_reason(doc: Mapping[str, Any]) -> WaitingReason | None:
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


def _counts_text(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{v} {k}" for k, v in counts.items()) or "nothing sent"


def _as_mapping(value: Any) -> Mapping[str, Any] | None:
    """Graph models (pydantic) or plain dicts, as Graph-shaped dicts."""
    if value is None or isinstance(value, Mapping):
        return value
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        out = dump(by_alias=True, mode="json")
        return out if isinstance(out, Mapping) else None
    raise TypeError(f"expected a mapping or a pydantic model, got {type(value).__name__}")


@contextlib.contextmanager
def _spooled(stream: IO[bytes] | Path, name: str) -> Iterator[tuple[Path, str]]:
    """A file path with the extract's bytes and their SHA-256.

    A stream is copied to a private temporary folder under the dropped file's own base
    name, so every message that names the file (reader errors, rejected rows) names the
    file the operator dropped, not a spool file.
    """
    if isinstance(stream, Path):
        digest = hashlib.sha256()
        with stream.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        yield stream, digest.hexdigest()
        return
    base = Path(name.replace("\\", "/").rsplit("/", 1)[-1]).name or "extract.csv"
    if base in (".", ".."):
        base = "extract.csv"
    with tempfile.TemporaryDirectory(prefix="connector-extract-") as folder:
        path = Path(folder) / base
        digest = hashlib.sha256()
        with path.open("wb") as out:
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                digest.update(chunk)
                out.write(chunk)
        yield path, digest.hexdigest()


class GraphTarget:
    """A :class:`ProvisioningTarget` on the Graph client (or the emulator through it).

    ``send`` posts one bulk request (paced, budgeted and retried by the client) and
    raises the typed error when it is not accepted: a 400 as
    :class:`~connector.errors.BadRequestError`, so the engine isolates the offending
    records within its per-run allowance; a spent budget, "bucket full" or an outage as
    the error that leaves the run waiting (bulkUpload upserts, so re-sending is safe).
    Several ``send`` calls may run at once; the client's limiter paces them together.
    """

    def __init__(self, client: GraphClient, tokens: TokenProvider | None = None) -> None:
        self.client = client
        self._tokens = tokens

    @property
    def job_id(self) -> str | None:
        return self.client.endpoint.job_id

    async def send(self, payload: BulkPayload) -> BatchReceipt:
        delivery = await self.client.post_bulk(payload)
        return BatchReceipt(
            request_id=delivery.request_id, client_request_id=delivery.client_request_id
        )

    async def preflight(self) -> None:
        """Obtain a token now: an identity that cannot get one fails here, not mid-run."""
        if self._tokens is not None:
            await self._tokens.get_token()

    def iter_logs(self, since: datetime) -> AsyncIterator[Any]:
        return self.client.iter_provisioning_logs(LogQuery(since=since))

    async def get_job(self) -> Any:
        try:
            return await self.client.get_job()
        except NotFoundError:
            return None

    async def aclose(self) -> None:
        await self.client.aclose()


def source_cloud(src: Source) -> Cloud:
    """The Graph cloud of a source (the config may say ``usgovdod`` where Cloud says ``dod``)."""
    return Cloud("dod" if src.cloud == "usgovdod" else src.cloud)


def graph_targets(
    config: SourcesConfig,
    store: StateStore,
    tokens: TokenProvider | Callable[[Source], TokenProvider],
    clock: Clock,
    *,
    allow_loopback: bool = False,
    transport: httpx.AsyncBaseTransport | None = None,
    endpoint_for: Callable[[Source], str] | None = None,
    retry: RetryPolicy | None = None,
    max_in_flight: int = DEFAULT_WINDOW,
) -> TargetFactory:
    """A :data:`TargetFactory` building a paced, budgeted Graph client per source.

    The daily call budget (``daily_call_budget``, tenant-wide per the Entra docs) is
    counted in the state store, so every process sharing the store shares the budget.
    One rate limiter per source is shared by every client the factory builds, so
    back-to-back runs stay under the 40-calls-per-5-s window together.
    ``endpoint_for`` overrides a source's endpoint URL (the local emulator: the sources
    config accepts only https Graph URLs). ``retry`` bounds how long a call may wait:
    a Functions host passes a short policy (a long ``Retry-After`` or repeated errors
    then leave the run waiting for the next timer tick instead of holding the function).
    ``max_in_flight`` should be at least the engine's ``window``.
    """
    limiters: dict[str, SlidingWindowLimiter] = {}

    def factory(src: Source) -> ProvisioningTarget:
        if endpoint_for is not None:
            endpoint = ProvisioningEndpoint.parse(endpoint_for(src), allow_loopback=allow_loopback)
        elif src.endpoint is not None:
            endpoint = ProvisioningEndpoint.parse(src.endpoint, allow_loopback=allow_loopback)
        elif src.service_principal_id and src.job_id:
            endpoint = ProvisioningEndpoint.build(
                src.service_principal_id, src.job_id, cloud=source_cloud(src)
            )
        else:  # pragma: no cover - the config model refuses this
            raise ConfigError(f"source {src.name} has no provisioning endpoint")
        provider = tokens(src) if callable(tokens) else tokens
        budget = DailyBudget(config.daily_call_budget, StoreCallBudget(store), clock=clock)
        limiter = limiters.setdefault(src.name, SlidingWindowLimiter(clock=clock))
        client = GraphClient(
            endpoint,
            provider,
            transport=transport,
            clock=clock,
            limiter=limiter,
            budget=budget,
            retry=retry,
            allow_loopback=allow_loopback,
            max_in_flight=max_in_flight,
        )
        return GraphTarget(client, provider)

    return factory


class _MappedExtract:
    """Adapts :class:`connector.records.RecordStream` to :class:`ExtractRecords`."""

    def __init__(self, stream: RecordStream) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[MappedRecord]:
        try:
            yield from self._stream
        finally:
            self._stream.close()

    @property
    def rejected(self) -> list[RejectedRow]:
        return [
            RejectedRow(
                line=r.line,
                reason=f"{r.reason_code}: {r.message}",
                external_id=r.external_id or None,
            )
            for r in self._stream.rejected
        ]

    @property
    def rows(self) -> int:
        return self._stream.stats.rows_read


def read_mapped_records(source: Source, path: Path) -> ExtractRecords:
    """The default record reader: the source's mapping applied to the extract's rows."""
    spec: str | Path
    if source.mapping_path is not None:
        spec = source.mapping_path
    else:
        spec = yaml.safe_dump(source.mapping, sort_keys=False)
    mapping = load_mapping(spec)
    # The engine spools streams under the dropped file's name, so path.name names it.
    return _MappedExtract(iter_records(path, mapping, label=path.name))
