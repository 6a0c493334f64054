"""What a run came to, in the state store: reconciled outcomes, the log book and reports.

Part of :class:`~connector.sync.run_store.RunStore`: each record's reconciled outcome
(``outcomes.json.gz``, a JSON array written a row per line as the rows come; files
written before as one line still load), the job's log book, the run's report files
(streamed), and the runs index with its rows document.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from connector.errors import StateError
from connector.state.store import StateStore
from connector.sync.journal import Journal, from_iso, to_iso
from connector.sync.run_keys import (
    INDEX_NAME,
    REPORT_INDEX_KEY,
    REPORT_NAMES,
    artifact_key,
    log_book_key,
)

__all__ = ["OutcomeRow", "RunResults"]


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


class RunResults:
    """A run's outcomes and reports, the job's log book, the runs index (part of
    ``RunStore``)."""

    store: StateStore

    # -- outcomes -----------------------------------------------------------------------------

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
            blob = self.store.read_artifact(artifact_key(source, run_id, "outcomes.json.gz"))
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

    # -- reports ------------------------------------------------------------------------------

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

    def has_report(self, journal: Journal) -> bool:
        """Whether the run's report.html was written before."""
        name = _artifact(journal, "report.html")
        return name in self.store.list_artifacts(name)

    def report_location(self, journal: Journal, name: str) -> str:
        """Where one of the run's report files is or would be (no I/O)."""
        return self.store.artifact_location(_artifact(journal, name))

    def report_locations(self, source: str, run_id: str) -> dict[str, str]:
        return {
            n: self.store.artifact_location(artifact_key(source, run_id, n)) for n in REPORT_NAMES
        }

    def index_rows(self) -> tuple[dict[str, dict[str, Any]] | None, str | None]:
        """The runs index's rows by run id and the document's etag (None: never written)."""
        got = self.store.get_document(REPORT_INDEX_KEY)
        if got is None:
            return None, None
        return dict(got[0].get("runs") or {}), got[1]

    def save_index_rows(self, rows: Mapping[str, Mapping[str, Any]], etag: str | None) -> None:
        """Replace the rows read at ``etag`` (create when None); a conflict raises
        :class:`~connector.errors.DocumentConflictError`."""
        body = {"runs": dict(rows)}
        self.store.put_document(REPORT_INDEX_KEY, body, if_match=etag, if_none_match=etag is None)

    def write_index(self, body: bytes) -> str:
        """The runs index (``index.html`` beside the sources' report folders)."""
        return self.store.write_artifact(INDEX_NAME, body, content_type="text/html; charset=utf-8")


def _artifact(journal: Journal, name: str) -> str:
    return artifact_key(journal.source, journal.run_id, name)


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
