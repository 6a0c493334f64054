"""The timer's pull step: every ``sql``/``rest`` source whose ``schedule`` is due is pulled.

A source is due when a moment of its NCRONTAB schedule has passed since its last
successful pull (:func:`connector.sources.pull.due_sources`, the last pulls from the
engine's pull records). The step runs in each timer pass (every 15 minutes by default),
so a pull happens at the first pass at or after its scheduled moment: schedules finer
than the timer's interval are pulled once per pass. A failed pull records nothing (the
source stays due and is tried again next pass), is logged and counted as a
``pull_failed`` event, and is listed in the status ``/api/health`` serves until a pull
of that source succeeds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from connector.clock import Clock
from connector.config import SourcesConfig
from connector.errors import ConcurrentRunError, ConnectorError, SourceError
from connector.functions.telemetry import Telemetry
from connector.sync.engine import Engine
from connector.sync.summary import loggable

if TYPE_CHECKING:
    from connector.sources.sql import TokenSource

__all__ = ["PullOutcome", "Pulls"]

log = logging.getLogger("connector.functions")


@dataclass(frozen=True, slots=True)
class PullOutcome:
    """What the step did with one due source. ``outcome``: pulled | unchanged | busy |
    failed; ``error`` is the sanitised message of a failure (names the source, never a
    secret or a value); ``code`` its error type."""

    source: str
    outcome: str
    at: str
    rows: int = 0
    run_id: str | None = None
    state: str | None = None
    error: str | None = None
    code: str | None = None

    def to_status(self) -> dict[str, object]:
        """The entry under ``pulls`` in the status blob."""
        out: dict[str, object] = {"outcome": self.outcome, "at": self.at, "rows": self.rows}
        for key, value in (("runId", self.run_id), ("state", self.state)):
            if value is not None:
                out[key] = value
        if self.error is not None:
            out["error"] = self.error
            out["code"] = self.code
        return out


class Pulls:
    """Pulls every due source through the engine, one at a time."""

    def __init__(
        self,
        engine: Engine,
        config: SourcesConfig,
        clock: Clock,
        telemetry: Telemetry,
        credential: TokenSource | None,
    ) -> None:
        self.engine = engine
        self.config = config
        self.clock = clock
        self.telemetry = telemetry
        self.credential = credential

    async def run(self) -> list[PullOutcome]:
        from connector.sources.pull import due_sources

        pulled = [s for s in self.config.sources if s.kind in ("sql", "rest")]
        if not pulled:
            return []
        now = self.clock.now()
        due = due_sources(pulled, self.engine.last_pulls(), now)
        return [await self._pull(src.name) for src in due]

    async def _pull(self, source: str) -> PullOutcome:
        at = self.clock.now().isoformat()
        try:
            result = await self.engine.pull(source, credential=self.credential)
        except ConcurrentRunError:
            log.info("pull: source %s busy, pulled next pass", source)
            return PullOutcome(source, "busy", at)
        except ConnectorError as exc:
            return self._failed(source, at, exc)
        s = result.summary
        if s is None:
            self.telemetry.source_pulled(source=source, rows=result.rows, run_id="")
            return PullOutcome(source, "unchanged", at, result.rows)
        if s.resumed:
            self.telemetry.record_run(s, "resume")
        elif not s.duplicate:
            self.telemetry.record_run(s, "ingest")
        self.telemetry.source_pulled(source=source, rows=result.rows, run_id=s.run_id)
        if s.state == "failed":
            error = f"source {source!r}: the pulled snapshot could not be planned ({s.run_id})"
            self.telemetry.pull_failed(source=source, reason_code="plan_failed")
            return PullOutcome(
                source, "failed", at, result.rows, s.run_id, s.state, error, "plan_failed"
            )
        return PullOutcome(source, "pulled", at, result.rows, s.run_id, s.state)

    def _failed(self, source: str, at: str, exc: ConnectorError) -> PullOutcome:
        code = type(exc).__name__
        text = loggable(exc)
        log.error("pull: source %s failed (%s)", source, text)
        reason = code if isinstance(exc, SourceError) else f"engine_{code}"
        self.telemetry.pull_failed(source=source, reason_code=reason)
        return PullOutcome(source, "failed", at, error=text, code=code)
