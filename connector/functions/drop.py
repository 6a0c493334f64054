"""One dropped file: find its source, hand it to the engine, archive or quarantine it.

A file leaves ``incoming`` only after a verified copy in ``archive`` (planned, whatever
the run's later state) or ``quarantine`` (no source, or the engine refused the extract,
with an error file naming the rejected rows by line). A busy source defers the file:
it stays in ``incoming`` and the timer's sweep takes it.

The handler is given the file's name only (by the blob trigger, or by the timer's sweep)
and reads the bytes itself, a bounded chunk at a time, into a private temporary file
(:mod:`connector.functions.blobfile`) that the engine reads and the copy is made from.
"""

from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path

from connector.config import SourcesConfig
from connector.errors import ConcurrentRunError, ConfigError, RunError
from connector.functions.blobfile import Content
from connector.functions.dropzone import DropZone, QuarantineProblem, split_incoming_name
from connector.functions.outcomes import DropOutcome, summary_detail
from connector.functions.telemetry import Telemetry
from connector.sync.engine import Engine
from connector.sync.journal import RunState
from connector.sync.summary import RunSummary

__all__ = ["MAX_PROBLEMS", "DropHandler"]

#: Rejected rows listed in a quarantined file's error file (the report has them all).
MAX_PROBLEMS = 1000


class DropHandler:
    """Handles one dropped file against the drop zone, the sources and the engine."""

    def __init__(
        self, zone: DropZone, config: SourcesConfig, engine: Engine, telemetry: Telemetry
    ) -> None:
        self.zone = zone
        self.config = config
        self.engine = engine
        self.telemetry = telemetry

    async def ingest(self, trigger_name: str) -> DropOutcome:
        """Handle one dropped file, by name: read it → source → engine → archive or quarantine."""
        try:
            blob_name = split_incoming_name(trigger_name)
        except ValueError as exc:
            return DropOutcome(trigger_name, "ignored", detail=str(exc))
        incoming = self.zone.incoming(blob_name)
        if incoming is None:
            # Only ever deleted after a verified copy: an earlier delivery finished it.
            return DropOutcome(blob_name, "gone", detail="already archived or quarantined")
        with tempfile.TemporaryDirectory(prefix="connector-drop-") as folder:
            data = self.zone.download_incoming(blob_name, Path(folder))
            if data == "gone":
                return DropOutcome(blob_name, "gone", detail="removed while it was read")
            if data == "changed":
                return DropOutcome(
                    blob_name,
                    "deferred",
                    detail="replaced while it was read; its own event follows",
                )
            return await self._handle(blob_name, data, incoming.received_at)

    async def _handle(self, blob_name: str, data: Content, received_at: datetime) -> DropOutcome:
        """The file's bytes are on local disk: find its source, run the engine, place it."""
        if data.path is None:
            raise ValueError("a dropped file is handled from its local copy")
        try:
            source = self.config.source_for(blob_name)
        except ConfigError as exc:
            return self._quarantine(blob_name, data, None, str(exc), "ambiguous_source")
        if source is None:
            names = ", ".join(s.name for s in self.config.sources)
            reason = (
                f"no source matches {blob_name!r} (sources: {names}); drop the file under a"
                " source's folder, or add a source whose match rule covers it"
            )
            return self._quarantine(blob_name, data, None, reason, "unknown_source")

        try:
            summary = await self.engine.ingest(
                source.name,
                blob_name,
                data.path,
                received_at,
                file_time=received_at,  # the blob's creation time
                resume_waiting=True,
            )
        except ConcurrentRunError:
            # Another file of this source is being applied. Do not hold the invocation:
            # the file stays in incoming and the timer picks it up.
            return DropOutcome(
                blob_name, "deferred", source.name, detail="source busy; the timer will take it"
            )
        if summary.resumed is False:
            # A redelivery of a waiting run whose source another invocation holds.
            return DropOutcome(
                blob_name,
                "deferred",
                source.name,
                summary.run_id,
                summary.state,
                detail="source busy; the timer continues the run",
                duplicate=True,
            )
        if summary.resumed:
            self.telemetry.record_run(summary, "resume")
            summary.duplicate = True
        elif not summary.duplicate:
            self.telemetry.record_run(summary, "ingest")
        return self._place(blob_name, data, source.name, received_at, summary)

    def _place(
        self, blob_name: str, data: Content, source: str, received_at: datetime, summary: RunSummary
    ) -> DropOutcome:
        """Quarantine an extract the engine refused; archive any other."""
        if summary.state == RunState.FAILED and not summary.planned:
            return self._quarantine(
                blob_name,
                data,
                source,
                summary.failed_reason or "the extract could not be planned",
                "extract_refused",
                problems=self._rejected_rows(summary.run_id),
                run_id=summary.run_id,
                summary=summary,
            )
        placed = self.zone.archive(
            source=source,
            blob_name=blob_name,
            data=data,
            received_at=received_at,
            run_id=summary.run_id,
        )
        return DropOutcome(
            blob_name,
            "archived",
            source,
            summary.run_id,
            summary.state,
            detail=summary_detail(summary),
            placed=f"archive/{placed.blob_name}",
            duplicate=summary.duplicate,
        )

    def _rejected_rows(self, run_id: str) -> list[QuarantineProblem]:
        """Line numbers and reasons of a refused file's bad rows, from the run's journal.

        The engine journals the rejected rows of a run it refused (messages name columns
        and rules, never values); the first :data:`MAX_PROBLEMS` go in the error file.
        """
        try:
            journal = self.engine.get_run(run_id)
        except RunError:
            return []
        rows = journal.rejected or []
        return [QuarantineProblem(r.reason or "rejected", r.line) for r in rows[:MAX_PROBLEMS]]

    def _quarantine(
        self,
        blob_name: str,
        data: Content,
        source: str | None,
        reason: str,
        code: str,
        *,
        problems: list[QuarantineProblem] | None = None,
        run_id: str | None = None,
        summary: RunSummary | None = None,
    ) -> DropOutcome:
        incoming = self.zone.incoming(blob_name)
        placed = self.zone.quarantine(
            source=source,
            blob_name=blob_name,
            data=data,
            reason=reason,
            problems=problems,
            run_id=run_id,
            received_at=incoming.received_at if incoming else None,
        )
        if placed.written:
            self.telemetry.file_quarantined(
                source=source or "unknown", reason_code=code, run_id=run_id
            )
        return DropOutcome(
            blob_name,
            "quarantined",
            source,
            run_id,
            summary.state if summary else None,
            detail=code,
            placed=f"quarantine/{placed.blob_name}",
            duplicate=bool(summary and summary.duplicate),
        )
