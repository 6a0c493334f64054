"""Staleness: a source that declares ``expect_every`` and gets no new file in time turns
``/api/health`` degraded (naming it) and logs one ``source_stale`` event per timer pass."""

from __future__ import annotations

import dataclasses
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connector.clock import FakeClock
from connector.config import parse_sources
from connector.functions.dropzone import DropZone
from connector.functions.staleness import last_arrival, stale_sources
from connector.functions.telemetry import EVENT_LOGGER

from .conftest import extract_bytes, sources_yaml

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
ENDPOINT = (
    "https://graph.microsoft.com/beta/servicePrincipals/11111111-2222-3333-4444-555555555555"
    "/synchronization/jobs/API2AAD.0123456789abcdef0123456789abcdef.11111111-2222-3333-4444-555555555555"
    "/bulkUpload"
)


def _config() -> Any:
    return parse_sources(
        "sources:\n"
        f"  - {{name: daily, match: d/, mapping: m.yaml, endpoint: '{ENDPOINT}',"
        " expect_every: 24h}\n"
        f"  - {{name: weekly, match: w/, mapping: m.yaml, endpoint: '{ENDPOINT}',"
        " expect_every: 7d}\n"
        f"  - {{name: whenever, match: x/, mapping: m.yaml, endpoint: '{ENDPOINT}'}}\n"
    )


# -- the pure rule -----------------------------------------------------------------------------


def test_a_source_is_stale_only_once_its_expect_every_has_passed() -> None:
    cfg, clock = _config(), FakeClock(T0)
    arrivals = {"daily": T0, "weekly": T0, "whenever": T0 - timedelta(days=365)}
    clock.advance(24 * 3600)
    assert stale_sources(cfg.sources, arrivals, clock.now()) == []  # exactly on time
    clock.advance(60)
    (stale,) = stale_sources(cfg.sources, arrivals, clock.now())
    assert (stale.source, stale.last, stale.expected) == ("daily", T0, timedelta(hours=24))
    assert stale.hours_since(clock.now()) == 24
    clock.advance(7 * 86400)
    assert [s.source for s in stale_sources(cfg.sources, arrivals, clock.now())] == [
        "daily",
        "weekly",
    ]  # a source without expect_every is never stale


def test_a_source_with_no_arrival_on_record_is_not_judged() -> None:
    cfg = _config()
    assert stale_sources(cfg.sources, {"daily": None}, T0 + timedelta(days=30)) == []


def test_the_last_arrival_is_the_newest_run_else_the_start_of_watching() -> None:
    newer = T0 + timedelta(hours=3)
    assert last_arrival([T0, None, newer], T0 - timedelta(days=9)) == newer
    assert last_arrival([], T0) == T0
    assert last_arrival([None], T0) == T0


# -- the Functions app: health and the event ---------------------------------------------------


def _expecting(every: str) -> str:
    return sources_yaml().replace(
        "    match: employees/\n", f"    match: employees/\n    expect_every: {every}\n"
    )


def _stale_events(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.__dict__.get("connector.event") == "source_stale"]


def _blobs_created_on_the_world_clock(w: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Azurite stamps a blob with the real time; the world's FakeClock runs ahead of it,
    so a file dropped after time was advanced gets the world's time, as in production."""
    real = DropZone.incoming

    def incoming(zone: DropZone, blob_name: str) -> Any:
        found = real(zone, blob_name)
        return None if found is None else dataclasses.replace(found, received_at=w.clock.now())

    monkeypatch.setattr(DropZone, "incoming", incoming)


@pytest.mark.azurite
def test_health_names_the_source_when_no_file_arrived_in_time_and_recovers_on_one(
    make_world: Any,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.INFO, logger=EVENT_LOGGER)
    with make_world(sources=_expecting("24h")) as w:
        _blobs_created_on_the_world_clock(w, monkeypatch)
        w.tick(minutes=15)  # the first pass starts watching the source
        assert w.health()[0] == 200
        w.tick(minutes=23 * 60 + 50)
        code, body = w.health()
        assert (code, body["staleSources"]) == (200, [])
        assert _stale_events(caplog) == []

        w.clock.advance(20 * 60)  # health judges against now, without waiting for a pass
        code, body = w.health()
        assert code == 503
        assert body["staleSources"] == ["employees"]
        (problem,) = body["problems"]
        assert problem.startswith("no new file for source employees for 24 h (expected every 24 h")

        w.tick(minutes=15)
        (event,) = _stale_events(caplog)  # once per pass
        assert event.levelno == logging.WARNING
        assert event.__dict__["connector.source"] == "employees"
        assert event.__dict__["connector.hours"] == 24
        assert event.__dict__["connector.expected_hours"] == 24
        assert event.__dict__["connector.run_id"] == ""  # no run yet
        w.tick(minutes=15)
        assert len(_stale_events(caplog)) == 2  # and again on the next pass

        w.drop_and_deliver("employees/day1.csv", extract_bytes(tmp_path, 20, seed=1))
        w.tick(minutes=15)
        code, body = w.health()
        assert (code, body["staleSources"]) == (200, [])
        assert len(_stale_events(caplog)) == 2  # the file arrived: no more events


@pytest.mark.azurite
def test_the_stale_event_names_the_last_run(
    make_world: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=EVENT_LOGGER)
    with make_world(sources=_expecting("36h")) as w:
        w.drop_and_deliver("employees/day1.csv", extract_bytes(tmp_path, 20, seed=1))
        w.tick(minutes=15)
        (run,) = w.runs()
        w.tick(minutes=36 * 60)
        (event,) = _stale_events(caplog)
        assert event.__dict__["connector.run_id"] == run.run_id
        assert event.__dict__["connector.hours"] == 36
        assert w.health()[1]["staleSources"] == ["employees"]


@pytest.mark.azurite
def test_a_source_without_expect_every_is_never_stale(
    make_world: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=EVENT_LOGGER)
    with make_world() as w:
        w.tick(minutes=15)
        w.tick(minutes=30 * 24 * 60)
        code, body = w.health()
        assert (code, body["staleSources"]) == (200, [])
        assert _stale_events(caplog) == []
