"""Pulled sources (``sql``, ``rest``) through the engine: pull, ingest, remember.

A pull reads the source into a snapshot (:func:`connector.sources.pull.pull_snapshot`)
and hands it to :meth:`Engine.ingest <connector.sync.engine.Engine.ingest>` exactly like a
dropped file: the run id is the snapshot's content hash (the same data pulled twice is a
no-op), ``full`` mode finds leavers by absence and the mass-change guard holds a
suspicious snapshot. A pull that fails (unreachable, refused credentials, no rows, a
value with no text form) raises :class:`~connector.errors.SourceError` before any run is
recorded: nothing is sent and nothing stored changes.

Per source, the pull record (``pulls/<source>``, :func:`connector.sync.run_keys.pull_key`)
remembers:

- ``lastPullAt``: the last pull that succeeded (recorded once its snapshot was ingested),
  which :func:`connector.sources.pull.due_sources` compares with the source's
  ``schedule``. A failed pull does not move it, so the source is tried again on the next
  timer pass.
- ``watermark`` (delta sources with a ``watermark`` column): the highest value of the
  last **applied** pull, the lower bound of the next one. A pull's new mark is first kept
  as ``pending`` beside its run and becomes the watermark only once that run is applied
  (``uploaded``, ``reconciling`` or ``done`` without having been stopped). A held, queued
  or waiting run keeps it pending, so the next pull reads the same rows again (they plan
  as unchanged once applied); a run that failed, was discarded or superseded drops it.
  So a held-then-discarded change is read again rather than lost.

A dry run pulls and plans but records nothing.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from connector.config import Source
from connector.errors import ConfigError
from connector.sources.snapshot import Watermark
from connector.sync.context import SyncContext
from connector.sync.journal import Journal, RunState, from_iso, to_iso
from connector.sync.summary import RunSummary

if TYPE_CHECKING:
    from connector.sources.sql import TokenSource

__all__ = ["PullResult", "PullState", "Puller", "settle"]

_APPLIED = frozenset({RunState.UPLOADED, RunState.RECONCILING, RunState.DONE})
_GONE = frozenset({RunState.FAILED, RunState.SUPERSEDED, RunState.DISCARDED})

Ingest = Callable[..., Awaitable[RunSummary]]


@dataclass(frozen=True, slots=True)
class PullState:
    """A source's pull record: last successful pull, applied and pending watermarks."""

    last_pull_at: datetime | None = None
    watermark: Watermark | None = None
    pending_run: str | None = None
    pending_watermark: Watermark | None = None
    last_run: str | None = None

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> PullState:
        pending = doc.get("pending") or {}
        return cls(
            last_pull_at=from_iso(doc.get("lastPullAt")),
            watermark=_mark(doc.get("watermark")),
            pending_run=pending.get("runId"),
            pending_watermark=_mark(pending.get("watermark")),
            last_run=doc.get("lastRunId"),
        )

    def to_doc(self, source: str) -> dict[str, Any]:
        doc: dict[str, Any] = {"source": source}
        if self.last_pull_at is not None:
            doc["lastPullAt"] = to_iso(self.last_pull_at)
        if self.watermark is not None:
            doc["watermark"] = self.watermark.to_json()
        if self.pending_run is not None and self.pending_watermark is not None:
            doc["pending"] = {
                "runId": self.pending_run,
                "watermark": self.pending_watermark.to_json(),
            }
        if self.last_run is not None:
            doc["lastRunId"] = self.last_run
        return doc


def _mark(data: object) -> Watermark | None:
    return Watermark.from_json(data) if isinstance(data, dict) else None


def settle(state: PullState, pending: Journal | None) -> PullState:
    """The record once the pending run's fate is known (pure).

    Applied (and not stopped part-way) → its mark becomes the watermark; failed,
    discarded, superseded or gone → the mark is dropped (its rows are read again);
    otherwise (planned, held, queued, waiting, blocked) it stays pending.
    """
    if state.pending_run is None:
        return state
    cleared = replace(state, pending_run=None, pending_watermark=None)
    if pending is None or pending.state in _GONE:
        return cleared
    if pending.state in _APPLIED:
        if pending.stop_reason:
            return cleared
        return replace(cleared, watermark=state.pending_watermark)
    return state


@dataclass(slots=True)
class PullResult:
    """What one pull did: rows read, the run it made (None: no rows, or nothing new)."""

    source: str
    rows: int
    pulled_at: datetime
    summary: RunSummary | None = None
    watermark: str | None = None
    """The pull's new watermark text (delta sources), pending until its run is applied."""


class Puller:
    """Pulls a source, ingests its snapshot through ``ingest`` and records the pull."""

    def __init__(self, ctx: SyncContext, ingest: Ingest) -> None:
        self.ctx = ctx
        self.ingest = ingest

    def last_pulls(self) -> dict[str, datetime | None]:
        """Each pulled source's last successful pull (None: never), for the timer."""
        out: dict[str, datetime | None] = {}
        for src in self.ctx.config.sources:
            if src.kind in ("sql", "rest"):
                doc, _ = self.ctx.runs.pull_record(src.name)
                out[src.name] = PullState.from_doc(doc).last_pull_at
        return out

    def state(self, source: str) -> tuple[PullState, str | None]:
        """The stored record, settled against its pending run's current state."""
        doc, etag = self.ctx.runs.pull_record(source)
        state = PullState.from_doc(doc)
        pending = None
        if state.pending_run is not None:
            pending = self.ctx.runs.load(source, state.pending_run)
        return settle(state, pending), etag

    async def pull(
        self,
        source: str,
        *,
        dry_run: bool = False,
        credential: TokenSource | None = None,
        settings: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
        directory: str | Path | None = None,
    ) -> PullResult:
        """Pull ``source`` and ingest the snapshot (see the module docstring)."""
        from connector.sources.pull import pull_snapshot

        src = self.ctx.config.source(source)
        _require_pulled(src)
        state, etag = self.state(src.name)
        now = self.ctx.clock.now()
        with tempfile.TemporaryDirectory(prefix="pull-", dir=directory) as private:
            snap = await asyncio.to_thread(
                pull_snapshot,
                src,
                settings=settings,
                credential=credential,
                last_watermark=state.watermark,
                transport=transport,
                directory=private,
            )
            # Under this name every message about the snapshot (a missing column, a
            # rejected line) names the source's pull, not a temporary file.
            path = snap.path.replace(Path(private) / f"{src.name}-pull.csv")
            summary = None
            if snap.rows:
                summary = await self.ingest(
                    src.name,
                    path.name,
                    path,
                    received_at=now,
                    file_time=now,  # the snapshot was taken now: its extract time
                    dry_run=dry_run,
                    resume_waiting=not dry_run,
                )
        mark = snap.watermark
        result = PullResult(src.name, snap.rows, now, summary, mark.text if mark else None)
        if not dry_run:
            self._record(src.name, state, etag, result, mark)
        return result

    def _record(
        self,
        source: str,
        state: PullState,
        etag: str | None,
        result: PullResult,
        mark: Watermark | None,
    ) -> None:
        summary = result.summary
        if summary is not None and summary.state == RunState.FAILED.value:
            # The snapshot could not be planned (e.g. a column the mapping needs is
            # missing): not a successful pull; the next timer pass tries again.
            return
        new = replace(state, last_pull_at=result.pulled_at)
        if summary is not None:
            new = replace(new, last_run=summary.run_id)
            if mark is not None:
                new = replace(new, pending_run=summary.run_id, pending_watermark=mark)
                new = settle(new, self.ctx.runs.load(source, summary.run_id))
        self.ctx.runs.save_pull_record(source, new.to_doc(source), etag)


def _require_pulled(src: Source) -> None:
    if src.kind not in ("sql", "rest"):
        raise ConfigError(
            f"source {src.name!r} is a {src.kind} source: it receives files and is not"
            " pulled; give the extract file instead"
        )
