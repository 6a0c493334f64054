"""Azure Functions adapter: triggers in, engine calls out.

Three functions (names shared with ``infra/`` and ``docs/architecture.md``):

- ``ingest_extract``: Event Grid blob trigger on ``incoming/{name}`` (connection
  ``HrDropStorage``). Picks the file's source, runs the sync engine's plan → hold/upload,
  then archives the file (or quarantines it with an error file). Back-pressure (bucket
  full, quota) leaves the run waiting and returns at once; the timer continues it.
- ``reconcile``: timer (``%RECONCILE_SCHEDULE%``, UTC on Flex Consumption). Picks up files
  left in ``incoming`` (missed or poisoned events, a source busy at delivery), resumes
  waiting runs and releases approved ones, reconciles open runs from the provisioning
  logs (writing reports), checks every job's health and records a status for ``health``.
- ``health``: ``GET /api/health`` (function key): the connector's view of itself.

This module imports only ``azure.functions`` at load time, so the host indexes it fast;
settings, storage, Graph and the engine are built on the first invocation, once per
worker process (see :func:`get_runtime`). All the logic is in :mod:`connector`; this
file parses trigger input, calls it, and logs a one-line outcome.
"""

from __future__ import annotations

import asyncio
import io
import logging
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import azure.functions as func

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient

    from connector.clock import Clock
    from connector.config import Source, SourcesConfig
    from connector.dropzone import DropZone
    from connector.pipeline import Engine, RunSummary, TargetFactory
    from connector.settings import AppSettings
    from connector.state.blob import BlobStateStore
    from connector.telemetry import Telemetry

__all__ = [
    "DropOutcome",
    "Runtime",
    "app",
    "get_runtime",
    "health",
    "ingest_extract",
    "reconcile",
    "reset_runtime",
]

log = logging.getLogger("connector.functions")

TRIGGER_CONNECTION = "HrDropStorage"  # == connector.settings.TRIGGER_CONNECTION
#: A file still in ``incoming`` this long after upload was missed by its event (or its
#: delivery gave up); the timer ingests it.
SWEEP_MIN_AGE = timedelta(minutes=10)
#: Files the timer picks up per pass, so one pass stays short.
SWEEP_MAX_FILES = 20
_OPEN = frozenset({"received", "planned", "held", "uploading", "uploaded", "reconciling"})
#: Rejected rows listed in a quarantined file's error file (the report has them all).
MAX_PROBLEMS = 1000

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


# -- outcomes -----------------------------------------------------------------------------


@dataclass(slots=True)
class DropOutcome:
    """What became of one dropped file; ``line()`` is the invocation's one-line log."""

    blob: str
    action: str  # archived | quarantined | deferred | gone
    source: str | None = None
    run_id: str | None = None
    state: str | None = None
    detail: str = ""
    placed: str | None = None
    duplicate: bool = False

    def line(self) -> str:
        parts = [f"{self.blob}: {self.action}"]
        if self.source:
            parts.append(f"source={self.source}")
        if self.run_id:
            parts.append(f"run={self.run_id}")
        if self.state:
            parts.append(f"state={self.state}")
        if self.duplicate:
            parts.append("duplicate=true")
        if self.placed:
            parts.append(f"to={self.placed}")
        if self.detail:
            parts.append(f"({self.detail})")
        return " ".join(parts)


@dataclass(slots=True)
class PassOutcome:
    """What one timer pass did."""

    swept: list[DropOutcome] = field(default_factory=list)
    resumed: list[RunSummary] = field(default_factory=list)
    reconciled: list[RunSummary] = field(default_factory=list)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def line(self) -> str:
        waiting = sum(1 for s in self.resumed if s.waiting)
        unhealthy = sorted(n for n, j in self.jobs.items() if not j.get("ok"))
        text = (
            f"swept={len(self.swept)} resumed={len(self.resumed)} still_waiting={waiting}"
            f" reconciled={len(self.reconciled)} jobs={len(self.jobs)}"
        )
        if unhealthy:
            text += " unhealthy_jobs=" + ",".join(unhealthy)
        if self.errors:
            text += f" errors={len(self.errors)}"
        return text


# -- the per-process runtime --------------------------------------------------------------


class Runtime:
    """Everything the functions share in one worker process: settings, clients, engine.

    Built on the first invocation by :func:`get_runtime` (not at import, so a bad
    setting is reported by the invocation, naming the setting). Tests build one with
    their own ``clock`` / ``targets``.
    """

    def __init__(
        self,
        settings: AppSettings,
        *,
        clock: Clock | None = None,
        targets: TargetFactory | None = None,
        service: BlobServiceClient | None = None,
    ) -> None:
        from connector.clock import SystemClock
        from connector.config import parse_sources
        from connector.dropzone import DropZone
        from connector.pipeline import Engine
        from connector.state.blob import BlobStateStore
        from connector.telemetry import configure_telemetry, get_telemetry

        logging.getLogger("azure").setLevel(logging.WARNING)  # not every SDK request
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        configure_telemetry(settings)
        self.telemetry: Telemetry = get_telemetry()
        self.config: SourcesConfig = _with_budget(
            parse_sources(settings.sources_document, path=_APP_ROOT / "CONNECTOR_SOURCES"),
            settings,
        )
        self.service: BlobServiceClient = service or _blob_service(settings)
        self.zone: DropZone = DropZone(self.service, clock=self.clock)
        self.zone.ensure_containers()
        self.store: BlobStateStore = BlobStateStore(self.service, clock=self.clock)
        self.targets: TargetFactory = targets or _graph_target_factory(
            settings, self.config, self.store, self.clock
        )
        self.engine: Engine = Engine(
            self.config, self.store, self.targets, self.clock, owner=_owner()
        )

    # -- ingest ---------------------------------------------------------------------

    async def ingest(self, trigger_name: str, data: bytes) -> DropOutcome:
        """Handle one dropped file: source → engine → archive or quarantine."""
        from connector.dropzone import QuarantineProblem, split_incoming_name
        from connector.errors import ConcurrentRunError, ConfigError

        try:
            blob_name = split_incoming_name(trigger_name)
        except ValueError as exc:
            return DropOutcome(trigger_name, "ignored", detail=str(exc))
        incoming = await asyncio.to_thread(self.zone.incoming, blob_name)
        if incoming is None:
            # Only ever deleted after a verified copy: an earlier delivery finished it.
            return DropOutcome(blob_name, "gone", detail="already archived or quarantined")

        try:
            source = self.config.source_for(blob_name)
        except ConfigError as exc:
            return await self._quarantine(blob_name, data, None, str(exc), "ambiguous_source")
        if source is None:
            names = ", ".join(s.name for s in self.config.sources)
            reason = (
                f"no source matches {blob_name!r} (sources: {names}); drop the file under a"
                " source's folder, or add a source whose match rule covers it"
            )
            return await self._quarantine(blob_name, data, None, reason, "unknown_source")

        try:
            summary = await self.engine.ingest(
                source.name, blob_name, io.BytesIO(data), incoming.received_at
            )
        except ConcurrentRunError:
            # Another file of this source is being applied. Do not hold the invocation:
            # the file stays in incoming and the timer picks it up.
            return DropOutcome(
                blob_name, "deferred", source.name, detail="source busy; the timer will take it"
            )
        if summary.duplicate and summary.state == "uploading":
            # A redelivery after a crash mid-upload: continue where the journal stopped.
            for resumed in await self.engine.resume_waiting():
                self._record(resumed, "resume")
                if resumed.run_id == summary.run_id:
                    summary = resumed
                    summary.duplicate = True
        elif not summary.duplicate:
            self._record(summary, "ingest")

        if summary.state == "failed" and not summary.planned:
            doc = await asyncio.to_thread(self.engine.get_run, summary.run_id)
            problems = [
                QuarantineProblem(str(r.get("reason") or "rejected"), _int_or_none(r.get("line")))
                for r in doc.get("rejected") or []
            ] or await asyncio.to_thread(self._rejected_rows, source, data)
            return await self._quarantine(
                blob_name,
                data,
                source.name,
                summary.failed_reason or "the extract could not be planned",
                "extract_refused",
                problems=problems,
                run_id=summary.run_id,
                summary=summary,
            )
        placed = await asyncio.to_thread(
            lambda: self.zone.archive(
                source=source.name,
                blob_name=blob_name,
                data=data,
                received_at=incoming.received_at,
                run_id=summary.run_id,
            )
        )
        return DropOutcome(
            blob_name,
            "archived",
            source.name,
            summary.run_id,
            summary.state,
            detail=_summary_detail(summary),
            placed=f"archive/{placed.blob_name}",
            duplicate=summary.duplicate,
        )

    def _rejected_rows(self, source: Source, data: bytes) -> list[Any]:
        """Line numbers and reasons of a refused file's bad rows, for its error file.

        The engine refuses a file over the rejected-row cap before it journals the rows,
        so they are read again here (messages name columns and rules, never values).
        """
        import tempfile
        from pathlib import Path

        from connector.dropzone import QuarantineProblem
        from connector.errors import ConnectorError

        with tempfile.TemporaryDirectory(prefix="connector-quarantine-") as tmp:
            path = Path(tmp) / "extract.csv"
            path.write_bytes(data)
            try:
                records = self.engine.records(source, path)
                for _ in records:
                    pass
            except (ConnectorError, ValueError):
                pass
            else:
                return []
            try:
                rejected = list(records.rejected)
            except Exception:  # the reader could not even start
                return []
        return [
            QuarantineProblem(
                str(getattr(r, "message", None) or getattr(r, "reason", None) or "rejected"),
                _int_or_none(getattr(r, "line", None)),
            )
            for r in rejected[:MAX_PROBLEMS]
        ]

    async def _quarantine(
        self,
        blob_name: str,
        data: bytes,
        source: str | None,
        reason: str,
        code: str,
        *,
        problems: list[Any] | None = None,
        run_id: str | None = None,
        summary: RunSummary | None = None,
    ) -> DropOutcome:
        incoming = await asyncio.to_thread(self.zone.incoming, blob_name)
        placed = await asyncio.to_thread(
            lambda: self.zone.quarantine(
                source=source,
                blob_name=blob_name,
                data=data,
                reason=reason,
                problems=problems,
                run_id=run_id,
                received_at=incoming.received_at if incoming else None,
            )
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

    # -- timer ------------------------------------------------------------------------

    async def run_pass(self) -> PassOutcome:
        """One timer pass: sweep incoming, resume, reconcile, job health, status."""
        out = PassOutcome()
        try:
            out.swept = await self.sweep_incoming()
        except Exception as exc:  # keep the pass going: resume/reconcile are independent
            log.exception("reconcile: sweeping incoming failed")
            out.errors.append(f"sweep: {type(exc).__name__}")
        out.resumed = await self.engine.resume_waiting()
        for s in out.resumed:
            self._record(s, "resume")
        out.reconciled = await self.engine.reconcile_open_runs()
        for s in out.reconciled:
            self._record(s, "reconcile")
        out.jobs = await self.check_jobs()
        await asyncio.to_thread(self._write_status, out)
        return out

    async def sweep_incoming(self) -> list[DropOutcome]:
        """Ingest files that are still in ``incoming`` well after their upload."""
        from connector.dropzone import INCOMING

        def stale() -> list[tuple[str, bytes]]:
            container = self.service.get_container_client(INCOMING)
            cutoff = self.clock.now() - SWEEP_MIN_AGE
            picked: list[tuple[str, bytes]] = []
            for item in container.list_blobs():
                created = item.creation_time or item.last_modified
                if created is not None and created > cutoff:
                    continue
                data = container.get_blob_client(item.name).download_blob().readall()
                picked.append((item.name, data))
                if len(picked) >= SWEEP_MAX_FILES:
                    break
            return picked

        outcomes: list[DropOutcome] = []
        for name, data in await asyncio.to_thread(stale):
            try:
                outcome = await self.ingest(name, data)
            except Exception as exc:  # one stuck file must not block the others
                log.warning("reconcile: %s could not be ingested (%s)", name, type(exc).__name__)
                outcome = DropOutcome(name, "failed", detail=type(exc).__name__)
            log.info("reconcile: swept %s", outcome.line())
            outcomes.append(outcome)
        return outcomes

    async def check_jobs(self) -> dict[str, dict[str, Any]]:
        """Every source's provisioning-job health (one GET per source)."""
        from connector.pipeline import _as_mapping
        from connector.reconcile import check_job_health

        result: dict[str, dict[str, Any]] = {}
        for src in self.config.sources:
            target = self.targets(src)
            try:
                job = await target.get_job()
                health = check_job_health(_as_mapping(job))
                result[src.name] = {
                    "ok": health.ok,
                    "code": health.code,
                    "reason": health.reason,
                    "message": health.message,
                }
                if health.code == "Quarantine":
                    self.telemetry.job_quarantined(
                        source=src.name, reason_code=health.reason or "Unknown"
                    )
                elif not health.ok:
                    log.warning("source %s: %s", src.name, health.message)
            except Exception as exc:  # one unreachable job must not hide the others
                result[src.name] = {"ok": False, "code": "Unreachable", "message": _brief(exc)}
                log.warning("source %s: job status unavailable (%s)", src.name, type(exc).__name__)
            finally:
                await target.aclose()
        return result

    def _run_counts(self) -> dict[str, dict[str, int]]:
        """Open, held and waiting runs per source (for the status the health probe reads)."""
        counts: dict[str, dict[str, int]] = {}
        for src in self.config.sources:
            runs = [r for r in self.engine.list_runs(src.name) if r.state in _OPEN]
            counts[src.name] = {
                "openRuns": len(runs),
                "held": sum(1 for r in runs if r.state == "held"),
                "waiting": sum(1 for r in runs if r.waiting),
            }
        return counts

    def _write_status(self, out: PassOutcome) -> None:
        from connector.dropzone import STATUS_BLOB

        container, name = STATUS_BLOB
        try:
            runs: dict[str, dict[str, int]] = self._run_counts()
        except Exception as exc:  # the status is informative; never fail the pass for it
            log.warning("reconcile: run counts unavailable (%s)", type(exc).__name__)
            runs = {}
        self.zone.write_json(
            container,
            name,
            {
                "lastReconcileAt": self.clock.now().isoformat(),
                "swept": len(out.swept),
                "resumed": len(out.resumed),
                "stillWaiting": sum(1 for s in out.resumed if s.waiting),
                "reconciled": len(out.reconciled),
                "jobs": out.jobs,
                "runs": runs,
                "errors": out.errors,
            },
        )

    # -- health -----------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """The connector's view: config, storage, last reconciliation, per-source status.

        Cheap on purpose (a probe may call it often): one storage call and the status
        the last timer pass wrote; no Graph call, no scan of run journals.
        """
        from connector.dropzone import STATUS_BLOB

        reachable = self.zone.probe()
        status: dict[str, Any] | None = None
        if reachable:
            try:
                status = self.zone.read_json(*STATUS_BLOB)
            except Exception:  # a corrupt status blob must not break the probe
                status = None
        jobs = (status or {}).get("jobs") or {}
        runs = (status or {}).get("runs") or {}
        sources = {
            src.name: {"job": jobs.get(src.name), **(runs.get(src.name) or {})}
            for src in self.config.sources
        }
        healthy = reachable and all((v.get("job") or {}).get("ok", True) for v in sources.values())
        return {
            "status": "ok" if healthy else "degraded",
            "config": {"loaded": True, "sources": [s.name for s in self.config.sources]},
            "storage": {"reachable": reachable},
            "lastReconcileAt": (status or {}).get("lastReconcileAt"),
            "sources": sources,
        }

    # -- telemetry ----------------------------------------------------------------------

    def _record(self, s: RunSummary, phase: str) -> None:
        """Telemetry for a run summary (counts only, no record data).

        ``phase``: ``ingest`` (a new run), ``resume`` (continued or approved) or
        ``reconcile``; each fact is reported in the one phase where it happens.
        """
        from connector.telemetry import records_to_send

        tel = self.telemetry
        if phase == "ingest" and s.planned:
            tel.run_planned(source=s.source, run_id=s.run_id, counts=s.planned)
        if phase == "ingest" and s.state == "held":
            tel.run_held(source=s.source, run_id=s.run_id, reason_code="mass_change_guard")
        if phase in ("ingest", "resume"):
            if s.waiting:
                kind = _waiting_kind(s.waiting)
                tel.run_waiting(source=s.source, run_id=s.run_id, reason_code=kind)
                if kind in ("bucket_full", "quota", "429"):
                    tel.throttled(source=s.source, kind=kind, run_id=s.run_id)
            elif s.state == "uploaded":
                sent = records_to_send(s.planned)
                if sent:
                    tel.records_sent(source=s.source, run_id=s.run_id, count=sent)
        failed = int(s.outcomes.get("failed", 0))
        if phase == "reconcile" and s.state == "done" and failed:
            tel.records_failed(source=s.source, run_id=s.run_id, count=failed)


# -- composition helpers ------------------------------------------------------------------


def _app_root() -> Any:
    from pathlib import Path

    return Path(__file__).resolve().parent


_APP_ROOT = _app_root()


def _owner() -> str:
    import os
    import socket

    return f"functions:{socket.gethostname()}:{os.getpid()}"


def _with_budget(config: SourcesConfig, settings: AppSettings) -> SourcesConfig:
    """CONNECTOR_DAILY_CALL_BUDGET, when set, overrides the sources config's budget."""
    if "connector_daily_call_budget" not in settings.model_fields_set:
        return config
    return config.model_copy(update={"daily_call_budget": settings.connector_daily_call_budget})


def _blob_service(settings: AppSettings) -> BlobServiceClient:
    """The drop-zone account's client, resolved like the host resolves the trigger."""
    from azure.storage.blob import BlobServiceClient

    target = settings.storage
    if target.connection_string is not None:
        return BlobServiceClient.from_connection_string(target.connection_string)
    if target.mode == "managed_identity":
        from azure.identity import ManagedIdentityCredential

        credential: Any = ManagedIdentityCredential(client_id=target.managed_identity_client_id)
    else:
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential()
    assert target.blob_service_uri is not None
    return BlobServiceClient(target.blob_service_uri, credential=credential)


def _graph_target_factory(
    settings: AppSettings, config: SourcesConfig, store: BlobStateStore, clock: Clock
) -> TargetFactory:
    """Graph targets for the sources: managed identity in Azure, the emulator locally."""
    from connector.graph.auth import CredentialTokenProvider
    from connector.graph.endpoint import Cloud, ProvisioningEndpoint
    from connector.pipeline import graph_targets

    if settings.connector_emulator_url is not None:
        return _emulator_target_factory(settings, config, store, clock)
    from azure.identity import ManagedIdentityCredential

    credential = ManagedIdentityCredential(client_id=settings.require_graph_client_id())
    providers: dict[Cloud, CredentialTokenProvider] = {}  # one token cache per cloud

    def tokens(src: Source) -> CredentialTokenProvider:
        if src.endpoint is not None:
            cloud = ProvisioningEndpoint.parse(src.endpoint).cloud or Cloud.GLOBAL
        else:
            cloud = Cloud(src.cloud)
        if cloud not in providers:
            providers[cloud] = CredentialTokenProvider(credential, cloud.scope, clock=clock)
        return providers[cloud]

    return graph_targets(config, store, tokens, clock)


def _emulator_target_factory(
    settings: AppSettings, config: SourcesConfig, store: BlobStateStore, clock: Clock
) -> TargetFactory:
    """Local development: every source's job, at the same ids, on the loopback emulator."""
    from connector.graph.auth import StaticTokenProvider
    from connector.graph.endpoint import ProvisioningEndpoint
    from connector.pipeline import graph_targets

    base = settings.connector_emulator_url
    assert base is not None
    token = settings.emulator_token_for(base)  # refuses anything but loopback
    assert token is not None

    def endpoint_for(src: Source) -> str:
        if src.endpoint is not None:
            real = ProvisioningEndpoint.parse(src.endpoint)
        else:
            assert src.service_principal_id is not None
            assert src.job_id is not None
            real = ProvisioningEndpoint.build(src.service_principal_id, src.job_id, cloud=src.cloud)
        return (
            f"{base}/{real.api_version}/servicePrincipals/{real.service_principal_id}"
            f"/synchronization/jobs/{real.job_id}/bulkUpload"
        )

    return graph_targets(
        config,
        store,
        StaticTokenProvider(token),
        clock,
        allow_loopback=True,
        endpoint_for=endpoint_for,
    )


def _waiting_kind(note: str) -> str:
    text = note.lower()
    if text.startswith("quotaexhausted") or "budget" in text or "quota" in text:
        return "quota"
    if text.startswith("bucketfull") or "bucket" in text:
        return "bucket_full"
    if text.startswith("throttled") or "429" in text:
        return "429"
    return "error"


def _summary_detail(s: RunSummary) -> str:
    parts: list[str] = []
    if s.planned:
        parts.append(", ".join(f"{k}={v}" for k, v in s.planned.items()))
    if s.batches_total:
        parts.append(f"batches {s.batches_done}/{s.batches_total}")
    if s.waiting:
        parts.append(f"waiting: {_waiting_kind(s.waiting)}")
    if s.state == "held":
        parts.append("held by the mass-change guard")
    if s.state in ("failed", "superseded") and s.failed_reason:
        parts.append(s.state)
    return "; ".join(parts)


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _brief(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:300]}"


_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def get_runtime() -> Runtime:
    """The worker process's runtime, built on first use (a bad setting raises ConfigError)."""
    global _runtime
    if _runtime is None:
        with _runtime_lock:
            if _runtime is None:
                from connector.settings import load_settings

                _runtime = Runtime(load_settings())
    return _runtime


def set_runtime(runtime: Runtime | None) -> None:
    """Install a runtime (tests) or forget it (``None``)."""
    global _runtime
    with _runtime_lock:
        _runtime = runtime


def reset_runtime() -> None:
    set_runtime(None)


# -- the functions ------------------------------------------------------------------------


@app.function_name("ingest_extract")
@app.blob_trigger(
    arg_name="blob",
    path="incoming/{name}",
    connection=TRIGGER_CONNECTION,
    source=func.BlobSource.EVENT_GRID,
)
async def ingest_extract(blob: func.InputStream) -> None:
    """A file landed in ``incoming``: plan it, hold or upload it, then archive it."""
    name = blob.name or ""
    outcome = await get_runtime().ingest(name, blob.read())
    log.info("ingest_extract: %s", outcome.line())


@app.function_name("reconcile")
@app.timer_trigger(arg_name="timer", schedule="%RECONCILE_SCHEDULE%", run_on_startup=False)
async def reconcile(timer: func.TimerRequest) -> None:
    """Continue waiting runs, reconcile open ones, check jobs, pick up stray files."""
    if timer.past_due:
        log.info("reconcile: running late (past due)")
    outcome = await get_runtime().run_pass()
    log.info("reconcile: %s", outcome.line())


@app.function_name("health")
@app.route(route="health", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def health(req: func.HttpRequest) -> func.HttpResponse:
    """The connector's view of itself; 200 when healthy, 503 otherwise."""
    import orjson

    try:
        runtime = get_runtime()
    except Exception as exc:  # settings/config errors are the answer, not a crash
        body: dict[str, Any] = {
            "status": "degraded",
            "config": {"loaded": False, "error": str(exc)},
        }
    else:
        body = await asyncio.to_thread(runtime.health)
    code = 200 if body.get("status") == "ok" else 503
    log.info("health: %s", body.get("status"))
    return func.HttpResponse(
        orjson.dumps(body, option=orjson.OPT_INDENT_2),
        status_code=code,
        mimetype="application/json",
    )
