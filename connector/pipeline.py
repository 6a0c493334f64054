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

import contextlib
import gzip
import hashlib
import logging
import os
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
    BadRequestError,
    ConfigError,
    ConnectorError,
    GraphError,
    NotFoundError,
    QuotaExhaustedError,
    RunError,
    StateError,
)
from connector.graph.auth import TokenProvider
from connector.graph.client import DeferReason, GraphClient, LogQuery
from connector.graph.endpoint import Cloud, ProvisioningEndpoint
from connector.mapping import load_mapping
from connector.pacing import DailyBudget
from connector.reconcile import (
    Outcome,
    RecordOutcome,
    SentRecord,
    check_job_health,
    reconcile,
)
from connector.records import MappedRecord, RecordStream, iter_records
from connector.report import (
    RecordRow,
    RejectedRow,
    ReportInput,
    TimelineEvent,
    write_reports,
)
from connector.scim import BulkOperation, BulkPayload, build_bulk_requests, make_bulk_id
from connector.state.base import Outcome as StateOutcome
from connector.state.base import RecordEntry, RecordIndex, StateStore, StoreCallBudget

__all__ = [
    "OPEN_STATES",
    "BatchReceipt",
    "Engine",
    "ExtractRecords",
    "GraphTarget",
    "ProvisioningTarget",
    "RunState",
    "RunSummary",
    "TargetFactory",
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
    }
)
_UNSENT_STATES = frozenset({RunState.RECEIVED, RunState.PLANNED, RunState.HELD})

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
    job_health: str | None = None
    batches_total: int = 0
    batches_done: int = 0
    reports: dict[str, str] = field(default_factory=dict)
    received_at: str | None = None


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


# -- plan storage ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _PlannedOp:
    kind: str
    external_id: str
    line: int | None
    fingerprint: bytes
    active: bool
    data: Mapping[str, Any]


def _encode_plan(changes: Iterable[Change]) -> bytes:
    buf = bytearray()
    for c in changes:
        if c.data is None:
            continue
        buf += orjson.dumps(
            [c.kind.value, c.external_id, c.line, c.fingerprint.hex(), c.active, c.data]
        )
        buf += b"\n"
    return gzip.compress(bytes(buf), compresslevel=5)


def _decode_plan(blob: bytes) -> list[_PlannedOp]:
    ops: list[_PlannedOp] = []
    for raw in gzip.decompress(blob).splitlines():
        if not raw:
            continue
        kind, ext, line, fp, active, data = orjson.loads(raw)
        ops.append(_PlannedOp(kind, ext, line, bytes.fromhex(fp), bool(active), data))
    return ops


def _batches(ops: list[_PlannedOp]) -> list[BulkPayload]:
    """Deterministic: the same plan always gives the same batches in the same order."""
    return list(
        build_bulk_requests(
            BulkOperation(make_bulk_id(op.external_id, op.line), op.external_id, op.data)
            for op in ops
        )
    )


# -- the engine -----------------------------------------------------------------------------


class Engine:
    """The sync engine: one object per process, shared by the CLI and the Functions app.

    ``targets`` builds the provisioning target of a source (Graph client or emulator);
    ``records`` reads and maps an extract file (default: :func:`read_mapped_records`).
    All time comes from ``clock``.
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
    ) -> None:
        self.config = config
        self.store = store
        self.targets = targets
        self.clock = clock
        self.records = records or read_mapped_records
        self.owner = owner or f"engine-{uuid.uuid4().hex[:8]}"

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
        with _spooled(stream) as (path, sha):
            run_id = make_run_id(src.name, sha)
            if dry_run:
                return self._dry_run(src, name, path, run_id, full_resend=full_resend)
            with self.store.lock(src.name, owner=self.owner):
                self._repair(src.name)
                existing = self._load(src.name, run_id)
                if existing is not None and not (
                    existing.state is RunState.FAILED and not existing.batches
                ):
                    log.info("run %s: file already received; nothing to do", run_id)
                    summary = self._summary(existing)
                    summary.duplicate = True
                    return summary
                if existing is not None:
                    # It failed before sending anything (e.g. a mapping error since fixed):
                    # delivering the same file again plans it again.
                    journal = existing
                    journal.doc.pop("failedReason", None)
                    self._transition(journal, RunState.RECEIVED, f"file {name} received again")
                else:
                    journal = self._receive(src, run_id, name, received)
                journal = self._plan(src, journal, path, full_resend=full_resend)
                if journal.state is RunState.UPLOADING:
                    journal = await self._upload(src, journal, progress)
                self._write_reports(journal)
                return self._summary(journal)

    async def resume_waiting(self, progress: ProgressCallback | None = None) -> list[RunSummary]:
        """Continue every run left uploading, and release held runs that have an
        approval marker document (``approvals/<run id>``)."""
        out: list[RunSummary] = []
        for src in self.config.sources:
            for key in self.store.list_documents(f"runs/{src.name}/"):
                run_id = key.rsplit("/", 1)[-1]
                marker = self.store.get_document(_approval_key(run_id))
                got = self.store.get_document(key)
                if got is None:
                    continue
                state = RunState(got[0]["state"])
                if state is RunState.HELD and marker is not None:
                    by = str(marker[0].get("by") or "approval marker")
                    out.append(await self.approve(run_id, by=by, progress=progress))
                elif state is RunState.UPLOADING:
                    out.append(await self._continue(src, run_id, progress))
        return out

    async def reconcile_open_runs(self) -> list[RunSummary]:
        """One reconciliation pass over every uploaded/reconciling run of every source."""
        out: list[RunSummary] = []
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
                with self.store.lock(src.name, owner=self.owner):
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
                        journal = await self._reconcile(src, journal, target, health)
                        self._write_reports(journal)
                        out.append(self._summary(journal))
            finally:
                await target.aclose()
        return out

    async def approve(
        self, run_id: str, *, by: str = "operator", progress: ProgressCallback | None = None
    ) -> RunSummary:
        """Release a held run and upload it now."""
        src, _ = self._find(run_id)
        with self.store.lock(src.name, owner=self.owner):
            self._repair(src.name)
            journal = self._require(src.name, run_id)
            if journal.state is not RunState.HELD:
                raise RunError(
                    f"run {run_id} is {journal.state.value}, not held; only a held run can be"
                    " approved (see `connector runs show " + run_id + "`)"
                )
            last = self._last_applied(src.name)
            extract_at = _dt(journal.doc.get("extractAt"))
            if last is not None and extract_at is not None and extract_at < last:
                raise RunError(
                    f"run {run_id} holds an extract from {_iso(extract_at)}, older than the last"
                    f" one applied ({_iso(last)}); discard it instead"
                )
            journal.doc["approvedBy"] = by
            self._transition(journal, RunState.UPLOADING, f"approved by {by}")
            self._mark_applied(src.name, journal)
            with contextlib.suppress(StateError):
                self.store.delete_document(_approval_key(run_id))
            journal = await self._upload(src, journal, progress)
            self._write_reports(journal)
            return self._summary(journal)

    def discard(self, run_id: str, *, by: str = "operator") -> RunSummary:
        """Drop a held (or waiting) run: nothing more of it is sent."""
        src, _ = self._find(run_id)
        with self.store.lock(src.name, owner=self.owner):
            self._repair(src.name)
            journal = self._require(src.name, run_id)
            if journal.state not in (RunState.HELD, RunState.PLANNED, RunState.UPLOADING):
                raise RunError(
                    f"run {run_id} is {journal.state.value}; only a held, planned or waiting run"
                    " can be discarded"
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
        the payload last sent. Returns the new run; RunError when there is nothing to retry.
        """
        src, _ = self._find(run_id)
        with self.store.lock(src.name, owner=self.owner):
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
            payloads = self.store.get_payloads(src.name, failed)
            lines: dict[str, int] = dict(parent.doc.get("lines") or {})
            changes = [
                Change(
                    ChangeKind.RETRY,
                    ext,
                    lines.get(ext),
                    payloads[ext],
                    index.entries[ext].fingerprint,
                    index.entries[ext].active,
                )
                for ext in failed
                if ext in payloads
            ]
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
                }
            )
            self._event(journal, RunState.RECEIVED, f"retry of {len(changes)} failed records")
            journal.etag = self.store.put_document(journal.key, journal.doc, if_none_match=True)
            self._store_plan(journal, changes)
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

    def _receive(self, src: Source, run_id: str, name: str, received: datetime) -> _Journal:
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
            }
        )
        self._event(journal, RunState.RECEIVED, f"file {name}")
        journal.etag = self.store.put_document(journal.key, journal.doc, if_none_match=True)
        log.info("run %s: received for source %s", run_id, src.name)
        return journal

    def _plan(self, src: Source, journal: _Journal, path: Path, *, full_resend: bool) -> _Journal:
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
        except ConnectorError as exc:
            journal.doc["failedReason"] = str(exc)
            self._transition(journal, RunState.FAILED, str(exc))
            log.error("run %s: failed to plan: %s", journal.run_id, exc)
            return journal
        counts = plan.counts()
        counts["rejected"] = len(rejected)
        journal.doc["planned"] = counts
        journal.doc["rowsInFile"] = rows
        journal.doc["rejected"] = [
            {"line": r.line, "reason": r.reason, "externalId": r.external_id} for r in rejected
        ]
        journal.doc["lines"] = {c.external_id: c.line for c in plan.changes if c.line is not None}
        self._store_plan(journal, plan.to_send)
        self._transition(
            journal,
            RunState.PLANNED,
            f"{plan.joiners} joiners, {plan.movers} movers, {len(plan.leavers)} leavers,"
            f" {plan.unchanged} unchanged, {len(rejected)} rejected",
        )
        hold = check_guard(
            plan, index.active_count(), rows, src.thresholds, rejected_rows=len(rejected)
        )
        self._supersede_older_open_runs(src.name, journal)
        if hold is not None:
            journal.doc["hold"] = hold.to_dict()
            journal.doc["heldReason"] = hold.message
            self._transition(journal, RunState.HELD, hold.message)
            log.warning("run %s: held by the mass-change guard (%s)", journal.run_id, hold.code)
            return journal
        self._mark_applied(src.name, journal)
        self._transition(journal, RunState.UPLOADING, f"{len(plan.to_send)} records to send")
        return journal

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
        n_batches = sum(1 for _ in build_bulk_requests(_ops_of(plan.to_send)))
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

    def _store_plan(self, journal: _Journal, changes: Iterable[Change]) -> None:
        blob = _encode_plan(changes)
        self.store.write_artifact(
            f"{journal.source}/{journal.run_id}/plan.jsonl.gz",
            blob,
            content_type="application/gzip",
        )
        ops = _decode_plan(blob)
        journal.doc["batchesTotal"] = len(_batches(ops))
        journal.doc["toSend"] = len(ops)

    def _load_plan(self, journal: _Journal) -> list[_PlannedOp]:
        try:
            blob = self.store.read_artifact(f"{journal.source}/{journal.run_id}/plan.jsonl.gz")
        except StateError as exc:
            raise RunError(
                f"run {journal.run_id}: its stored plan is missing ({exc}); discard the run and"
                " deliver the extract again"
            ) from exc
        return _decode_plan(blob)

    # -- upload -----------------------------------------------------------------------

    async def _continue(
        self, src: Source, run_id: str, progress: ProgressCallback | None
    ) -> RunSummary:
        with self.store.lock(src.name, owner=self.owner):
            self._repair(src.name)
            journal = self._require(src.name, run_id)
            if journal.state is RunState.UPLOADING:
                journal = await self._upload(src, journal, progress)
                self._write_reports(journal)
            return self._summary(journal)

    async def _upload(
        self, src: Source, journal: _Journal, progress: ProgressCallback | None
    ) -> _Journal:
        ops = self._load_plan(journal)
        batches = _batches(ops)
        total = len(batches)
        journal.doc["batchesTotal"] = total
        start = len(journal.batches)
        if progress is not None:
            progress(start, total)
        if start < total:
            target = self.targets(src)
            try:
                for i in range(start, total):
                    payload = batches[i]
                    try:
                        receipt = await target.send(payload)
                    except BadRequestError as exc:
                        reason = (
                            f"batch {i + 1}/{total} was refused (400): {exc}; the payload is"
                            " invalid for this job, fix the mapping or the job schema"
                        )
                        journal.doc["failedReason"] = reason
                        self._index_acks(src.name, journal, ops, batches)
                        self._transition(journal, RunState.FAILED, reason)
                        return journal
                    except GraphError as exc:
                        note = f"{type(exc).__name__}: {exc}"
                        journal.doc["waits"] = int(journal.doc.get("waits", 0)) + 1
                        if journal.doc.get("waiting") != note:
                            # One timeline entry per new reason, not one per timer tick.
                            self._event(
                                journal,
                                RunState.UPLOADING,
                                f"waiting after {i}/{total} batches: {note}",
                            )
                        journal.doc["waiting"] = note
                        self._save(journal)
                        self._index_acks(src.name, journal, ops, batches)
                        log.warning(
                            "run %s: paused at batch %d/%d (%s)",
                            journal.run_id,
                            i + 1,
                            total,
                            type(exc).__name__,
                        )
                        return journal
                    meta: dict[str, Any] = {
                        "n": len(payload),
                        "sentAt": _iso(self.clock.now()),
                        "requestId": receipt.request_id,
                    }
                    if receipt.rejected:
                        meta["rejected"] = {k: list(v) for k, v in receipt.rejected.items()}
                    journal.batches.append(meta)
                    journal.doc.pop("waiting", None)
                    self._save(journal)
                    if progress is not None:
                        progress(i + 1, total)
            finally:
                await target.aclose()
        self._index_acks(src.name, journal, ops, batches)
        first = journal.batches[0]["sentAt"] if journal.batches else _iso(self.clock.now())
        journal.doc.setdefault("firstSentAt", first)
        self._transition(
            journal, RunState.UPLOADED, f"{total} batch{'es' if total != 1 else ''} acknowledged"
        )
        log.info("run %s: uploaded %d batches", journal.run_id, total)
        return journal

    def _index_acks(
        self,
        source: str,
        journal: _Journal,
        ops: list[_PlannedOp] | None = None,
        batches: list[BulkPayload] | None = None,
    ) -> None:
        """Fold acknowledged batches into the record index (idempotent, resumable)."""
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
        payloads: dict[str, Mapping[str, Any]] = {}
        for i in range(done, acked):
            meta = journal.batches[i]
            sent_at = int(datetime.fromisoformat(meta["sentAt"]).timestamp())
            refused: Mapping[str, list[Any]] = meta.get("rejected") or {}
            for ext in batches[i].external_ids:
                op = by_id[ext]
                if ext in refused:
                    # Refused with 400: remember the attempt (so an unchanged record is not
                    # re-sent in a loop) but keep the last *accepted* payload and state.
                    old = index.entries.get(ext)
                    index.entries[ext] = RecordEntry(
                        fingerprint=op.fingerprint,
                        active=old.active if old is not None else False,
                        outcome=StateOutcome.FAILED.value,
                        error_code=refused[ext][0] or "BadRequest",
                        sent_at=sent_at,
                        run_id=journal.run_id,
                    )
                    continue
                index.entries[ext] = RecordEntry(
                    fingerprint=op.fingerprint,
                    active=op.active,
                    outcome=StateOutcome.SENT.value,
                    sent_at=sent_at,
                    run_id=journal.run_id,
                )
                payloads[ext] = op.data
        self.store.save_records(index, payloads=payloads)
        journal.doc["indexed"] = acked
        self._save(journal)

    # -- reconcile --------------------------------------------------------------------

    def _sent_records(self, journal: _Journal) -> list[SentRecord]:
        ops = self._load_plan(journal)
        batches = _batches(ops)
        kinds = {op.external_id: op for op in ops}
        out: list[SentRecord] = []
        for i, meta in enumerate(journal.batches):
            sent_at = datetime.fromisoformat(meta["sentAt"])
            refused = meta.get("rejected") or {}
            for ext in batches[i].external_ids:
                if ext in refused:
                    continue
                op = kinds[ext]
                out.append(SentRecord(ext, sent_at, meta.get("requestId"), op.kind, op.line))
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
        lines: Mapping[str, int] = journal.doc.get("lines") or {}
        for meta in journal.batches:
            for ext, (code, message) in (meta.get("rejected") or {}).items():
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
            [o.external_id, o.outcome.value, o.error_code, o.reason, o.provisioning_action]
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

    def _supersede_older_open_runs(self, source: str, journal: _Journal) -> None:
        extract_at = _dt(journal.doc.get("extractAt"))
        for key in self.store.list_documents(f"runs/{source}/"):
            if key == journal.key:
                continue
            got = self.store.get_document(key)
            if got is None:
                continue
            other = _Journal(got[0], got[1])
            if other.state not in (RunState.HELD, RunState.PLANNED, RunState.UPLOADING):
                continue
            other_at = _dt(other.doc.get("extractAt"))
            if extract_at is not None and other_at is not None and other_at > extract_at:
                continue
            reason = f"superseded by newer extract run {journal.run_id}"
            self._stop_run(source, other, RunState.SUPERSEDED, reason)

    def _stop_run(self, source: str, journal: _Journal, state: RunState, reason: str) -> None:
        """End an unfinished run. Batches it already delivered still get reconciled: such a
        run goes to ``uploaded`` (partially) instead, with the reason kept."""
        key = "supersededReason" if state is RunState.SUPERSEDED else "discardedReason"
        journal.doc[key] = reason
        if journal.batches:
            self._index_acks(source, journal)
            total = int(journal.doc.get("batchesTotal", 0))
            done = len(journal.batches)
            journal.doc.setdefault("firstSentAt", journal.batches[0]["sentAt"])
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
        self._event(journal, state, detail)
        self._save(journal)

    def _save(self, journal: _Journal) -> None:
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
        acked = {
            ext: meta
            for meta, payload in zip(journal.batches, self._plan_batches(journal), strict=False)
            for ext in payload.external_ids
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
            rejected=[
                RejectedRow(int(r["line"]), str(r["reason"]), r.get("externalId"))
                for r in journal.doc.get("rejected", [])
            ],
            request_ids=[b["requestId"] for b in journal.batches if b.get("requestId")],
            held_reason=journal.doc.get("heldReason") if journal.state is RunState.HELD else None,
            failed_reason=journal.doc.get("failedReason")
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
            or d.get("supersededReason")
            or d.get("discardedReason"),
            waiting=d.get("waiting") if journal.state is RunState.UPLOADING else None,
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


def _ops_of(changes: Iterable[Change]) -> Iterator[BulkOperation]:
    for c in changes:
        if c.data is not None:
            yield BulkOperation(make_bulk_id(c.external_id, c.line), c.external_id, c.data)


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
def _spooled(stream: IO[bytes] | Path) -> Iterator[tuple[Path, str]]:
    """A file path with the extract's bytes and their SHA-256 (copies streams to a temp file)."""
    if isinstance(stream, Path):
        digest = hashlib.sha256()
        with stream.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        yield stream, digest.hexdigest()
        return
    fd, name = tempfile.mkstemp(prefix="connector-extract-", suffix=".csv")
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                digest.update(chunk)
                out.write(chunk)
        yield Path(name), digest.hexdigest()
    finally:
        with contextlib.suppress(OSError):
            os.unlink(name)


class GraphTarget:
    """A :class:`ProvisioningTarget` on the Graph client (or the emulator through it).

    Each batch goes through :meth:`GraphClient.upload` so a 400 is bisected down to the
    offending records (reported as rejected) while the rest of the batch is delivered.
    A batch with anything deferred (quota, bucket full, outage) counts as not
    acknowledged and is re-sent whole next time (bulkUpload upserts, so that is safe).
    """

    def __init__(self, client: GraphClient) -> None:
        self.client = client

    @property
    def job_id(self) -> str | None:
        return self.client.endpoint.job_id

    async def send(self, payload: BulkPayload) -> BatchReceipt:
        result = await self.client.upload([payload])
        outcome = result.outcomes[0]
        if outcome.deferred:
            if isinstance(result.error, ConnectorError):
                raise result.error
            reason = outcome.defer_reason.value if outcome.defer_reason else "unknown"
            if outcome.defer_reason is DeferReason.QUOTA:
                raise QuotaExhaustedError(outcome.error or "the daily call budget is spent")
            raise GraphError(f"batch deferred ({reason}): {outcome.error or 'no detail'}")
        rejected = {r.external_id: (r.code, r.message) for r in outcome.rejected}
        ids = [d.request_id for d in outcome.accepted if d.request_id]
        if not ids:
            ids = [r.request_id for r in outcome.rejected if r.request_id]
        client_ids = [d.client_request_id for d in outcome.accepted]
        return BatchReceipt(
            request_id=ids[0] if ids else None,
            client_request_id=client_ids[0] if client_ids else None,
            rejected=rejected,
        )

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
    """The Graph cloud of a source (the config says ``usgovdod`` where Cloud says ``dod``)."""
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
) -> TargetFactory:
    """A :data:`TargetFactory` building a paced, budgeted Graph client per source.

    The daily call budget (``daily_call_budget``, tenant-wide per the Entra docs) is
    counted in the state store, so every process sharing the store shares the budget.
    ``endpoint_for`` overrides a source's endpoint URL (the local emulator: the sources
    config accepts only https Graph URLs).
    """

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
        client = GraphClient(
            endpoint,
            provider,
            transport=transport,
            clock=clock,
            budget=budget,
            allow_loopback=allow_loopback,
            max_in_flight=1,
        )
        return GraphTarget(client)

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
    return _MappedExtract(iter_records(path, mapping, label=path.name))
