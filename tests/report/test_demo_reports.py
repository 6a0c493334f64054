"""The demo's reports: the held run lists its people, movers their changed attributes,
every report links to its neighbours and the runs index lists every run."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

from connector.cli.demo import run_demo
from connector.cli.options import StateLocation
from connector.cli.wiring import command_engine
from connector.errors import DocumentConflictError
from connector.sync.engine import Engine
from tests.cli.helpers import invoke
from tests.report.demo_state import DemoState


def test_held_run_lists_all_177_people_it_would_disable_in_report_and_held_csv(
    demo: DemoState,
) -> None:
    held = demo.report_dir(2)
    rows = list(csv.DictReader(io.StringIO((held / "held.csv").read_text("utf-8"))))
    assert len(rows) == 177
    assert {r["change"] for r in rows} == {"disable"}
    assert all(r["displayName"] and r["attribute"] == "active" for r in rows)
    page = (held / "report.html").read_text("utf-8")
    assert "<strong>177</strong> to disable" in page
    assert "Approving sends 177 records in 4 batches: 177 disabled (active: false)" in page
    section = page.split('id="held"', 1)[1].split("</section>", 1)[0]
    for row in rows:
        assert f"<code>{row['externalId']}</code>" in section
    assert section.count("<tr>") == 177 + 1  # and the header row


def test_runs_show_lists_the_people_a_held_run_would_disable(demo: DemoState) -> None:
    out = invoke("runs", "show", demo.run_ids[2], *demo.flags)
    assert "changes: 177 to disable, 0 to update (0 attributes), 0 to create" in out
    assert "Approving sends 177 records in 4 batches" in out
    assert len(re.findall(r"^\s+\d+\s+\S.* \(leaver\)$", out, flags=re.M)) == 177
    assert "held.csv" in out
    done = invoke("runs", "show", demo.run_ids[1], *demo.flags)
    assert "to disable" not in done


def test_day_two_report_shows_each_movers_changed_attributes(demo: DemoState) -> None:
    # The record index already holds the new payloads: the old ones come from day 1's plan.
    doc = json.loads((demo.report_dir(1) / "report.json").read_text("utf-8"))
    movers = [r for r in doc["records"] if r["action"] == "mover"]
    assert len(movers) == 13
    assert all(r["changes"] and r["displayName"] for r in movers)
    titles = [c for r in movers for c in r["changes"] if c["attribute"] == "title"]
    assert titles
    assert all(c["old"] and c["new"] and c["old"] != c["new"] for c in titles)
    deactivated = [r for r in movers if r["outcome"] == "disabled"]
    assert all(
        {"attribute": "active", "old": "true", "new": "false"} in r["changes"] for r in deactivated
    )


def test_each_report_links_to_its_previous_and_next_run_and_the_index(demo: DemoState) -> None:
    ids = demo.run_ids
    pages = [(demo.report_dir(i) / "report.html").read_text("utf-8") for i in range(3)]
    assert f'href="../{ids[1]}/report.html">next run' in pages[0]
    assert "previous run" not in pages[0].split("</nav>")[0].replace("first run", "")
    assert f'href="../{ids[0]}/report.html">‹ previous run' in pages[1]
    assert f'href="../{ids[2]}/report.html">next run' in pages[1]
    assert f'href="../{ids[1]}/report.html">‹ previous run' in pages[2]
    assert "latest run" in pages[2]
    for page in pages:
        assert 'href="../../index.html">all runs' in page


def test_index_lists_every_run_with_file_extract_date_state_and_a_link(demo: DemoState) -> None:
    index = (demo.state / "reports" / "index.html").read_text("utf-8")
    for i, run_id in enumerate(demo.run_ids):
        assert f'href="employees/{run_id}/report.html"' in index
        assert f"employees_2026010{5 + i}.csv" in index
        assert f"2026-01-0{5 + i} 00:00" in index
    assert index.count("<td>done</td>") == 2
    assert index.count("<td>held</td>") == 1
    assert "employees (3 runs)" in index


def test_index_rebuilt_on_each_report_write_is_byte_identical(demo: DemoState) -> None:
    index = demo.state / "reports" / "index.html"
    before = index.read_bytes()
    invoke("report", demo.run_ids[0], *demo.flags)
    after_one = index.read_bytes()
    invoke("report", demo.run_ids[2], *demo.flags)
    assert before == after_one == index.read_bytes()


def test_index_shows_a_runs_new_state_after_an_operator_discards_it(tmp_path: Path) -> None:
    summaries = run_demo(tmp_path / "demo", rows=120, log_delay=0.0)
    state = tmp_path / "demo" / "state"
    flags = ("--config", str(tmp_path / "demo" / "sources.yaml"), "--state", str(state))
    invoke("runs", "discard", summaries[2].run_id, *flags)
    index = (state / "reports" / "index.html").read_text("utf-8")
    assert "<td>discarded</td>" in index
    assert index.count("report.html") == 3


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoState:
    return DemoState.run(tmp_path_factory.mktemp("demo-reports"))


def engine_of(demo: DemoState) -> Engine:
    return command_engine(demo.directory / "sources.yaml", StateLocation(directory=demo.state))


def test_a_report_write_updates_its_index_row_without_reading_every_journal(
    demo: DemoState, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = engine_of(demo)

    def no_scan(source: str) -> None:
        raise AssertionError(f"every journal of {source} read again")

    monkeypatch.setattr(engine.runs, "runs", no_scan)
    engine.report_paths(demo.run_ids[1], refresh=True)
    rows, _ = engine.runs.index_rows()
    assert rows is not None
    assert set(rows) == set(demo.run_ids)


def test_the_index_document_is_written_again_after_a_concurrent_change(
    demo: DemoState, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = engine_of(demo)
    save = engine.runs.save_index_rows
    calls: list[int] = []

    def conflict_once(rows: Any, etag: str | None) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise DocumentConflictError("document 'report-index' changed since it was read")
        save(rows, etag)

    monkeypatch.setattr(engine.runs, "save_index_rows", conflict_once)
    engine.report_paths(demo.run_ids[0], refresh=True)
    assert len(calls) == 2
    index = (demo.state / "reports" / "index.html").read_text("utf-8")
    assert index.count("report.html") == 3


def test_report_json_counts_what_a_held_run_would_change(demo: DemoState) -> None:
    doc = json.loads((demo.report_dir(2) / "report.json").read_text("utf-8"))
    assert doc["changeCounts"] == {"disable": 177, "update": 0, "create": 0, "re-send": 0}
    leavers = [r for r in doc["records"] if r["action"] == "leaver"]
    assert len(leavers) == 177
    assert all(r["outcome"] == "not sent" and r["displayName"] for r in leavers)
