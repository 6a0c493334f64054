"""The sync engine: plan → (hold) → upload → reconcile, with a journal that survives crashes.

Where things live (every public name below is also importable from here):

- :mod:`connector.runs` — run states, :class:`RunSummary`, the journal document and its keys;
- :mod:`connector.plans` — the stored plan: record order (managers first), batches;
- :mod:`connector.targets` — :class:`ProvisioningTarget`, :class:`GraphTarget`,
  :func:`graph_targets`, isolation of 400s;
- :mod:`connector.readers` — reading and mapping an extract (:func:`read_mapped_records`);
- :mod:`connector.references` — manager-chain levels and re-sends of skipped references;
- this module — :class:`Engine`, which moves runs through their states.

One extract of one source becomes one **run**. Its id is the source name plus a hash
of the file's bytes, so the same file delivered twice finds its run and does nothing; a
file whose bytes equal an older run's but whose extract is later, after a newer extract
was applied (day 3 back to day 1), is a new run (``<run id>-<extract time>``).
The run's journal is a JSON document in the state store (``runs/<source>/<run id>``),
written with ETag-conditional puts while the source's lock is held; the states are

    received → planned → [held] → uploading → uploaded → reconciling → done
                                           ↘ failed / superseded / discarded

- **Plan**: the delta (:mod:`connector.delta`) is stored as an artifact
  (``<source>/<run>/plan.jsonl.gz``) so a held run can be approved, and an interrupted
  one resumed, without the extract. Batches are rebuilt from it deterministically.
- **Upload**: up to ``window`` bulk requests in flight (a manager's request acknowledged
  before its reports' are sent); each acknowledged batch (202) is journaled as it
  arrives, so a crash re-sends at most the batches in flight. Quota
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
  ``superseded``. ``full`` mode: a newer extract that passes the guard supersedes older
  runs still planned, held, waiting or blocked (it carries everyone). ``delta`` mode:
  runs apply strictly in extract order; a run that cannot go on (planned, held, waiting,
  blocked) stops the later ones, which are ``uploading`` with waiting reason ``queued``
  ("queued behind <run>"). A run planned while other runs could still change the record
  index keeps its mapped records (``records.jsonl.gz``) and is planned again (and
  guarded, unless approved) when its turn comes, if the index changed meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import gzip
import io
import logging
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import orjson

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
    ConcurrentRunError,
    ConfigError,
    ConnectorError,
    GraphError,
    LockLostError,
    NotFoundError,
    PermissionDeniedError,
    RunError,
    StateError,
    SystemicRefusalError,
    TooManyRejectedRowsError,
)
from connector.plans import (
    NEVER_ACCEPTED,
    PlannedOp,
    batches_of,
    decode_plan,
    encode_plan,
    leveled_batches,
    order_plan,
    suppress_refused_resends,
)
from connector.readers import (
    ExtractRecords,
    RecordReader,
    read_mapped_records,
    spooled,
)
from connector.reconcile import (
    Outcome,
    RecordOutcome,
    SentRecord,
    check_job_health,
    outcome_label,
    reconcile,
)
from connector.references import (
    DEFAULT_MAX_REFERENCE_RESENDS,
    UNRESOLVED_REFERENCE,
    ResendCandidate,
    count_resends,
    select_reference_resends,
)
from connector.report import (
    RecordRow,
    RejectedRow,
    ReportInput,
    TimelineEvent,
    write_reports,
)
from connector.runs import (
    DISCARDABLE_STATES,
    MAX_REJECTED_IN_JOURNAL,
    OPEN_STATES,
    REFERENCES_KIND,
    Journal,
    PassResult,
    ProgressCallback,
    RunState,
    RunSummary,
    WaitingReason,
    acked_indices,
    approval_key,
    attempted_key,
    check_lock,
    discard_key,
    from_iso,
    later_copy_run_id,
    load_journal,
    lock_lost,
    loggable,
    make_run_id,
    records_key,
    resends_key,
    save_journal,
    source_key,
    to_iso,
    waiting_reason_from_doc,
    waiting_reason_of,
)
from connector.scim import BulkPayload
from connector.state.base import Outcome as StateOutcome
from connector.state.base import (
    RecordEntry,
    RecordIndex,
    SourceLock,
)
from connector.state.store import StateStore
from connector.targets import (
    DEFAULT_ISOLATION_CALLS,
    DEFAULT_WINDOW,
    BatchReceipt,
    GraphTarget,
    ProvisioningTarget,
    TargetFactory,
    as_mapping,
    graph_targets,
    isolate_refusal,
    source_cloud,
)

__all__ = [
    "DEFAULT_ISOLATION_CALLS",
    "DEFAULT_WINDOW",
    "MAX_REJECTED_IN_JOURNAL",
    "NEVER_ACCEPTED",
    "OPEN_STATES",
    "REFERENCES_KIND",
    "BatchReceipt",
    "Engine",
    "ExtractRecords",
    "GraphTarget",
    "PassResult",
    "ProgressCallback",
    "ProvisioningTarget",
    "RecordReader",
    "RunState",
    "RunSummary",
    "TargetFactory",
    "WaitingReason",
    "graph_targets",
    "make_run_id",
    "read_mapped_records",
    "source_cloud",
    "waiting_reason_of",
]

log = logging.getLogger(__name__)


_QUEUE_STATES = frozenset({RunState.PLANNED, RunState.HELD, RunState.UPLOADING, RunState.BLOCKED})
"""States of a run that has not finished sending: in ``delta`` mode it holds up later runs."""


@dataclass(frozen=True, slots=True)
class _KeptRecord:
    """One mapped record kept with a run (``records.jsonl.gz``) for planning it again."""

    line: int
    external_id: str
    data: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class _Stop:
    """Why the upload window stopped: ``failed``, ``blocked`` or ``waiting``."""

    kind: str
    error: BaseException
    batch: int


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
        command_flags: str = "",
        state_name: str | None = None,
    ) -> None:
        """``command_flags``: the CLI flags that name this config and state (e.g.
        ``--config sources.yaml --state DIR``), appended to the commands reports print so
        they can be pasted as they are; ``state_name``: how errors name the state store."""
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
        self.command_flags = command_flags
        self.state_name = state_name or repr(store)

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
        """Take one extract of ``source``: plan it, hold it, queue it or upload it.

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
        with spooled(stream, name) as (path, sha):
            run_id = make_run_id(src.name, sha)
            if dry_run:
                seen, existing = self._delivery(src, run_id, name, received)
                if existing is not None and (
                    existing.state not in (RunState.FAILED, RunState.RECEIVED, RunState.PLANNED)
                    or existing.batches
                ):
                    # What a real sync would do: nothing, the file was already received.
                    summary = self._summary(existing)
                    summary.duplicate = summary.dry_run = True
                    summary.batches_total = summary.batches_done = 0
                    return summary
                return self._dry_run(src, name, path, seen, full_resend=full_resend)
            with self.store.lock(src.name, owner=self.owner) as lock:
                self._repair(src.name)
                run_id, existing = self._delivery(src, run_id, name, received)
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
                    for key in ("failedReason", "rejected", "decision", "recordsKept"):
                        journal.doc.pop(key, None)
                    self._transition(journal, RunState.RECEIVED, f"file {name} received again")
                else:
                    journal = self._receive(src, run_id, name, received, lock)
                if src.mode == "delta":
                    # Changes only, applied in extract order: older runs go first (this one
                    # queues behind any that cannot finish now).
                    await self._advance(src, lock, None, PassResult(), before=journal)
                keep = self._has_unfinished_runs(src.name, journal)
                journal = self._plan(src, journal, path, full_resend=full_resend, keep_records=keep)
                if journal.state is RunState.PLANNED:
                    journal = await self._decide(src, journal, progress)
                self._write_reports(journal)
                return self._summary(journal)

    def _delivery(
        self, src: Source, run_id: str, name: str, received: datetime
    ) -> tuple[str, Journal | None]:
        """The run a delivered file belongs to, and its journal if it exists.

        Same bytes and same extract time: a redelivery (no-op). Same bytes but a later
        extract after a newer extract was applied (day 3 back to day 1's content after
        day 2 changed it): a new run, ``<run id>-<extract time>``, else day 2's changes
        would silently stand. Same bytes, later time, nothing applied in between (the
        file uploaded again): still the same run.
        """
        existing = self._load(src.name, run_id)
        if existing is None:
            return run_id, None
        new_at = src.extract_time(name, received)
        old_at = from_iso(existing.doc.get("extractAt"))
        last = self._last_applied(src.name)
        if old_at is None or new_at <= old_at or last is None or last <= old_at:
            return run_id, existing
        later = later_copy_run_id(run_id, new_at)
        log.info("run %s: same content as run %s, later extract", later, run_id)
        return later, self._load(src.name, later)

    def _has_unfinished_runs(self, source: str, journal: Journal) -> bool:
        """Whether another run of ``source`` may still change the record index before this
        one is sent (then its records are kept so it can be planned again)."""
        return any(j.key != journal.key for j in self._open_runs(source))

    async def resume(self, run_id: str, progress: ProgressCallback | None = None) -> RunSummary:
        """Continue one run where its journal stopped (the redelivery and operator path).

        Uploading → sends its unacknowledged batches; held with an approval marker →
        approved and uploaded; planned (a crash after planning) → the stored guard
        decision is applied; blocked (an error retrying cannot fix, since fixed) → tried
        again. Any other state is returned as is. Runs apply in extract order: a run
        with an older run of its source still to send queues behind it instead. In
        ``delta`` mode the whole source moves on in order (older runs first, then this
        one, then the runs queued behind it). Raises
        :class:`~connector.errors.ConcurrentRunError` when the source is busy.
        """
        src, _ = self._find(run_id)
        with self.store.lock(src.name, owner=self.owner) as lock:
            self._repair(src.name)
            journal = self._require(src.name, run_id)
            if src.mode == "delta":
                await self._advance(src, lock, progress, PassResult(), operator_run=run_id)
                return self._summary(self._require(src.name, run_id))
            journal.lock = lock
            blocker = self._find_blocker(src, journal)
            summary = await self._turn(src, journal, progress, blocker, operator=True)
            return summary if summary is not None else self._summary(journal)

    async def resume_waiting(self, progress: ProgressCallback | None = None) -> PassResult:
        """Move every source's runs on, oldest extract first: continue runs left uploading,
        apply the guard decision of runs interrupted after planning, release held runs
        that have an approval marker (``approvals/<run id>``), discard runs that have a
        discard marker (``discards/<run id>``).

        In ``delta`` mode runs apply strictly in extract order: the first run that cannot
        go on (waiting, blocked, held) stops the later ones, which stay queued behind it
        (a blocked one is listed and named in :attr:`PassResult.blocked`). Each source
        is handled on its own: a source whose lock is held elsewhere is named in
        :attr:`PassResult.skipped`, one that failed in :attr:`PassResult.errors`; the
        others go on.
        """
        out = PassResult()
        for src in self.config.sources:
            try:
                if not self._pass_has_work(src):
                    continue
                with self.store.lock(src.name, owner=self.owner) as lock:
                    self._repair(src.name)
                    await self._advance(src, lock, progress, out)
            except ConcurrentRunError as exc:
                log.info("source %s: busy, skipped this pass", src.name)
                out.skipped[src.name] = str(exc)
            except ConnectorError as exc:
                log.error("source %s: runs not moved on this pass (%s)", src.name, loggable(exc))
                out.errors[src.name] = loggable(exc)
        return out

    def _pass_has_work(self, src: Source) -> bool:
        """Whether a pass must take the source's lock (a held run alone needs nothing)."""
        for journal in self._open_runs(src.name):
            if journal.state is not RunState.HELD or self._approval_marker(journal.run_id):
                return True
            if self._discard_marker(journal.run_id) is not None:
                return True
        return False

    @staticmethod
    def _order(doc: Mapping[str, Any]) -> tuple[str, str, str]:
        """Apply order within a source: extract time, then receipt, then run id."""
        return (str(doc.get("extractAt") or ""), str(doc.get("receivedAt")), str(doc["runId"]))

    def _open_runs(self, source: str) -> list[Journal]:
        """Runs that still have to be sent, or that hold up later ones (planned, held,
        uploading, blocked), plus unfinished runs with a discard marker; oldest first."""
        found: list[Journal] = []
        discards: set[str] | None = None
        for key in self.store.list_documents(f"runs/{source}/"):
            got = self.store.get_document(key)
            if got is None:
                continue
            journal = Journal(got[0], got[1])
            if journal.state not in _QUEUE_STATES:
                if journal.state not in DISCARDABLE_STATES:
                    continue
                if discards is None:
                    discards = {
                        k.rsplit("/", 1)[-1]
                        for k in self.store.list_documents(discard_key(source + "-"))
                    }
                if journal.run_id not in discards:
                    continue
            found.append(journal)
        return sorted(found, key=lambda j: self._order(j.doc))

    def _find_blocker(self, src: Source, journal: Journal) -> Journal | None:
        """An older run of the source this one must wait for, if any.

        ``delta``: any older run not finished sending (planned, held, uploading, blocked):
        this file holds only changes, the older run's are not in it. ``full``: an older run
        still uploading or blocked (a newer run that passes the guard supersedes it
        first, so this is only ever found for a run that cannot supersede).
        """
        mine = self._order(journal.doc)
        states = _QUEUE_STATES if src.mode == "delta" else {RunState.UPLOADING, RunState.BLOCKED}
        for other in self._open_runs(src.name):
            if other.key == journal.key or self._order(other.doc) >= mine:
                continue
            if other.state in states:
                return other
        return None

    async def _advance(
        self,
        src: Source,
        lock: SourceLock,
        progress: ProgressCallback | None,
        out: PassResult,
        *,
        before: Journal | None = None,
        operator_run: str | None = None,
    ) -> Journal | None:
        """Move the source's open runs on, oldest first; returns the run that stopped the
        queue (``delta``), if any.

        ``before``: only runs older than this one (the ingest path). ``operator_run``: the
        run an operator resumes (a blocked one is tried again). In ``delta`` mode the first
        run left planned, held, uploading or blocked is the blocker: later runs are not
        sent, they are queued behind it. In ``full`` mode a waiting run stops the pass for
        the source (the quota or back-pressure applies to the later runs too); held and
        blocked runs do not hold up newer files, which supersede them once sent.
        """
        blocker: Journal | None = None
        for journal in self._open_runs(src.name):
            if before is not None and (
                journal.key == before.key or self._order(journal.doc) >= self._order(before.doc)
            ):
                continue
            journal.lock = lock
            operator = journal.run_id == operator_run
            summary = await self._turn(src, journal, progress, blocker, operator=operator)
            if summary is not None:
                out.append(summary)
            state = journal.state
            if src.mode == "delta":
                if blocker is None and state in _QUEUE_STATES:
                    blocker = journal
                    if state is RunState.BLOCKED:
                        out.blocked[src.name] = (
                            f"run {journal.run_id} is blocked; later runs of the source are"
                            " queued behind it (resume or discard it)"
                        )
            elif state is RunState.UPLOADING and journal.doc.get("waiting"):
                break  # later runs of this source queue behind this one
        return blocker

    async def _turn(
        self,
        src: Source,
        journal: Journal,
        progress: ProgressCallback | None,
        blocker: Journal | None,
        *,
        operator: bool = False,
    ) -> RunSummary | None:
        """Give one run its turn; ``blocker``: an older run it must wait for (then nothing
        is sent, the run is queued behind it). None when nothing was done with it."""
        state = journal.state
        if state in DISCARDABLE_STATES:
            discard = self._discard_marker(journal.run_id)
            if discard is not None:
                # A discard marker wins over an approval marker: the cautious choice.
                self._discard_locked(src, journal, f"discarded by {discard}")
                return self._summary(journal)
        if state is RunState.HELD:
            by = self._approval_marker(journal.run_id)
            if by is None:
                return None
            journal = await self._approve_locked(src, journal, by, progress, blocker=blocker)
        elif state is RunState.PLANNED:
            journal = await self._decide(src, journal, progress, blocker=blocker)
        elif state is RunState.UPLOADING:
            if blocker is not None:
                if not self._queue(journal, blocker):
                    return None  # still queued behind the same run: nothing new to say
            elif journal.doc.get("queued"):
                journal = await self._start(src, journal, progress, "its turn came")
            else:
                journal = await self._upload(src, journal, progress)
        elif state is RunState.BLOCKED:
            if not operator:
                # An operator resumes it. Listed when it holds up later runs (delta).
                return self._summary(journal) if src.mode == "delta" else None
            journal.doc.pop("blockedReason", None)
            self._transition(journal, RunState.UPLOADING, "resumed by an operator")
            if blocker is not None:
                self._queue(journal, blocker)
            else:
                journal = await self._upload(src, journal, progress)
        else:
            return None
        self._write_reports(journal)
        return self._summary(journal)

    async def reconcile_open_runs(self) -> PassResult:
        """One reconciliation pass over every uploaded/reconciling run of every source.

        Sources are independent: a busy source (lock held) is skipped for this pass and
        named in :attr:`PassResult.skipped`; one that failed (storage, Graph, a broken
        document) is named in :attr:`PassResult.errors` and the others go on.
        """
        out = PassResult()
        for src in self.config.sources:
            try:
                await self._reconcile_source(src, out)
            except ConcurrentRunError as exc:
                log.info("source %s: busy, reconciliation skipped this pass", src.name)
                out.skipped[src.name] = str(exc)
            except ConnectorError as exc:
                log.error(
                    "source %s: reconciliation failed this pass (%s)", src.name, loggable(exc)
                )
                out.errors[src.name] = loggable(exc)
        return out

    async def _reconcile_source(self, src: Source, out: PassResult) -> None:
        keys = self.store.list_documents(f"runs/{src.name}/")
        open_ids = []
        for key in keys:
            got = self.store.get_document(key)
            if got and got[0]["state"] in (RunState.UPLOADED, RunState.RECONCILING):
                open_ids.append(got[0]["runId"])
        if not open_ids:
            return
        target = self.targets(src)
        try:
            with self.store.lock(src.name, owner=self.owner) as lock:
                self._repair(src.name)
                job = await target.get_job()
                health = check_job_health(as_mapping(job))
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
        finally:
            await target.aclose()

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
        pending = self._records_in_unsent_plans(src.name)
        skipped = [
            ext
            for ext, e in index.entries.items()
            if e.outcome == StateOutcome.SKIPPED.value
            and e.error_code == UNRESOLVED_REFERENCE
            and ext not in pending
        ]
        if not skipped:
            return None
        payloads = self.store.get_payloads(src.name, skipped)
        got = self.store.get_document(resends_key(src.name))
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
            self.store.put_document(resends_key(src.name), body, if_none_match=True)
        else:
            self.store.put_document(resends_key(src.name), body, if_match=got[1])
        parents = sorted({c.run_id for c in chosen if c.run_id})
        n = len(self.store.list_documents(f"runs/{src.name}/{src.name}-refs"))
        run_id = f"{src.name}-refs{n + 1}"
        last = self._last_applied(src.name)
        not_resent: dict[str, int] = {}
        for why in left.values():
            not_resent[why] = not_resent.get(why, 0) + 1
        journal = Journal(
            {
                "runId": run_id,
                "source": src.name,
                "file": None,
                "kind": REFERENCES_KIND,
                "parentRunIds": parents,
                "receivedAt": to_iso(self.clock.now()),
                "extractAt": to_iso(last) if last is not None else None,
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

    def _records_in_unsent_plans(self, source: str) -> set[str]:
        """Records a held or planned run of ``source`` carries (newer data than the last
        payload a reference re-send would repeat): they are left to that run."""
        out: set[str] = set()
        for journal in self._open_runs(source):
            if journal.state in (RunState.HELD, RunState.PLANNED) or journal.doc.get("queued"):
                out.update(op.external_id for op in self._plan_or_empty(journal))
        return out

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
        self,
        src: Source,
        journal: Journal,
        by: str,
        progress: ProgressCallback | None,
        *,
        blocker: Journal | None = None,
    ) -> Journal:
        run_id = journal.run_id
        last = self._last_applied(src.name)
        extract_at = from_iso(journal.doc.get("extractAt"))
        if last is not None and extract_at is not None and extract_at < last:
            raise RunError(
                f"run {run_id} holds an extract from {to_iso(extract_at)}, older than the last"
                f" one applied ({to_iso(last)}); discard it instead"
            )
        await self._preflight(src)
        journal.doc["approvedBy"] = by
        with contextlib.suppress(StateError):
            self.store.delete_document(approval_key(run_id))
        if src.mode == "delta":
            blocker = blocker or self._find_blocker(src, journal)
            if blocker is not None:
                self._event(journal, journal.state, f"approved by {by}")
                self._queue(journal, blocker)
                return journal
        return await self._start(src, journal, progress, f"approved by {by}")

    def discard(
        self,
        run_id: str,
        *,
        by: str = "operator",
        reason: str | None = None,
        allowed_states: Iterable[RunState | str] | None = None,
    ) -> RunSummary:
        """Drop a run that has not finished sending (received, planned, held, waiting or
        blocked): nothing more of it is sent; batches it delivered are still reconciled.

        ``reason`` goes to the journal with ``by``. ``allowed_states`` narrows the states
        the run may be discarded from (checked under the source's lock, so a run approved
        and started meanwhile is refused with :class:`~connector.errors.RunError`).
        """
        allowed = (
            DISCARDABLE_STATES
            if allowed_states is None
            else frozenset(RunState(s) for s in allowed_states) & DISCARDABLE_STATES
        )
        src, _ = self._find(run_id)
        with self.store.lock(src.name, owner=self.owner) as lock:
            self._repair(src.name)
            journal = self._require(src.name, run_id)
            journal.lock = lock
            if journal.state not in allowed:
                names = ", ".join(sorted(s.value for s in allowed))
                raise RunError(
                    f"run {run_id} is {journal.state.value}; it can be discarded only when {names}"
                )
            text = f"discarded by {by}"
            if reason:
                text += f" (reason: {' '.join(reason.split())[:300]})"
            self._discard_locked(src, journal, text)
            return self._summary(journal)

    def _approval_marker(self, run_id: str) -> str | None:
        """Who approved ``run_id`` with a marker document, None without a marker.

        A marker may be written by hand (``touch``, an empty blob): content that is not a
        JSON object still counts as an approval, just without a name.
        """
        key = approval_key(run_id)
        try:
            got = self.store.get_document(key)
        except StateError:
            return "approval marker" if key in self.store.list_documents(key) else None
        if got is None:
            return None
        by = got[0].get("by") if isinstance(got[0], Mapping) else None
        return " ".join(str(by).split())[:100] if by else "approval marker"

    def _discard_marker(self, run_id: str) -> str | None:
        """Who asked to discard ``run_id`` with a marker document, None without a marker.

        A marker is written by hand (e.g. an empty blob), so content that is not a JSON
        object still counts as a marker, just without a name.
        """
        key = discard_key(run_id)
        try:
            got = self.store.get_document(key)
        except StateError:
            return "discard marker" if key in self.store.list_documents(key) else None
        if got is None:
            return None
        by = got[0].get("by") if isinstance(got[0], Mapping) else None
        return " ".join(str(by).split())[:100] if by else "discard marker"

    def _discard_locked(self, src: Source, journal: Journal, text: str) -> None:
        self._stop_run(src.name, journal, RunState.DISCARDED, text)
        for key in (approval_key(journal.run_id), discard_key(journal.run_id)):
            with contextlib.suppress(StateError):
                self.store.delete_document(key)

    async def retry_failed(
        self, run_id: str, *, progress: ProgressCallback | None = None
    ) -> RunSummary:
        """Re-send the records of ``run_id`` whose last outcome is failed, as a new run.

        Only records still owned by that run (no later run sent them) are retried, with
        the data that run sent (from its stored plan; the last payload stored as a
        fallback). Returns the new run; RunError when there is nothing to retry.
        """
        src, _ = self._find(run_id)
        # A token first (as approve does): without one, a retry run would be created only
        # to be blocked, and a second attempt would create another (a duplicate re-send).
        await self._preflight(src)
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
            journal = Journal(
                {
                    "runId": child_id,
                    "source": src.name,
                    "file": parent.doc.get("file"),
                    "kind": "retry",
                    "parentRunId": run_id,
                    "receivedAt": to_iso(now),
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
                    out.append(self._summary(Journal(got[0], got[1])))
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
    ) -> Journal:
        extract_at = src.extract_time(name, received)
        journal = Journal(
            {
                "runId": run_id,
                "source": src.name,
                "file": name,
                "kind": "extract",
                "receivedAt": to_iso(received),
                "extractAt": to_iso(extract_at),
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

    def _plan(
        self,
        src: Source,
        journal: Journal,
        path: Path,
        *,
        full_resend: bool,
        keep_records: bool = False,
    ) -> Journal:
        """Plan the run and record the guard's decision with it (applied by :meth:`_decide`),
        so a crash between the two can be continued without the extract.

        ``keep_records``: other runs of the source may still change the record index
        before this one is sent; every mapped record is then kept with the run, so it can
        be planned again against the index as they leave it.
        """
        extract_at = from_iso(journal.doc["extractAt"])
        last = self._last_applied(src.name)
        if last is not None and extract_at is not None and extract_at < last:
            reason = (
                f"extract taken {to_iso(extract_at)} is older than the last one applied"
                f" ({to_iso(last)}); not applied over newer data"
            )
            journal.doc["supersededReason"] = reason
            self._transition(journal, RunState.SUPERSEDED, reason)
            log.warning("run %s: superseded (older extract)", journal.run_id)
            return journal
        try:
            plan, rows, rejected, index = self._compute_plan(
                src, path, full_resend=full_resend, keep=journal if keep_records else None
            )
        except TooManyRejectedRowsError as exc:
            self._journal_refused_rows(journal, exc)
            journal.doc["failedReason"] = str(exc)
            self._transition(journal, RunState.FAILED, str(exc))
            log.error("run %s: refused at the rejected-row cap", journal.run_id)
            return journal
        except ConnectorError as exc:
            journal.doc["failedReason"] = str(exc)
            self._transition(journal, RunState.FAILED, str(exc))
            log.error("run %s: failed to plan: %s", journal.run_id, loggable(exc))
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
        journal.doc["planIndexVersion"] = index.version
        if full_resend:
            journal.doc["fullResend"] = True
        self._transition(
            journal,
            RunState.PLANNED,
            f"{plan.joiners} joiners, {plan.movers} movers, {len(plan.leavers)} leavers,"
            f" {plan.unchanged} unchanged, {len(rejected)} rejected",
        )
        return journal

    async def _decide(
        self,
        src: Source,
        journal: Journal,
        progress: ProgressCallback | None,
        *,
        blocker: Journal | None = None,
    ) -> Journal:
        """Apply a planned run's guard decision: hold it, queue it, or start it.

        ``delta``: a run with an older run still to send is queued behind it, before the
        guard: it is planned again (and guarded) against the record index once its turn
        comes. ``full``: held, or started (which supersedes older unsent runs).
        """
        decision = journal.doc.get("decision")
        if not isinstance(decision, Mapping):
            return journal  # planned by an older version: deliver the file again to re-plan
        if src.mode == "delta":
            blocker = blocker or self._find_blocker(src, journal)
            if blocker is not None:
                self._queue(journal, blocker)
                return journal
        hold = decision.get("hold")
        if hold:
            self._hold(journal, hold)
            return journal
        return await self._start(src, journal, progress, None)

    def _hold(self, journal: Journal, hold: Mapping[str, Any]) -> None:
        journal.doc["hold"] = dict(hold)
        journal.doc["heldReason"] = hold.get("message")
        journal.doc.pop("queued", None)
        journal.doc.pop("queuedBehind", None)
        self._transition(journal, RunState.HELD, str(hold.get("message")))
        log.warning("run %s: held by the mass-change guard (%s)", journal.run_id, hold.get("code"))

    async def _start(
        self, src: Source, journal: Journal, progress: ProgressCallback | None, why: str | None
    ) -> Journal:
        """Send a run whose turn has come (guard passed, approved, or queued until now).

        ``full``: older unsent runs are superseded first (this file carries everyone).
        A run planned while other runs could still change the record index is planned
        again if the index changed since; the guard is then asked again, unless an
        operator approved the run.
        """
        approved = bool(journal.doc.get("approvedBy"))
        if src.mode == "full":
            self._supersede_older_open_runs(src, journal)
        replanned, hold = self._replan_if_stale(src, journal)
        if not replanned:
            decision = journal.doc.get("decision")
            hold = decision.get("hold") if isinstance(decision, Mapping) else None
        if hold and not approved:
            self._hold(journal, hold)
            return journal
        journal.doc.pop("queued", None)
        journal.doc.pop("queuedBehind", None)
        self._mark_applied(src.name, journal)
        detail = f"{journal.doc.get('toSend', 0)} records to send"
        if why:
            detail = f"{why}: {detail}"
        self._transition(journal, RunState.UPLOADING, detail)
        blocker = self._find_blocker(src, journal) if src.mode == "full" else None
        if blocker is not None:
            self._queue(journal, blocker)
            return journal
        return await self._upload(src, journal, progress)

    def _queue(self, journal: Journal, blocker: Journal) -> bool:
        """Leave ``journal`` queued behind ``blocker`` (state ``uploading``, waiting reason
        ``queued``); a run that has sent nothing yet is planned again on its turn.
        Returns whether its note changed."""
        why = {
            RunState.HELD: "held by the mass-change guard; approve or discard it",
            RunState.BLOCKED: "blocked; resume or discard it",
            RunState.PLANNED: "planned, its guard decision not yet applied",
        }.get(blocker.state, "it has batches left to send")
        if blocker.state is RunState.UPLOADING and blocker.doc.get("queued"):
            why = "itself queued"
        note = f"queued behind run {blocker.run_id} ({why})"
        if not journal.batches:
            journal.doc["queued"] = True
        journal.doc["queuedBehind"] = blocker.run_id
        if journal.state is not RunState.UPLOADING:
            journal.doc["waiting"] = note
            journal.doc["waitingReason"] = WaitingReason.QUEUED.value
            self._transition(journal, RunState.UPLOADING, note)
            return True
        changed = journal.doc.get("waiting") != note
        if changed:
            self._event(journal, RunState.UPLOADING, note)
        journal.doc["waiting"] = note
        journal.doc["waitingReason"] = WaitingReason.QUEUED.value
        self._save(journal)
        return changed

    def _replan_if_stale(
        self, src: Source, journal: Journal
    ) -> tuple[bool, Mapping[str, Any] | None]:
        """Plan a run again from its kept records when the record index changed since it
        was planned (a run before it sent records meanwhile). Returns whether it did, and
        the guard's new decision (a hold as a dict, or None)."""
        if not journal.doc.get("recordsKept") or journal.batches:
            return False, None
        index = self.store.load_records(src.name)
        if index.version == journal.doc.get("planIndexVersion"):
            return False, None
        records = self._load_kept_records(journal)
        full_resend = bool(journal.doc.get("fullResend"))
        rejected = self._load_rejected(journal)
        plan = plan_delta(
            records,
            index,
            mode=src.mode,
            leaver_policy=src.leavers,
            ignore_attributes=src.ignore_attributes,
            rejected_ids={r.external_id for r in rejected if r.external_id},
            full_resend=full_resend,
            retry_unconfirmed=src.retry_unconfirmed,
        )
        if not full_resend:
            suppress_refused_resends(plan, index, self._load_attempted(src.name))
        if plan.leavers:
            payloads = self.store.get_payloads(src.name, plan.leaver_ids)
            plan = attach_leaver_payloads(plan, payloads, ignore_attributes=src.ignore_attributes)
        rejected_count = int(journal.doc.get("rejectedCount", len(rejected)))
        counts = plan.counts()
        counts["rejected"] = rejected_count
        journal.doc["planned"] = counts
        self._store_plan(journal, plan.to_send, index)
        journal.doc["planIndexVersion"] = index.version
        hold = check_guard(
            plan,
            index.active_count(),
            int(journal.doc.get("rowsInFile", plan.rows)),
            src.thresholds,
            rejected_rows=rejected_count,
        )
        hold_doc = hold.to_dict() if hold is not None else None
        journal.doc["decision"] = {"hold": hold_doc}
        self._event(
            journal,
            journal.state,
            "planned again against the record index as earlier runs left it:"
            f" {plan.joiners} joiners, {plan.movers} movers, {len(plan.leavers)} leavers,"
            f" {plan.unchanged} unchanged",
        )
        self._save(journal)
        log.info("run %s: planned again (%d to send)", journal.run_id, len(plan.to_send))
        return True, hold_doc

    def _load_kept_records(self, journal: Journal) -> list[_KeptRecord]:
        try:
            blob = self.store.read_artifact(records_key(journal.source, journal.run_id))
        except StateError as exc:
            raise RunError(
                f"run {journal.run_id}: its kept records are missing ({exc}); discard the run"
                " and deliver the extract again"
            ) from exc
        return [
            _KeptRecord(int(line), str(ext), data)
            for line, ext, data in (
                orjson.loads(raw) for raw in gzip.decompress(blob).splitlines() if raw
            )
        ]

    def _journal_refused_rows(self, journal: Journal, exc: TooManyRejectedRowsError) -> None:
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
        self, src: Source, path: Path, *, full_resend: bool, keep: Journal | None = None
    ) -> tuple[DeltaPlan, int, list[RejectedRow], RecordIndex]:
        """Diff the extract against the index; with ``keep``, every mapped record is also
        written to that run's ``records.jsonl.gz`` as it streams by."""
        index = self.store.load_records(src.name)
        mapped = self.records(src, path)
        kept = io.BytesIO()
        sink = gzip.GzipFile(fileobj=kept, mode="wb", compresslevel=5) if keep else None
        plan = plan_delta(
            _tee(mapped, sink) if sink is not None else mapped,
            index,
            mode=src.mode,
            leaver_policy=src.leavers,
            ignore_attributes=src.ignore_attributes,
            rejected_ids=(),  # filled below once the stream is consumed
            full_resend=full_resend,
            retry_unconfirmed=src.retry_unconfirmed,
        )
        if sink is not None and keep is not None:
            sink.close()
            self.store.write_artifact(
                records_key(keep.source, keep.run_id),
                kept.getvalue(),
                content_type="application/gzip",
            )
            keep.doc["recordsKept"] = True
        if not full_resend:
            suppress_refused_resends(plan, index, self._load_attempted(src.name))
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
        n_batches = len(batches_of(order_plan(plan.to_send, index)))
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
        journal: Journal,
        changes: Iterable[Change],
        index: RecordIndex,
        *,
        kind: str | None = None,
    ) -> None:
        ops = order_plan(changes, index)
        if kind is not None:
            ops = [dataclasses.replace(op, kind=kind) for op in ops]
        self.store.write_artifact(
            f"{journal.source}/{journal.run_id}/plan.jsonl.gz",
            encode_plan(ops),
            content_type="application/gzip",
        )
        journal.doc["batchesTotal"] = len(batches_of(ops))
        journal.doc["toSend"] = len(ops)
        levels = max((op.level for op in ops), default=0) + 1
        if levels > 1:
            journal.doc["referenceLevels"] = levels

    def _store_rejected(self, journal: Journal, rejected: list[RejectedRow]) -> None:
        """Rejected rows live next to the plan, not in the journal (rewritten per batch)."""
        if not rejected:
            return
        rows = [[r.line, r.reason, r.external_id] for r in rejected]
        self.store.write_artifact(
            f"{journal.source}/{journal.run_id}/rejected.json.gz",
            gzip.compress(orjson.dumps(rows), compresslevel=5),
            content_type="application/gzip",
        )

    def _load_rejected(self, journal: Journal) -> list[RejectedRow]:
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

    def _load_plan(self, journal: Journal) -> list[PlannedOp]:
        try:
            blob = self.store.read_artifact(f"{journal.source}/{journal.run_id}/plan.jsonl.gz")
        except StateError as exc:
            raise RunError(
                f"run {journal.run_id}: its stored plan is missing ({exc}); discard the run and"
                " deliver the extract again"
            ) from exc
        return decode_plan(blob)

    def _load_attempted(self, source: str) -> dict[str, str]:
        got = self.store.get_document(attempted_key(source))
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
        self, src: Source, journal: Journal, progress: ProgressCallback | None
    ) -> Journal:
        """Send the run's unacknowledged batches, up to ``window`` at once.

        Each acknowledgement is journaled as it arrives (with its batch index), so after
        a crash only the batches that were in flight are sent again. A spent budget, back-
        pressure or an outage stops new sends; batches in flight finish; every batch not
        acknowledged is left for the next call.
        """
        ops = self._load_plan(journal)
        leveled = leveled_batches(ops)
        batches = [b for b, _ in leveled]
        total = len(batches)
        journal.doc["batchesTotal"] = total
        acked = acked_indices(journal)
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
        first = min((b["sentAt"] for b in journal.batches), default=to_iso(self.clock.now()))
        journal.doc.setdefault("firstSentAt", first)
        self._transition(
            journal, RunState.UPLOADED, f"{total} batch{'es' if total != 1 else ''} acknowledged"
        )
        log.info("run %s: uploaded %d batches", journal.run_id, total)
        return journal

    async def _send_window(
        self,
        journal: Journal,
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
                    check_lock(journal)
                    receipt = await self._send_batch(journal, target, batches[i])
                except SystemicRefusalError as exc:
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
                    "sentAt": to_iso(self.clock.now()),
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
                except (SystemicRefusalError, ConcurrentRunError) as exc:
                    kind = "failed" if isinstance(exc, SystemicRefusalError) else "waiting"
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
        journal: Journal,
        ops: list[PlannedOp],
        batches: list[BulkPayload],
        stop: _Stop,
    ) -> Journal:
        total = len(batches)
        done = len(journal.batches)
        exc = stop.error
        if isinstance(exc, LockLostError) or (
            isinstance(exc, ConcurrentRunError) and lock_lost(journal)
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
        self, journal: Journal, target: ProvisioningTarget, payload: BulkPayload
    ) -> BatchReceipt:
        try:
            return await target.send(payload)
        except BadRequestError as exc:
            return await self._isolate(journal, target, payload, exc)

    async def _isolate(
        self,
        journal: Journal,
        target: ProvisioningTarget,
        payload: BulkPayload,
        refusal: BadRequestError,
    ) -> BatchReceipt:
        """Find the records a 400 is about within the run's ``isolation_calls`` allowance
        (see :func:`connector.targets.isolate_refusal`), counted in the journal."""
        return await isolate_refusal(target, payload, refusal, _JournalAllowance(self, journal))

    def _note_whole_refusal(
        self, journal: Journal, payload: BulkPayload, receipt: BatchReceipt
    ) -> None:
        """Two batches in a row refused record by record is systemic, not bad data."""
        if receipt.rejected and len(receipt.rejected) >= len(payload):
            streak = int(journal.doc.get("refusedInARow", 0)) + 1
            journal.doc["refusedInARow"] = streak
            if streak >= 2:
                code, message = next(iter(receipt.rejected.values()))
                raise SystemicRefusalError(
                    f"two batches in a row were refused whole: {message}", code=code
                )
        else:
            journal.doc["refusedInARow"] = 0

    def _index_acks(
        self,
        source: str,
        journal: Journal,
        ops: list[PlannedOp] | None = None,
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
            batches = batches_of(ops)
        by_id = {op.external_id: op for op in ops}
        index = self.store.load_records(source)
        attempted_doc = self.store.get_document(attempted_key(source))
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
                self.store.put_document(attempted_key(source), body, if_none_match=True)
            else:
                self.store.put_document(attempted_key(source), body, if_match=attempted_doc[1])
        journal.doc["indexed"] = acked
        self._save(journal)

    # -- reconcile --------------------------------------------------------------------

    def _sent_records(self, journal: Journal) -> list[SentRecord]:
        ops = self._load_plan(journal)
        batches = batches_of(ops)
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
                            Journal({"runId": op.prev, "source": journal.source})
                        )
                    row = previous[op.prev].get(ext)
                    used = from_iso(row[5]) if row is not None and len(row) > 5 else None
                    # The entry the previous run used is not this send's, unless it is
                    # later than this send (then the previous run took ours: no bound).
                    if used is not None and used < sent_at:
                        after = used
                out.append(SentRecord(ext, sent_at, meta.get("requestId"), op.kind, op.line, after))
        later = self._later_sends(journal, out)
        if later:
            out = [
                dataclasses.replace(s, before=later[s.external_id]) if s.external_id in later else s
                for s in out
            ]
        return out

    def _later_sends(self, journal: Journal, sent: list[SentRecord]) -> dict[str, datetime]:
        """For records of this run that a later run sent again: the time of the next send.

        Log entries from that time on describe the newer send, so they belong to the
        newer run (one reconciliation pass after two syncs must not give day 1 the
        entries of day 2). The record index names the last run per record: when it is
        this run for every record (the usual case), no other journal is read.
        """
        if not sent:
            return {}
        index = self.store.load_records(journal.source)
        mine = {s.external_id: s.sent_at for s in sent}
        resent = {
            ext
            for ext in mine
            if (e := index.entries.get(ext)) is not None and e.run_id not in (None, journal.run_id)
        }
        if not resent:
            return {}
        first = min(mine[ext] for ext in resent)
        out: dict[str, datetime] = {}
        for key in self.store.list_documents(f"runs/{journal.source}/"):
            got = self.store.get_document(key)
            if got is None or got[0].get("runId") == journal.run_id:
                continue
            other = Journal(got[0], got[1])
            metas = [m for m in other.batches if m.get("sentAt")]
            if not metas or max(datetime.fromisoformat(m["sentAt"]) for m in metas) <= first:
                continue
            batches = self._plan_batches(other)
            for k, meta in enumerate(other.batches):
                i = int(meta.get("i", k))
                if not meta.get("sentAt") or i >= len(batches):
                    continue
                at = datetime.fromisoformat(meta["sentAt"])
                refused = meta.get("rejected") or {}
                for ext in batches[i].external_ids:
                    if ext not in resent or ext in refused or at <= mine[ext]:
                        continue
                    if ext not in out or at < out[ext]:
                        out[ext] = at
        return out

    async def _reconcile(
        self, src: Source, journal: Journal, target: ProvisioningTarget, health: Any
    ) -> Journal:
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
            entries,
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
        labels: dict[str, int] = {}
        for o in outcomes.values():
            label = outcome_label(o.outcome.value, o.error_code, o.provisioning_action)
            labels[label] = labels.get(label, 0) + 1
        journal.doc["outcomeLabels"] = dict(sorted(labels.items()))
        journal.doc["lastReconciledAt"] = to_iso(self.clock.now())
        self._store_outcomes(journal, outcomes.values())
        self._apply_outcomes(src.name, journal.run_id, outcomes.values())
        if result.complete:
            self._transition(journal, RunState.DONE, _counts_text(journal.doc["outcomes"]))
            log.info("run %s: done %s", journal.run_id, journal.doc["outcomes"])
        else:
            self._save(journal)
        return journal

    def _refused_outcomes(self, journal: Journal) -> dict[str, RecordOutcome]:
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

    def _store_outcomes(self, journal: Journal, outcomes: Iterable[RecordOutcome]) -> None:
        rows = [
            [
                o.external_id,
                o.outcome.value,
                o.error_code,
                o.reason,
                o.provisioning_action,
                to_iso(o.activity_at) if o.activity_at is not None else None,
                o.log_id,
            ]
            for o in outcomes
        ]
        self.store.write_artifact(
            f"{journal.source}/{journal.run_id}/outcomes.json.gz",
            gzip.compress(orjson.dumps(rows), compresslevel=5),
            content_type="application/gzip",
        )

    def _load_outcomes(self, journal: Journal) -> dict[str, list[Any]]:
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
            if o.outcome is Outcome.FAILED and entry.active and _create_failed(o):
                # The create failed (a joiner, or any later send — an operator retry, a
                # re-send — the service tried to create): nobody exists in Entra to count
                # in the guard's population or to disable later as a leaver.
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
                self._index_acks(source, Journal(doc, got[1]))

    def _supersede_older_open_runs(self, src: Source, journal: Journal) -> None:
        """End older runs this one replaces (it is about to be sent; ``full`` mode only,
        where this file carries everyone). In ``delta`` mode nothing is superseded: an
        older run's unsent changes are not in a newer file, so runs apply in order.
        """
        if src.mode != "full":
            return
        extract_at = from_iso(journal.doc.get("extractAt"))
        states = {RunState.HELD, RunState.PLANNED, RunState.UPLOADING, RunState.BLOCKED}
        for key in self.store.list_documents(f"runs/{src.name}/"):
            if key == journal.key:
                continue
            got = self.store.get_document(key)
            if got is None:
                continue
            other = Journal(got[0], got[1], lock=journal.lock)
            if other.state not in states:
                continue
            other_at = from_iso(other.doc.get("extractAt"))
            if extract_at is not None and other_at is not None and other_at > extract_at:
                continue
            reason = f"superseded by newer extract run {journal.run_id}"
            self._stop_run(src.name, other, RunState.SUPERSEDED, reason)

    def _stop_run(self, source: str, journal: Journal, state: RunState, reason: str) -> None:
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
        got = self.store.get_document(source_key(source))
        return from_iso(got[0].get("lastAppliedExtractAt")) if got else None

    def _mark_applied(self, source: str, journal: Journal) -> None:
        got = self.store.get_document(source_key(source))
        doc = dict(got[0]) if got else {"source": source}
        new = from_iso(journal.doc.get("extractAt"))
        old = from_iso(doc.get("lastAppliedExtractAt"))
        if new is not None and (old is None or new >= old):
            doc["lastAppliedExtractAt"] = to_iso(new)
            doc["lastAppliedRunId"] = journal.run_id
        if got is None:
            self.store.put_document(source_key(source), doc, if_none_match=True)
        else:
            self.store.put_document(source_key(source), doc, if_match=got[1])

    def _event(self, journal: Journal, state: RunState, detail: str) -> None:
        journal.doc.setdefault("timeline", []).append(
            {"at": to_iso(self.clock.now()), "state": state.value, "detail": detail}
        )

    def _transition(self, journal: Journal, state: RunState, detail: str = "") -> None:
        journal.doc["state"] = state.value
        if state is not RunState.UPLOADING:
            journal.doc.pop("waiting", None)
            journal.doc.pop("waitingReason", None)
        self._event(journal, state, detail)
        self._save(journal)

    def _save(self, journal: Journal) -> None:
        save_journal(self.store, journal, self.clock.now())

    def _load(self, source: str, run_id: str) -> Journal | None:
        return load_journal(self.store, source, run_id)

    def _require(self, source: str, run_id: str) -> Journal:
        journal = self._load(source, run_id)
        if journal is None:
            raise RunError(f"no run {run_id} for source {source}; see `connector runs list`")
        return journal

    def _find(self, run_id: str) -> tuple[Source, str]:
        for src in self.config.sources:
            if run_id.startswith(src.name + "-") and self._load(src.name, run_id) is not None:
                return src, run_id
        raise RunError(
            f"no run {run_id!r} in the state store {self.state_name}; check the run id and"
            " the state option, or see `connector runs list`"
        )

    # -- reports ----------------------------------------------------------------------

    def report_input(self, journal_doc: Mapping[str, Any]) -> ReportInput:
        """Build a report's data from a journal (and the run's stored plan and outcomes)."""
        journal = Journal(dict(journal_doc))
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
                outcome = outcome_label(outcome, code, row[4] if len(row) > 4 else None)
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
        counts = dict(journal.doc.get("outcomeLabels") or journal.doc.get("outcomes") or {})
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
            extract_at=from_iso(journal.doc.get("extractAt")),
            command_flags=self.command_flags,
        )

    def _plan_or_empty(self, journal: Journal) -> list[PlannedOp]:
        try:
            return self._load_plan(journal)
        except RunError:
            return []

    def _plan_batches(self, journal: Journal) -> list[BulkPayload]:
        return batches_of(self._plan_or_empty(journal))

    def _write_reports(self, journal: Journal) -> dict[str, str]:
        if lock_lost(journal):
            # The journal may be stale: the new holder of the lock writes the reports.
            log.warning("run %s: lock lost; reports left to the new holder", journal.run_id)
            return {}
        data = self.report_input(journal.doc)

        def put(name: str, body: bytes, ctype: str) -> str:
            return self.store.write_artifact(
                f"{journal.source}/{journal.run_id}/{name}", body, content_type=ctype
            )

        paths = {k: str(v) for k, v in write_reports(data, put).items()}
        return paths

    def _summary(self, journal: Journal) -> RunSummary:
        d = journal.doc
        return RunSummary(
            run_id=journal.run_id,
            source=journal.source,
            file_name=str(d.get("file") or ""),
            state=journal.state.value,
            planned=dict(d.get("planned") or {}),
            outcomes=dict(d.get("outcomes") or {}),
            outcome_labels=dict(d.get("outcomeLabels") or d.get("outcomes") or {}),
            held_reason=d.get("heldReason") if journal.state is RunState.HELD else None,
            failed_reason=d.get("failedReason")
            or d.get("blockedReason")
            or d.get("supersededReason")
            or d.get("discardedReason"),
            waiting=d.get("waiting") if journal.state is RunState.UPLOADING else None,
            waiting_reason=waiting_reason_from_doc(d)
            if journal.state is RunState.UPLOADING
            else None,
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


class _JournalAllowance:
    """The isolation allowance of one run, counted in its journal (``isolationCalls``)."""

    def __init__(self, engine: Engine, journal: Journal) -> None:
        self._limit = engine.isolation_calls
        self._journal = journal

    def left(self) -> int:
        return self._limit - int(self._journal.doc.get("isolationCalls", 0))

    def spend(self) -> None:
        doc = self._journal.doc
        doc["isolationCalls"] = int(doc.get("isolationCalls", 0)) + 1


def _tee(records: Iterable[Any], sink: gzip.GzipFile) -> Iterator[Any]:
    """Stream ``records`` on while writing each as ``[line, externalId, data]`` to ``sink``."""
    for rec in records:
        sink.write(orjson.dumps([rec.line, rec.external_id, rec.data], default=dict))
        sink.write(b"\n")
        yield rec


def _create_failed(outcome: RecordOutcome) -> bool:
    """Whether a failed outcome was a create attempt: the record was sent as a joiner, or
    the log entry's action is ``create`` (documented: the service logs the action it
    attempted; assumption: a failed ``create`` means no account exists)."""
    return outcome.action == ChangeKind.JOINER.value or outcome.provisioning_action == "create"


def _counts_text(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{v} {k}" for k, v in counts.items()) or "nothing sent"
