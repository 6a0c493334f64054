"""A held run's view in bounded memory: its page lists the first records, its counts and
held.csv have them all; a report of a run not held keeps no record of whom it changes."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

import connector.sync.reporting as reporting_module
from connector.sync.run_keys import HELD_NAME
from tests.sync.fakes import people
from tests.sync.world import World


def _held_world(tmp_path: Path) -> tuple[World, str]:
    """60 people sent; then a file of 20 (40 leavers), every fourth moved to Legal."""
    w = World(tmp_path)
    w.sync("hr_20260302.csv", people(60))
    w.reconcile()
    w.clock.advance(86400)
    later = [(*p[:3], "Legal" if i % 4 == 0 else p[3], *p[4:]) for i, p in enumerate(people(20))]
    held = w.sync("hr_20260303.csv", later)
    assert held.state == "held"
    return w, held.run_id


def test_a_held_page_lists_only_its_first_rows_and_held_csv_lists_them_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reporting_module, "PAGE_ROWS", 3)
    w, run_id = _held_world(tmp_path)
    journal = w.engine.runs.require("employees", run_id)
    view = w.engine.reporter.report_input(journal).changes
    assert view is not None
    assert len(view.disables) == 3
    assert sum(len(r.changes) for r in view.movers) <= 3 + 1  # the last record's attributes
    assert view.counts == {"disable": 40, "update": 5, "create": 0, "re-send": 0}
    assert view.attributes == 5
    page = w.store.read_artifact(f"employees/{run_id}/report.html").decode("utf-8")
    section = page.split('id="held"', 1)[1].split("</section>", 1)[0]
    assert "<h3>To disable (40)</h3>" in section
    assert "37 more in held.csv." in section
    held = w.store.read_artifact(f"employees/{run_id}/{HELD_NAME}").decode("utf-8")
    rows = list(csv.DictReader(io.StringIO(held)))
    assert sum(r["change"] == "disable" for r in rows) == 40
    assert sum(r["change"] == "update" for r in rows) == 5
    assert [r["externalId"] for r in rows[:40]] == [f"E{i:04}" for i in range(21, 61)]


def test_runs_show_still_gets_every_record_a_held_run_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reporting_module, "PAGE_ROWS", 3)
    w, run_id = _held_world(tmp_path)
    view = w.engine.reporter.change_view(w.engine.runs.require("employees", run_id))
    assert len(view.disables) == 40
    assert len(view.movers) == 5


def test_a_report_of_a_run_not_held_counts_its_changes_and_lists_none(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.sync("hr_20260302.csv", people(60))
    w.reconcile()
    w.clock.advance(86400)
    rows = people(60)
    rows[1] = (*rows[1][:3], "Legal", *rows[1][4:])
    rows[2] = (*rows[2][:5], "Inactive")
    run = w.sync("hr_20260303.csv", rows)
    assert run.state != "held"
    view = w.engine.reporter.report_input(w.engine.runs.require("employees", run.run_id)).changes
    assert view is not None
    assert (view.disables, view.movers) == ([], [])
    assert view.counts == {"disable": 1, "update": 1, "create": 0, "re-send": 0}
    doc = json.loads(w.store.read_artifact(f"employees/{run.run_id}/report.json"))
    assert doc["changeCounts"] == {"disable": 1, "update": 1, "create": 0, "re-send": 0}
    assert not w.store.list_artifacts(f"employees/{run.run_id}/{HELD_NAME}")


def test_a_report_reads_the_index_only_for_the_records_it_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    w, run_id = _held_world(tmp_path)
    asked: list[set[str]] = []
    record_runs = w.store.record_runs

    def whole_index(source: str) -> None:
        raise AssertionError("the whole record index was loaded")

    def counted(source: str, external_ids: set[str]) -> dict[str, str | None]:
        asked.append(set(external_ids))
        return record_runs(source, external_ids)

    monkeypatch.setattr(w.store, "load_records", whole_index)
    monkeypatch.setattr(w.store, "record_runs", counted)
    view = w.engine.reporter.report_input(w.engine.runs.require("employees", run_id)).changes
    assert view is not None
    assert view.counts["disable"] == 40
    assert asked == [{f"E{i:04}" for i in range(1, 61) if i > 20 or i % 4 == 1}]
