"""Telemetry for the Functions app: structured events and custom metrics, no personal data.

Every event is one log line on the ``connector.telemetry`` logger whose text carries
``key=value`` pairs (so it is useful in the plain host log), and whose ``extra``
carries the same pairs as attributes (Application Insights ``customDimensions`` when
Azure Monitor OpenTelemetry is on). The same facts feed OpenTelemetry counters:

==============================  =========================================
metric                          meaning
==============================  =========================================
``connector.records.planned``   records a planned run will send (by action)
``connector.records.sent``      records accepted by bulkUpload
``connector.records.failed``    records the provisioning logs report failed
``connector.runs.held``         runs stopped by the mass-change guard
``connector.runs.waiting``      runs parked on back-pressure (bucket full, quota)
``connector.throttles``         429 / bucket-full / quota events
``connector.jobs.quarantined``  provisioning jobs found in quarantine
``connector.files.quarantined`` dropped files moved to quarantine
``connector.pulls.failed``      pulls of sql/rest sources that failed
``connector.sources.stale``     timer passes that found a source stale
==============================  =========================================

Only source names, run ids, counts and reason *codes* are recorded; the API takes no
free-form record data, so names and e-mail addresses cannot reach telemetry.

Azure Monitor is configured lazily, once per process, and only when
``APPLICATIONINSIGHTS_CONNECTION_STRING`` is set: importing this module costs nothing.
The host keeps forwarding ordinary worker logs to Application Insights itself, so the
exporter is attached to the ``connector.telemetry`` logger only (no duplicate traces).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from opentelemetry.metrics import Counter, Meter

    from connector.functions.settings import AppSettings
    from connector.sync.summary import RunSummary

__all__ = [
    "EVENT_LOGGER",
    "METRICS",
    "SENT_ACTIONS",
    "Telemetry",
    "configure_telemetry",
    "get_telemetry",
    "records_to_send",
    "waiting_kind",
]

EVENT_LOGGER = "connector.telemetry"
METRICS: dict[str, str] = {
    "records_planned": "connector.records.planned",
    "records_sent": "connector.records.sent",
    "records_failed": "connector.records.failed",
    "runs_held": "connector.runs.held",
    "runs_waiting": "connector.runs.waiting",
    "throttles": "connector.throttles",
    "jobs_quarantined": "connector.jobs.quarantined",
    "files_quarantined": "connector.files.quarantined",
    "pulls_failed": "connector.pulls.failed",
    "sources_stale": "connector.sources.stale",
}
#: Plan counts (``connector.sync.delta.DeltaPlan.counts``) that are records to send.
SENT_ACTIONS: tuple[str, ...] = ("joiners", "movers", "leavers", "retries", "resends")
_UNITS = {
    "records_planned": "{record}",
    "records_sent": "{record}",
    "records_failed": "{record}",
}
# Values are identifiers, counts or codes; anything else is cut to a safe token.
_SAFE = re.compile(r"[^A-Za-z0-9_.:\-/]+")
_MAX_VALUE = 120

_lock = threading.Lock()
_configured: bool | None = None
_telemetry: Telemetry | None = None


def _clean(value: object) -> str | int | float | bool:
    if isinstance(value, bool | int | float):
        return value
    return _SAFE.sub("_", str(value))[:_MAX_VALUE]


class Telemetry:
    """Emits the connector's events; ``meter`` None means log lines only."""

    def __init__(self, meter: Meter | None = None, logger: logging.Logger | None = None) -> None:
        self._log = logger or logging.getLogger(EVENT_LOGGER)
        self._counters: dict[str, Counter] = {}
        if meter is not None:
            for key, name in METRICS.items():
                self._counters[key] = meter.create_counter(
                    name, unit=_UNITS.get(key, "1"), description=key.replace("_", " ")
                )

    # -- the events -------------------------------------------------------------------

    def run_planned(self, *, source: str, run_id: str, counts: Mapping[str, int]) -> None:
        """A run's plan: the metric counts records to send per action; the log line has all."""
        for action in SENT_ACTIONS:
            self._add("records_planned", int(counts.get(action, 0)), source=source, action=action)
        self._event("run_planned", source=source, run_id=run_id, **dict(counts))

    def records_sent(self, *, source: str, run_id: str, count: int) -> None:
        self._add("records_sent", count, source=source)
        self._event("records_sent", source=source, run_id=run_id, count=count)

    def records_failed(self, *, source: str, run_id: str, count: int) -> None:
        self._add("records_failed", count, source=source)
        self._event(
            "records_failed", source=source, run_id=run_id, count=count, level=logging.WARNING
        )

    def run_held(self, *, source: str, run_id: str, reason_code: str) -> None:
        self._add("runs_held", 1, source=source, reason=reason_code)
        self._event(
            "run_held", source=source, run_id=run_id, reason=reason_code, level=logging.WARNING
        )

    def run_waiting(self, *, source: str, run_id: str, reason_code: str) -> None:
        self._add("runs_waiting", 1, source=source, reason=reason_code)
        self._event("run_waiting", source=source, run_id=run_id, reason=reason_code)

    def throttled(self, *, source: str, kind: str, run_id: str | None = None) -> None:
        """``kind``: ``429``, ``bucket_full`` or ``quota``."""
        self._add("throttles", 1, source=source, kind=kind)
        self._event(
            "throttled", source=source, run_id=run_id or "", kind=kind, level=logging.WARNING
        )

    def job_quarantined(self, *, source: str, reason_code: str) -> None:
        self._add("jobs_quarantined", 1, source=source, reason=reason_code)
        self._event("job_quarantined", source=source, reason=reason_code, level=logging.ERROR)

    def file_quarantined(self, *, source: str, reason_code: str, run_id: str | None = None) -> None:
        self._add("files_quarantined", 1, source=source, reason=reason_code)
        self._event(
            "file_quarantined",
            source=source,
            run_id=run_id or "",
            reason=reason_code,
            level=logging.WARNING,
        )

    def source_pulled(self, *, source: str, rows: int, run_id: str) -> None:
        """A ``sql``/``rest`` source was pulled (``run_id`` empty: nothing new)."""
        self._event("source_pulled", source=source, run_id=run_id, rows=rows)

    def pull_failed(self, *, source: str, reason_code: str) -> None:
        """A pull failed (the error type, e.g. ``SourceAuthError``); nothing was sent."""
        self._add("pulls_failed", 1, source=source, reason=reason_code)
        self._event("pull_failed", source=source, reason=reason_code, level=logging.ERROR)

    def source_stale(
        self, *, source: str, hours: int, expected_hours: float, run_id: str = ""
    ) -> None:
        """No new file (or pulled run) for ``hours``, more than the source's
        ``expect_every``; ``run_id`` is its last run (empty: none yet)."""
        self._add("sources_stale", 1, source=source)
        self._event(
            "source_stale",
            source=source,
            run_id=run_id,
            hours=hours,
            expected_hours=expected_hours,
            level=logging.WARNING,
        )

    # -- run summaries ----------------------------------------------------------------

    def record_run(self, s: RunSummary, phase: Literal["ingest", "resume", "reconcile"]) -> None:
        """The events a run summary stands for (counts only, no record data).

        ``phase``: ``ingest`` (a new run), ``resume`` (continued or approved) or
        ``reconcile``; each fact is reported in the one phase where it happens, so a run
        seen again by a later pass is not counted twice.
        """
        if phase == "ingest" and s.planned:
            self.run_planned(source=s.source, run_id=s.run_id, counts=s.planned)
        if phase == "ingest" and s.state == "held":
            self.run_held(source=s.source, run_id=s.run_id, reason_code="mass_change_guard")
        if phase in ("ingest", "resume"):
            if s.waiting or s.waiting_reason is not None:
                reason = waiting_kind(s)
                self.run_waiting(source=s.source, run_id=s.run_id, reason_code=reason)
                if reason in THROTTLE_KINDS:
                    self.throttled(source=s.source, kind=THROTTLE_KINDS[reason], run_id=s.run_id)
            elif s.state == "uploaded":
                sent = records_to_send(s.planned)
                if sent:
                    self.records_sent(source=s.source, run_id=s.run_id, count=sent)
        failed = int(s.outcomes.get("failed", 0))
        if phase == "reconcile" and s.state == "done" and failed:
            self.records_failed(source=s.source, run_id=s.run_id, count=failed)

    # -- plumbing ---------------------------------------------------------------------

    def _add(self, key: str, amount: int, **attrs: object) -> None:
        counter = self._counters.get(key)
        if counter is not None and amount:
            counter.add(amount, {k: _clean(v) for k, v in attrs.items()})

    def _event(self, name: str, *, level: int = logging.INFO, **fields: object) -> None:
        clean = {k: _clean(v) for k, v in fields.items()}
        text = " ".join(f"{k}={v}" for k, v in clean.items())
        extra = {f"connector.{k}": v for k, v in clean.items()}
        extra["connector.event"] = name
        self._log.log(level, "connector %s %s", name, text, extra=extra)


#: ``RunSummary.waiting_reason`` values that are back-pressure from the service, and the
#: ``kind`` they are counted under in ``connector.throttles``.
THROTTLE_KINDS: dict[str, str] = {
    "quota": "quota",
    "bucket_full": "bucket_full",
    "throttled": "429",
}


def waiting_kind(s: RunSummary) -> str:
    """The reason code of a waiting run: the engine's structured ``waiting_reason``
    (``quota``, ``bucket_full``, ``throttled``, ``transient``, ``lock_lost``, ``queued``)."""
    reason = s.waiting_reason
    return str(reason.value) if reason is not None else "unknown"


def records_to_send(counts: Mapping[str, int]) -> int:
    """Records a plan sends (joiners, movers, leavers, retries, re-sends)."""
    return sum(int(counts.get(a, 0)) for a in SENT_ACTIONS)


def configure_telemetry(
    settings: AppSettings,
    *,
    configure_fn: Callable[..., None] | None = None,
    credential_factory: Callable[[str | None], Any] | None = None,
) -> bool:
    """Configure Azure Monitor OpenTelemetry once per process, if a connection string is set.

    Returns whether Azure Monitor is on. ``configure_fn``/``credential_factory`` are
    seams for tests (the defaults are ``configure_azure_monitor`` and
    ``ManagedIdentityCredential``). Entra-only ingestion: with
    ``APPLICATIONINSIGHTS_AUTHENTICATION_STRING`` the exporter authenticates with the
    managed identity it names (Monitoring Metrics Publisher on the component).
    """
    global _configured, _telemetry
    with _lock:
        if _configured is not None:
            return _configured
        if settings.applicationinsights_connection_string is None:
            _configured = False
            _telemetry = Telemetry()
            return False
        if configure_fn is None:
            from azure.monitor.opentelemetry import configure_azure_monitor

            configure_fn = configure_azure_monitor
        kwargs: dict[str, Any] = {
            "connection_string": settings.applicationinsights_connection_string.get_secret_value(),
            "logger_name": EVENT_LOGGER,
            "enable_live_metrics": False,
        }
        if settings.applicationinsights_authentication_string is not None:
            factory = credential_factory or _managed_identity
            kwargs["credential"] = factory(settings.telemetry_client_id)
        configure_fn(**kwargs)
        logging.getLogger(EVENT_LOGGER).propagate = False  # exported once, by OpenTelemetry

        from opentelemetry import metrics

        _telemetry = Telemetry(metrics.get_meter("connector"))
        _configured = True
        return True


def get_telemetry() -> Telemetry:
    """The process's telemetry (log lines only until :func:`configure_telemetry` ran)."""
    global _telemetry
    with _lock:
        if _telemetry is None:
            _telemetry = Telemetry()
        return _telemetry


def reset_for_tests() -> None:
    """Forget the process-wide configuration (tests only)."""
    global _configured, _telemetry
    with _lock:
        _configured = None
        _telemetry = None
        logging.getLogger(EVENT_LOGGER).propagate = True


def _managed_identity(client_id: str | None) -> Any:
    from azure.identity import ManagedIdentityCredential

    return ManagedIdentityCredential(client_id=client_id)
