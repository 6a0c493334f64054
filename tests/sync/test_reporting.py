"""A run's reports: rows made from the stored plan as they are read, files written in parts."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

import connector.report as report_module
import connector.sync.reporting as reporting_module
from connector.sync.journal import Journal
from tests.sync.fakes import people
from tests.sync.world import World


def test_report_rows_are_made_from_the_plan_each_time_they_are_read(tmp_path: Path) -> None:
    w = World(tmp_path)
    run = w.sync("hr_20260302.csv", people(120))
    w.reconcile()
    journal = w.engine.runs.require("employees", run.run_id)
    records = w.engine.reporter.report_input(journal).records
    assert not isinstance(records, list | tuple)  # no row object per record is kept
    first, again = list(records), list(records)
    assert len(records) == len(first) == 120
    assert first == again
    assert {r.outcome for r in first} == {"created"}
    assert all(r.request_id for r in first)
    assert first[0].display_name == "User 1"


def test_report_files_reach_the_store_in_parts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = World(tmp_path)
    run = w.sync("hr_20260302.csv", people(120))
    journal = w.engine.runs.require("employees", run.run_id)
    parts: dict[str, int] = {}
    store_write = w.engine.runs.write_report

    def counted(j: Journal, name: str, body: Iterable[bytes], ctype: str) -> Any:
        def counting() -> Iterable[bytes]:
            for part in body:
                parts[name] = parts.get(name, 0) + 1
                yield part

        return store_write(j, name, counting(), ctype)

    monkeypatch.setattr(w.engine.runs, "write_report", counted)
    monkeypatch.setattr(report_module, "_RECORDS_BLOCK", 7)
    w.engine.reporter.write(journal)
    assert parts["report.json"] > 120 // 7
    doc = json.loads(w.store.read_artifact(f"employees/{run.run_id}/report.json"))
    assert [r["externalId"] for r in doc["records"]] == [f"E{i:04}" for i in range(1, 121)]
    assert {r["outcome"] for r in doc["records"]} == {"pending"}


def test_writing_the_reports_reads_each_records_payloads_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = World(tmp_path)
    run = w.sync("hr_20260302.csv", people(120))
    w.reconcile()
    journal = w.engine.runs.require("employees", run.run_id)
    read: list[str] = []
    record_change = reporting_module.record_change

    def counted(op: Any, previous: Any) -> Any:
        read.append(op.external_id)
        return record_change(op, previous)

    monkeypatch.setattr(reporting_module, "record_change", counted)
    w.engine.reporter.write(journal)
    assert len(read) == 2 * 120  # report.json and the page's table; counted without them
    doc = json.loads(w.store.read_artifact(f"employees/{run.run_id}/report.json"))
    assert doc["actionByOutcome"] == {"joiner": {"created": 120}}
