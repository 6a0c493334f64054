"""A run's plan and what planning keeps with it, in the state store.

Part of :class:`~connector.sync.run_store.RunStore`: the stored plan
(``plan.jsonl.gz``, streamed in the format every earlier version wrote, never whole in
memory), which records went into which batch (``batches.json.gz``; runs planned before it
was kept work it out from their plan), the mapped records kept to plan the run again
(``records.jsonl.gz``), the file's rejected rows (``rejected.json.gz``) and the payloads
planned records had before the run.
"""

from __future__ import annotations

import gzip
import shutil
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

import orjson

from connector.errors import RunError, StateError
from connector.report import RejectedRow
from connector.state.store import StateStore
from connector.sync.journal import Journal
from connector.sync.op_table import PayloadMap
from connector.sync.plans import PlannedOp, PlanOps, decode_op, read_plan, write_plan_to
from connector.sync.run_keys import artifact_key

__all__ = ["KeptRecord", "RunPlans"]


@dataclass(frozen=True, slots=True)
class KeptRecord:
    """One mapped record kept with a run (``records.jsonl.gz``) for planning it again."""

    line: int
    external_id: str
    data: Mapping[str, Any]


class RunPlans:
    """A run's plan, batch members, kept records and rejected rows (part of ``RunStore``)."""

    store: StateStore

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
        path = artifact_key(source, run_id, "plan.jsonl.gz")
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
        runs = self.store.record_runs(journal.source, {table.ext[k] for k in rows})
        in_index = [k for k in rows if runs.get(table.ext[k]) == table.prev(k)]
        del runs
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

    # -- kept with the plan -----------------------------------------------------------------

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

    def _write_gz(self, journal: Journal, name: str, data: bytes) -> None:
        body = gzip.compress(data, compresslevel=5)
        self.store.write_artifact(_artifact(journal, name), body, content_type="application/gzip")


def _artifact(journal: Journal, name: str) -> str:
    return artifact_key(journal.source, journal.run_id, name)
