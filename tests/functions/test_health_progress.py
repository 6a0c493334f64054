"""``/api/health`` names a run that takes more than a day's call budget: its day, the
share sent and the estimated finish, as the last timer pass saw it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from .conftest import extract_bytes

pytestmark = pytest.mark.azurite


def test_health_shows_a_multi_day_runs_progress_and_finish(make_world: Any, tmp_path: Path) -> None:
    with make_world(budget=2, emulator={"daily_quota": 2}) as w:
        w.drop_and_deliver("employees/hr_20260105.csv", extract_bytes(tmp_path, 260, seed=7))
        [run] = w.runs()
        assert run.waiting_reason == "quota"
        assert run.send_order == (
            "sent in priority order: 10 leavers/deactivations first, then 250 joiners"
        )
        w.tick(minutes=15)
        code, body = w.health()
        assert code == 200, body["problems"]  # waiting for the budget is not a problem
        done_by = (w.clock.now() + timedelta(days=2)).date().isoformat()
        text = f"1 of 3 days, 38 % sent, done ~{done_by}"
        assert body["multiDayRuns"] == [f"employees: run {run.run_id}: {text}"]
        [progress] = body["sources"]["employees"]["progress"]
        assert progress["runId"] == run.run_id
        assert progress["days"] == 3
