"""Telemetry: structured events and counters, configured only when asked, no personal data."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from connector.functions import telemetry
from connector.functions.settings import APP_SETTING_NAMES, load_settings
from connector.functions.telemetry import (
    EVENT_LOGGER,
    Telemetry,
    configure_telemetry,
    get_telemetry,
)

UAMI = "8f2d3c4b-1a2b-4c3d-9e8f-0a1b2c3d4e5f"


@pytest.fixture(autouse=True)
def _fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in APP_SETTING_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HrDropStorage", "UseDevelopmentStorage=true")
    monkeypatch.setenv("CONNECTOR_SOURCES", "sources: []")
    telemetry.reset_for_tests()
    yield
    telemetry.reset_for_tests()


def _points(reader: InMemoryMetricReader) -> dict[str, list[tuple[dict[str, Any], int]]]:
    out: dict[str, list[tuple[dict[str, Any], int]]] = {}
    data = reader.get_metrics_data()
    assert data is not None
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                out[metric.name] = [
                    (dict(p.attributes or {}), int(p.value))  # type: ignore[attr-defined]
                    for p in metric.data.data_points
                ]
    return out


def test_events_are_counted_and_logged_with_properties(caplog: pytest.LogCaptureFixture) -> None:
    reader = InMemoryMetricReader()
    tel = Telemetry(MeterProvider(metric_readers=[reader]).get_meter("test"))
    caplog.set_level(logging.INFO, logger=EVENT_LOGGER)

    tel.run_planned(
        source="employees",
        run_id="employees-ab12",
        counts={"joiners": 3, "movers": 2, "leavers": 1, "unchanged": 90, "rejected": 4},
    )
    tel.records_sent(source="employees", run_id="employees-ab12", count=6)
    tel.records_failed(source="employees", run_id="employees-ab12", count=1)
    tel.run_held(source="employees", run_id="employees-cd34", reason_code="max_leavers")
    tel.run_waiting(source="employees", run_id="employees-ab12", reason_code="bucket_full")
    tel.throttled(source="employees", kind="429")
    tel.job_quarantined(source="employees", reason_code="EncounteredQuarantineException")
    tel.file_quarantined(source="vendors", reason_code="unknown_source")

    points = _points(reader)
    planned = {a["action"]: v for a, v in points["connector.records.planned"]}
    assert planned == {"joiners": 3, "movers": 2, "leavers": 1}
    assert points["connector.records.sent"] == [({"source": "employees"}, 6)]
    assert points["connector.records.failed"] == [({"source": "employees"}, 1)]
    assert points["connector.runs.held"] == [({"source": "employees", "reason": "max_leavers"}, 1)]
    assert points["connector.runs.waiting"][0][1] == 1
    assert points["connector.throttles"] == [({"source": "employees", "kind": "429"}, 1)]
    assert points["connector.jobs.quarantined"][0][1] == 1
    assert points["connector.files.quarantined"][0][0]["reason"] == "unknown_source"

    first = caplog.records[0]
    assert first.getMessage() == (
        "connector run_planned source=employees run_id=employees-ab12 joiners=3 movers=2 "
        "leavers=1 unchanged=90 rejected=4"
    )
    assert first.__dict__["connector.event"] == "run_planned"
    assert first.__dict__["connector.joiners"] == 3
    levels = {r.__dict__["connector.event"]: r.levelno for r in caplog.records}
    assert levels["job_quarantined"] == logging.ERROR
    assert levels["run_held"] == logging.WARNING


def test_free_text_is_reduced_to_a_safe_token(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=EVENT_LOGGER)
    Telemetry().run_held(source="employees", run_id="r1", reason_code="Ada Lovelace <ada@x.org>")
    message = caplog.records[0].getMessage()
    assert " " not in message.split("reason=")[1]
    assert "<" not in message


def test_not_configured_without_connection_string() -> None:
    called: list[dict[str, Any]] = []
    assert (
        configure_telemetry(load_settings(), configure_fn=lambda **kw: called.append(kw)) is False
    )
    assert called == []
    assert isinstance(get_telemetry(), Telemetry)


def test_configured_once_with_entra_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "APPLICATIONINSIGHTS_CONNECTION_STRING",
        "InstrumentationKey=00000000-0000-0000-0000-000000000000;"
        "IngestionEndpoint=https://example.invalid/",
    )
    monkeypatch.setenv(
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING", f"Authorization=AAD;ClientId={UAMI}"
    )
    calls: list[dict[str, Any]] = []
    identities: list[str | None] = []
    settings = load_settings()
    for _ in range(2):
        assert configure_telemetry(
            settings,
            configure_fn=lambda **kw: calls.append(kw),
            credential_factory=lambda cid: identities.append(cid) or "credential",
        )
    assert len(calls) == 1
    assert calls[0]["logger_name"] == EVENT_LOGGER
    assert calls[0]["credential"] == "credential"
    assert calls[0]["connection_string"].startswith("InstrumentationKey=")
    assert identities == [UAMI]
    assert logging.getLogger(EVENT_LOGGER).propagate is False


def test_importing_telemetry_does_not_import_azure_monitor() -> None:
    import subprocess
    import sys

    code = (
        "import sys, connector.functions.telemetry, connector.functions.settings;"
        "bad=[m for m in sys.modules if m.startswith(('azure.monitor','opentelemetry'))];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_record_run_uses_the_engines_waiting_reason(caplog: pytest.LogCaptureFixture) -> None:
    """The reason code comes from RunSummary.waiting_reason, never from error text."""
    from connector.sync.summary import RunSummary
    from connector.sync.waiting import WaitingReason

    reader = InMemoryMetricReader()
    tel = Telemetry(MeterProvider(metric_readers=[reader]).get_meter("test"))
    caplog.set_level(logging.INFO, logger=EVENT_LOGGER)
    misleading = "GraphError: quota and bucket words in a message about a 429"
    for reason in (WaitingReason.THROTTLED, WaitingReason.TRANSIENT, WaitingReason.QUOTA):
        tel.record_run(
            RunSummary(
                run_id=f"employees-{reason.value}",
                source="employees",
                file_name="employees/hr.csv",
                state="uploading",
                waiting=misleading,
                waiting_reason=reason,
            ),
            "resume",
        )
    points = _points(reader)
    waiting = {p[0]["reason"]: p[1] for p in points["connector.runs.waiting"]}
    assert waiting == {"throttled": 1, "transient": 1, "quota": 1}
    throttles = {p[0]["kind"]: p[1] for p in points["connector.throttles"]}
    assert throttles == {"429": 1, "quota": 1}  # a transient outage is not a throttle


def test_record_run_reports_each_fact_in_one_phase() -> None:
    from connector.sync.summary import RunSummary

    reader = InMemoryMetricReader()
    tel = Telemetry(MeterProvider(metric_readers=[reader]).get_meter("test"))
    uploaded = RunSummary(
        run_id="employees-1",
        source="employees",
        file_name="employees/hr.csv",
        state="uploaded",
        planned={"joiners": 3, "movers": 1, "unchanged": 10},
    )
    tel.record_run(uploaded, "ingest")
    tel.record_run(uploaded, "reconcile")  # seen again later: not planned or sent twice
    done = RunSummary(
        run_id="employees-1",
        source="employees",
        file_name="employees/hr.csv",
        state="done",
        outcomes={"failed": 2},
    )
    tel.record_run(done, "reconcile")
    points = _points(reader)
    assert sum(v for _, v in points["connector.records.planned"]) == 4
    assert points["connector.records.sent"] == [({"source": "employees"}, 4)]
    assert points["connector.records.failed"] == [({"source": "employees"}, 2)]
