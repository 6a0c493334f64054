"""The timer pulls every due sql source (Azurite + emulator + a real SQLite file): the
run goes through the engine like a dropped file; a failed pull sends nothing, is an
event and shows in /api/health until a pull succeeds."""

from __future__ import annotations

import logging
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.sources.pullworld import MAPPING, sqlite_staging

from .conftest import JOB2, SP2, sources_yaml

pytestmark = pytest.mark.azurite


def _sources(url: str, schedule: str) -> str:
    return sources_yaml() + (
        f"  - name: hr-sql\n    kind: sql\n    sql: {{url: '{url}', table: employees}}\n"
        f"    schedule: '{schedule}'\n    mapping: {MAPPING}\n"
        f"    service_principal_id: {SP2}\n    job_id: {JOB2}\n"
    )


def _daily_far_from(hour: int) -> str:
    return f"0 0 {(hour + 12) % 24} * * *"


def test_the_timer_pulls_a_due_source_once_and_reports_it(make_world: Any, tmp_path: Path) -> None:
    url = sqlite_staging(tmp_path / "hr.db")
    # the world's clock starts at the real time: the scheduled moment is 12 h away
    schedule = _daily_far_from(datetime.now(UTC).hour)
    with make_world(second=True, sources=_sources(url, schedule)) as w:
        w.tick()  # never pulled: due now
        [run] = w.runs("hr-sql")
        assert run.state in ("uploaded", "reconciling", "done")  # reconciled in the same pass
        assert run.planned["joiners"] == 60
        calls = len(w.bulk_calls())
        _, doc = w.health()
        pull = doc["sources"]["hr-sql"]["pull"]
        assert pull["outcome"] == "pulled"
        assert pull["rows"] == 60
        assert pull["runId"] == run.run_id
        assert not any("pull" in p for p in doc["problems"])
        w.tick()  # the next scheduled moment is hours away: not pulled again
        assert len(w.runs("hr-sql")) == 1
        assert len(w.bulk_calls()) == calls
        assert w.runtime.engine.last_pulls()["hr-sql"] is not None
        assert "employees" not in w.runtime.engine.last_pulls()


def test_a_failed_pull_sends_nothing_and_is_reported_until_a_pull_succeeds(
    make_world: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "hr.db"
    url = sqlite_staging(db)
    saved = tmp_path / "saved.db"
    shutil.move(db, saved)
    db.mkdir()  # the database cannot be opened
    with make_world(second=True, sources=_sources(url, "0 0 2 * * *")) as w:
        with caplog.at_level(logging.INFO):
            w.tick()
        assert w.runs("hr-sql") == []
        assert w.bulk_calls() == []
        _, doc = w.health()
        assert doc["status"] == "degraded"
        assert "pull failed (nothing from it applied): hr-sql" in doc["problems"]
        pull = doc["sources"]["hr-sql"]["pull"]
        assert pull["outcome"] == "failed"
        assert "source 'hr-sql'" in pull["error"]
        events = [r for r in caplog.records if r.__dict__.get("connector.event") == "pull_failed"]
        assert events
        assert events[0].__dict__["connector.source"] == "hr-sql"
        assert w.runtime.engine.last_pulls()["hr-sql"] is None
        db.rmdir()
        shutil.move(saved, db)
        w.tick()  # still due (the failed pull recorded nothing): pulled now
        [run] = w.runs("hr-sql")
        assert run.state in ("uploaded", "reconciling", "done")  # reconciled in the same pass
        _, doc = w.health()
        assert doc["sources"]["hr-sql"]["pull"]["outcome"] == "pulled"
        assert not any("pull failed" in p for p in doc["problems"])
