"""Every document and artifact of a run, and where each is stored.

The engine reaches the state store only through :class:`RunStore`. Per source:

==============================================  ============================================
``runs/<source>/<run id>``                      the run's journal (ETag-conditional puts
                                                while the source's lock is held)
``sources/<source>``                            the last extract applied
``pulls/<source>``                              a pulled source's last pull and watermark
``approvals/<run id>``, ``discards/<run id>``   operator markers (may be written by hand)
``attempted/<source>``                          fingerprints the service refused (400)
``reference-resends/<source>``                  automatic re-sends for manager references
``<source>/logs/<job id>.json.gz``              how far the job's provisioning logs were
                                                read (``LogCursor``) and the entries kept
                                                for runs not yet done (``LogBook``: a
                                                header, then one row per line)
``<source>/<run id>/plan.jsonl.gz``             the stored plan (records in send order)
``<source>/<run id>/batches.json.gz``           which records went into which batch,
                                                written once with the plan
``<source>/<run id>/acks/<n>-<hash>.json.gz``   sealed chunks of acknowledged batches
                                                (written once, named by the journal:
                                                :mod:`connector.sync.acks`)
``<source>/<run id>/records.jsonl.gz``          mapped records kept to plan the run again
``<source>/<run id>/rejected.json.gz``          rejected rows of the file
``<source>/<run id>/outcomes.json.gz``          each record's reconciled outcome (a JSON
                                                array, one row per line)
``<source>/<run id>/report.*``, ``failures.csv``  the reports (``held.csv`` too while held)
``index.html``                                  every run of every source, with links
``report-index``                                the index's rows, one per run (updated per
                                                report write, ETag-conditional)
==============================================  ============================================
"""

from __future__ import annotations

import contextlib
import gzip
import io
import re
import shutil
import zlib
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

import orjson

from connector.clock import Clock
from connector.errors import DocumentConflictError, LockLostError, RunError, StateError
from connector.report import RejectedRow
from connector.state.backend import HeldLock
from connector.state.base import PayloadUpdates, RecordEntry, RecordIndex, SourceLock
from connector.state.store import StateStore
from connector.sync.acks import ACK_CHUNK_SIZE
from connector.sync.journal import Journal, from_iso, to_iso
from connector.sync.journal_doc import journal_from_doc, journal_to_doc
from connector.sync.op_table import PayloadMap
from connector.sync.plans import PlannedOp, PlanOps, decode_op, read_plan, write_plan_to

__all__ = [
    "HELD_NAME",
    "INDEX_NAME",
    "REPORT_NAMES",
    "KeptRecord",
    "OutcomeRow",
    "RunStore",
    "approval_key",
    "check_lock",
    "discard_key",
    "lock_lost",
    "log_book_key",
    "pull_key",
    "run_key",
]

REPORT_NAMES = ("report.html", "report.json", "failures.csv")
HELD_NAME = "held.csv"
INDEX_NAME = "index.html"


def run_key(source: str, run_id: str) -> str:
    return f"runs/{source}/{run_id}"


def approval_key(run_id: str) -> str:
    return f"approvals/{run_id}"


def discard_key(run_id: str) -> str:
    """A discard marker: the next pass discards the run (``{"by": …}`` optional)."""
    return f"discards/{run_id}"


REPORT_INDEX_KEY = "report-index"


def _source_key(source: str) -> str:
    return f"sources/{source}"


def pull_key(source: str) -> str:
    """A ``sql``/``rest`` source's pull record (:mod:`connector.sync.pulling`)."""
    return f"pulls/{source}"


def _attempted_key(source: str) -> str:
    return f"attempted/{source}"


def _resends_key(source: str) -> str:
    return f"reference-resends/{source}"


def log_book_key(source: str, job_id: str | None) -> str:
    """The job's log book: one per source and job (a changed ``job_id`` starts afresh)."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", job_id or "default").lstrip(".") or "default"
    return f"{source}/logs/{name}.json.gz"


def _artifact(journal: Journal, name: str) -> str:
    return f"{journal.source}/{journal.run_id}/{name}"


def lock_lost(journal: Journal) -> bool:
    return bool(journal.lock is not None and getattr(journal.lock, "lost", False))


def check_lock(journal: Journal) -> None:
    if lock_lost(journal):
        raise LockLostError(
            f"run {journal.run_id}: the lock on source {journal.source!r} was lost (renewal"
            " failed or another run took it over); stopping without writing — the holder"
            " continues from the journal"
        )


@dataclass(frozen=True, slots=True)
class KeptRecord:
    """One mapped record kept with a run (``records.jsonl.gz``) for planning it again."""

    line: int
    external_id: str
    data: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class OutcomeRow:
    """A record's reconciled outcome as stored with its run (``outcomes.json.gz``)."""

    external_id: str
    outcome: str
    error_code: str | None
    reason: str | None
    provisioning_action: str | None = None
    activity_at: datetime | None = None
    log_id: str | None = None

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> OutcomeRow:
        # Rows stored before the action, time and log id were kept are shorter.
        return cls(
            row[0],
            row[1],
            row[2],
            row[3],
            row[4] if len(row) > 4 else None,
            from_iso(row[5]) if len(row) > 5 else None,
            row[6] if len(row) > 6 else None,
        )

    def to_row(self) -> list[Any]:
        at = to_iso(self.activity_at) if self.activity_at is not None else None
        return [
            self.external_id,
            self.outcome,
            self.error_code,
            self.reason,
            self.provisioning_action,
            at,
            self.log_id,
        ]


class RunStore:
    """A source's runs in the state store: journals, markers, plans and reports."""

    def __init__(self, store: StateStore, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    def __repr__(self) -> str:
        return repr(self.store)

    def lock(self, source: str, owner: str) -> AbstractContextManager[SourceLock]:
        return self.store.lock(source, owner=owner)

    # -- journals -------------------------------------------------------------------------

    def load(self, source: str, run_id: str) -> Journal | None:
        """The run's journal (with its etag), None when the run does not exist."""
        got = self.store.get_document(run_key(source, run_id))
        return None if got is None else self._journal(got)

    def require(self, source: str, run_id: str) -> Journal:
        journal = self.load(source, run_id)
        if journal is None:
            raise RunError(f"no run {run_id} for source {source}; see `connector runs list`")
        return journal

    def create(self, journal: Journal) -> None:
        """Write a new run's journal (refused if one exists)."""
        journal.etag = self.store.put_document(
            run_key(journal.source, journal.run_id), journal_to_doc(journal), if_none_match=True
        )

    def save(self, journal: Journal) -> None:
        """Write the journal (small: counters, the latest acknowledgements, never
        per-record data), only while the source's lock is still ours; the new etag is kept
        on ``journal``. Every :data:`~connector.sync.acks.ACK_CHUNK_SIZE` acknowledgements
        are first sealed into a chunk (written once, before the journal that names it)."""
        check_lock(journal)
        self._seal_acks(journal)
        journal.updated_at = self.clock.now()
        key = run_key(journal.source, journal.run_id)
        try:
            if journal.etag is None:
                journal.etag = self.store.put_document(
                    key, journal_to_doc(journal), if_none_match=True
                )
            else:
                journal.etag = self.store.put_document(
                    key, journal_to_doc(journal), if_match=journal.etag
                )
        except DocumentConflictError as exc:
            if journal.lock is None:
                raise
            # Written by another run while this one holds the source's lock: the lock was
            # taken over (a lease broken or lapsed before the heartbeat noticed). Stop as
            # for any lost lock: nothing more is written, the new holder continues.
            if isinstance(journal.lock, HeldLock):
                journal.lock.lost = True
            raise LockLostError(
                f"run {journal.run_id}: another run wrote its journal while this one held"
                f" the lock on source {journal.source!r} (the lock was taken over);"
                " stopping without writing — the holder continues from the journal"
            ) from exc

    def _seal_acks(self, journal: Journal) -> None:
        for chunk in journal.batches.to_seal(ACK_CHUNK_SIZE):
            check_lock(journal)
            self.store.write_artifact(
                _ack_chunk(journal.source, journal.run_id, chunk.name),
                gzip.compress(chunk.body, compresslevel=5),
                content_type="application/gzip",
            )
            journal.batches.sealed(chunk)

    def _journal(self, got: tuple[dict[str, Any], str]) -> Journal:
        journal = journal_from_doc(got[0])
        journal.etag = got[1]
        source, run_id = journal.source, journal.run_id

        def read(name: str) -> bytes:
            return gzip.decompress(self.store.read_artifact(_ack_chunk(source, run_id, name)))

        journal.batches.reader = read
        return journal

    def runs(self, source: str) -> Iterator[Journal]:
        """Every run of ``source`` (in key order)."""
        for key in self.store.list_documents(f"runs/{source}/"):
            got = self.store.get_document(key)
            if got is not None:
                yield self._journal(got)

    def count_runs(self, source: str, run_id_prefix: str) -> int:
        """Runs of ``source`` whose id starts with ``run_id_prefix`` (child run numbers)."""
        return len(self.store.list_documents(run_key(source, run_id_prefix)))

    # -- source documents -------------------------------------------------------------------

    def last_applied(self, source: str) -> datetime | None:
        got = self.store.get_document(_source_key(source))
        return from_iso(got[0].get("lastAppliedExtractAt")) if got else None

    def mark_applied(self, source: str, journal: Journal) -> None:
        got = self.store.get_document(_source_key(source))
        doc = dict(got[0]) if got else {"source": source}
        new = journal.extract_at
        old = from_iso(doc.get("lastAppliedExtractAt"))
        if new is not None and (old is None or new >= old):
            doc["lastAppliedExtractAt"] = to_iso(new)
            doc["lastAppliedRunId"] = journal.run_id
        self._put(_source_key(source), doc, got[1] if got else None)

    def pull_record(self, source: str) -> tuple[dict[str, Any], str | None]:
        """The source's pull record (empty before its first pull) and its etag."""
        got = self.store.get_document(pull_key(source))
        return (dict(got[0]), got[1]) if got else ({}, None)

    def save_pull_record(self, source: str, doc: Mapping[str, Any], etag: str | None) -> None:
        """Replace the version read at ``etag`` (create it when None); a conditional
        write, so two pulls of one source racing each other cannot both record."""
        self._put(pull_key(source), doc, etag)

    def attempted(self, source: str) -> tuple[dict[str, str], str | None]:
        """Fingerprints the service refused, per record, and the document's etag."""
        got = self.store.get_document(_attempted_key(source))
        return (dict(got[0].get("fingerprints") or {}), got[1]) if got else ({}, None)

    def save_attempted(self, source: str, fingerprints: dict[str, str], etag: str | None) -> None:
        self._put(_attempted_key(source), {"source": source, "fingerprints": fingerprints}, etag)

    def reference_resends(self, source: str) -> tuple[dict[str, tuple[str, int]], str | None]:
        """Automatic re-sends per record (fingerprint, count) and the document's etag."""
        got = self.store.get_document(_resends_key(source))
        records = (got[0] if got else {}).get("records") or {}
        resent = {ext: (str(v[0]), int(v[1])) for ext, v in records.items()}
        return resent, (got[1] if got else None)

    def save_reference_resends(
        self, source: str, counts: Mapping[str, tuple[str, int]], etag: str | None
    ) -> None:
        body = {"source": source, "records": {ext: list(v) for ext, v in counts.items()}}
        self._put(_resends_key(source), body, etag)

    def _put(self, key: str, doc: Mapping[str, Any], etag: str | None) -> None:
        """Create the document (``etag`` None) or replace the version read at ``etag``."""
        if etag is None:
            self.store.put_document(key, doc, if_none_match=True)
        else:
            self.store.put_document(key, doc, if_match=etag)

    # -- operator markers -------------------------------------------------------------------

    def approval_marker(self, run_id: str) -> str | None:
        """Who approved ``run_id`` with a marker document, None without a marker.

        A marker may be written by hand (``touch``, an empty blob): content that is not a
        JSON object still counts as an approval, just without a name.
        """
        return self._marker(approval_key(run_id), "approval marker")

    def discard_marker(self, run_id: str) -> str | None:
        """Who asked to discard ``run_id`` with a marker document, None without a marker
        (content that is not a JSON object still counts, just without a name)."""
        return self._marker(discard_key(run_id), "discard marker")

    def discard_markers(self, source: str) -> set[str]:
        """Run ids of ``source`` that have a discard marker."""
        return {k.rsplit("/", 1)[-1] for k in self.store.list_documents(discard_key(source + "-"))}

    def delete_markers(self, run_id: str, *, discard: bool = True) -> None:
        keys = [approval_key(run_id)] + ([discard_key(run_id)] if discard else [])
        for key in keys:
            with contextlib.suppress(StateError):
                self.store.delete_document(key)

    def _marker(self, key: str, anonymous: str) -> str | None:
        try:
            got = self.store.get_document(key)
        except StateError:
            return anonymous if key in self.store.list_documents(key) else None
        if got is None:
            return None
        by = got[0].get("by") if isinstance(got[0], Mapping) else None
        return " ".join(str(by).split())[:100] if by else anonymous

    # -- the record index -------------------------------------------------------------------

    def load_records(self, source: str) -> RecordIndex:
        return self.store.load_records(source)

    def save_records(self, index: RecordIndex, payloads: PayloadUpdates | None = None) -> None:
        if payloads is None:
            self.store.save_records(index)
        else:
            self.store.save_records(index, payloads=payloads)

    def payloads(self, source: str, external_ids: Collection[str]) -> dict[str, Any]:
        return self.store.get_payloads(source, external_ids)

    def call_counts(self) -> dict[str, int]:
        """The tenant's bulkUpload calls per hour bucket (what the daily budget counts)."""
        return self.store.load_call_counts()

    # -- the plan and its batches -----------------------------------------------------------

    def write_plan(self, journal: Journal, ops: PlanOps) -> int:
        """Store the plan and which records go into which batch; returns the batches.
        The plan is streamed to the store, never whole in memory."""
        with self.store.artifact_writer(_artifact(journal, "plan.jsonl.gz")) as out:
            write_plan_to(out, ops)
        members = ops.members()
        self._write_gz(journal, "batches.json.gz", orjson.dumps(members))
        return len(members)

    def load_plan(self, journal: Journal) -> PlanOps:
        """The run's stored plan (compact: payloads are read when asked for)."""
        try:
            return self._read_plan(journal.source, journal.run_id)
        except StateError as exc:
            raise RunError(
                f"run {journal.run_id}: its stored plan is missing ({exc}); discard the run and"
                " deliver the extract again"
            ) from exc

    def _read_plan(self, source: str, run_id: str) -> PlanOps:
        path = f"{source}/{run_id}/plan.jsonl.gz"
        with self.store.artifact_reader(path) as src:
            try:
                return read_plan(src)
            except (OSError, EOFError, ValueError, orjson.JSONDecodeError) as exc:
                raise StateError(f"{path}: unreadable ({type(exc).__name__})") from exc

    def plan_or_empty(self, journal: Journal) -> PlanOps:
        try:
            return self.load_plan(journal)
        except RunError:
            return PlanOps()

    def iter_plan(self, journal: Journal) -> Iterator[PlannedOp]:
        """The stored plan one record at a time (nothing when it is missing): memory is
        one record, not the plan."""
        try:
            with (
                self.store.artifact_reader(_artifact(journal, "plan.jsonl.gz")) as src,
                gzip.GzipFile(fileobj=src, mode="rb") as lines,
            ):
                for raw in lines:
                    if raw.strip():
                        yield decode_op(raw)
        except StateError:
            return

    def batch_members(self, journal: Journal) -> list[list[str]]:
        """The external ids of each of the run's batches, in plan order (runs stored
        before the membership was kept: worked out from the plan)."""
        try:
            blob = self.store.read_artifact(_artifact(journal, "batches.json.gz"))
        except StateError:
            return self.plan_or_empty(journal).members()
        members: list[list[str]] = orjson.loads(gzip.decompress(blob))
        return members

    # -- other artifacts --------------------------------------------------------------------

    def write_kept_records(self, journal: Journal, src: IO[bytes]) -> None:
        """Store the run's mapped records (``src``: the gzip'd lines, read from its start)."""
        with self.store.artifact_writer(_artifact(journal, "records.jsonl.gz")) as out:
            shutil.copyfileobj(src, out, 1 << 20)

    def load_kept_records(self, journal: Journal) -> Iterator[KeptRecord]:
        """The run's kept mapped records, streamed (a missing file raises :class:`RunError`
        before the first record)."""
        path = _artifact(journal, "records.jsonl.gz")
        if path not in self.store.list_artifacts(path):
            raise RunError(
                f"run {journal.run_id}: its kept records are missing (no {path}); discard"
                " the run and deliver the extract again"
            )
        return self._kept_records(path)

    def _kept_records(self, path: str) -> Iterator[KeptRecord]:
        with self.store.artifact_reader(path) as src, gzip.GzipFile(fileobj=src) as gz:
            for raw in gz:
                if raw.strip():
                    line, ext, data = orjson.loads(raw)
                    yield KeptRecord(int(line), str(ext), data)

    def write_rejected(self, journal: Journal, rejected: Iterable[RejectedRow]) -> None:
        """Rejected rows live next to the plan, not in the journal (rewritten per batch)."""
        rows = [[r.line, r.reason, r.external_id] for r in rejected]
        if rows:
            self._write_gz(journal, "rejected.json.gz", orjson.dumps(rows))

    def load_rejected(self, journal: Journal) -> list[RejectedRow]:
        if journal.rejected:
            return [RejectedRow(r.line, r.reason, r.external_id) for r in journal.rejected]
        if not journal.rejected_count:
            return []
        try:
            blob = self.store.read_artifact(_artifact(journal, "rejected.json.gz"))
        except StateError:
            return []
        return [RejectedRow(int(a), str(b), c) for a, b, c in orjson.loads(gzip.decompress(blob))]

    def write_outcomes(self, journal: Journal, rows: Iterable[OutcomeRow]) -> None:
        """One JSON array, a row per line, compressed as the rows come (never all held)."""
        packer = zlib.compressobj(5, zlib.DEFLATED, 31)
        parts: list[bytes] = []
        buf = bytearray(b"[")
        sep = b"\n"
        for row in rows:
            buf += sep + orjson.dumps(row.to_row())
            sep = b",\n"
            if len(buf) >= 1 << 20:
                parts.append(packer.compress(bytes(buf)))
                buf.clear()
        buf += b"\n]"
        parts += [packer.compress(bytes(buf)), packer.flush()]
        body = b"".join(parts)
        self.store.write_artifact(
            _artifact(journal, "outcomes.json.gz"), body, content_type="application/gzip"
        )

    def load_outcomes(
        self, source: str, run_id: str, only: Collection[str] | None = None
    ) -> dict[str, OutcomeRow]:
        """The run's outcomes by externalId (``only``: just those records, read as a
        stream when the rows are one per line, as written since they were)."""
        return {
            row.external_id: row
            for row in self.iter_outcomes(source, run_id)
            if only is None or row.external_id in only
        }

    def iter_outcomes(self, source: str, run_id: str) -> Iterator[OutcomeRow]:
        """The run's outcomes one row at a time (nothing when there are none yet)."""
        try:
            blob = self.store.read_artifact(f"{source}/{run_id}/outcomes.json.gz")
        except StateError:
            return
        for row in _outcome_rows(blob):
            yield OutcomeRow.from_row(row)

    def load_log_book(self, source: str, job_id: str | None) -> bytes | None:
        """The stored log book of the source's job (gzip bytes, read by
        ``LogBook.from_bytes``), None when there is none."""
        try:
            return self.store.read_artifact(log_book_key(source, job_id))
        except StateError:
            return None  # none yet: the next read starts from the open runs' first send

    def save_log_book(self, source: str, job_id: str | None, body: bytes) -> None:
        self.store.write_artifact(
            log_book_key(source, job_id), body, content_type="application/gzip"
        )

    def write_report(
        self, journal: Journal, name: str, parts: Iterable[bytes], content_type: str
    ) -> str:
        """Store one of the run's report files as its parts come (never whole in memory);
        returns where it is."""
        path = _artifact(journal, name)
        with self.store.artifact_writer(path, content_type=content_type) as out:
            for part in parts:
                out.write(part)
        return self.store.artifact_location(path)

    def index_rows(self) -> tuple[dict[str, dict[str, Any]] | None, str | None]:
        """The runs index's rows by run id and the document's etag (None: never written)."""
        got = self.store.get_document(REPORT_INDEX_KEY)
        if got is None:
            return None, None
        return dict(got[0].get("runs") or {}), got[1]

    def save_index_rows(self, rows: Mapping[str, Mapping[str, Any]], etag: str | None) -> None:
        """Replace the rows read at ``etag`` (create when None); a conflict raises
        :class:`~connector.errors.DocumentConflictError`."""
        self._put(REPORT_INDEX_KEY, {"runs": dict(rows)}, etag)

    def has_report(self, journal: Journal) -> bool:
        """Whether the run's report.html was written before."""
        name = _artifact(journal, "report.html")
        return name in self.store.list_artifacts(name)

    def write_index(self, body: bytes) -> str:
        """The runs index (``index.html`` beside the sources' report folders)."""
        return self.store.write_artifact(INDEX_NAME, body, content_type="text/html; charset=utf-8")

    def previous_payloads(
        self, journal: Journal, ops: Sequence[PlannedOp]
    ) -> Mapping[str, Mapping[str, Any]]:
        """The payload each planned record had before this run: the record index while it
        still holds the last run's send, else that run's stored plan (missing: left out).
        Decoded as looked up (:class:`~connector.sync.op_table.PayloadMap`)."""
        table = PlanOps.of(ops).table
        found = PayloadMap()
        rows = [k for k in range(len(table)) if table.kind(k) != "joiner" and table.prev(k)]
        if not rows:
            return found
        entries = self.load_records(journal.source).entries
        in_index = [k for k in rows if _holds(entries.get(table.ext[k]), table.prev(k))]
        del entries
        self.store.spool_payloads(journal.source, [table.ext[k] for k in in_index], found.add)
        by_run: dict[str, set[str]] = {}
        for k in rows:
            ext, prev = table.ext[k], str(table.prev(k))
            if ext not in found:  # not in the index (or its payload is gone): the run's plan
                by_run.setdefault(prev, set()).add(ext)
        for run_id, ids in by_run.items():
            try:
                plan = self._read_plan(journal.source, run_id)
            except StateError:
                continue
            found.add_table(plan.table, ids)
        return found

    def report_location(self, journal: Journal, name: str) -> str:
        """Where one of the run's report files is or would be (no I/O)."""
        return self.store.artifact_location(_artifact(journal, name))

    def report_locations(self, source: str, run_id: str) -> dict[str, str]:
        return {n: self.store.artifact_location(f"{source}/{run_id}/{n}") for n in REPORT_NAMES}

    def _write_gz(
        self, journal: Journal, name: str, data: bytes, *, compressed: bool = False
    ) -> None:
        body = data if compressed else gzip.compress(data, compresslevel=5)
        self.store.write_artifact(_artifact(journal, name), body, content_type="application/gzip")


def _holds(entry: RecordEntry | None, run_id: str | None) -> bool:
    """Whether the index entry still holds ``run_id``'s send."""
    return entry is not None and entry.run_id == run_id


def _ack_chunk(source: str, run_id: str, name: str) -> str:
    return f"{source}/{run_id}/acks/{name}.json.gz"


def _outcome_rows(blob: bytes) -> Iterator[list[Any]]:
    """The rows of ``outcomes.json.gz``: one per line since rows were written as a stream;
    a file written before (one line) is read whole."""
    with gzip.GzipFile(fileobj=io.BytesIO(blob)) as lines:
        first = lines.readline()
        if first.strip() != b"[":
            rest = first + lines.read()
            yield from orjson.loads(rest)
            return
        for raw in lines:
            raw = raw.rstrip().removesuffix(b",")
            if raw and raw != b"]":
                yield orjson.loads(raw)
