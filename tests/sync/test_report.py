"""Report builders: JSON, CSV (formula-safe) and a self-contained HTML page."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

import connector.report as report_module
import connector.report_table as report_table
from connector.csv_out import neutralise_cell
from connector.report import (
    RecordRow,
    RejectedRow,
    ReportInput,
    TimelineEvent,
    build_failures_csv,
    build_report_json,
    write_reports,
)
from connector.report_html import build_report_html
from connector.report_table import TABLE_SCRIPT, script_hash
from tests.sync.pngcheck import luminance_stats

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def sample_input(**over: object) -> ReportInput:
    records = [
        RecordRow(f"E{i:03}", "joiner", "created", line=i + 1, request_id="req-a")
        for i in range(40)
    ]
    records += [RecordRow(f"M{i:03}", "mover", "updated", line=50 + i) for i in range(12)]
    records += [RecordRow(f"L{i:03}", "leaver", "disabled") for i in range(5)]
    records += [
        RecordRow(
            "E900",
            "joiner",
            "failed",
            line=91,
            error_code="AzureActiveDirectoryConflictEncountered",
            reason="userPrincipalName <b>already</b> exists",
        ),
        RecordRow(
            '=HYPERLINK("x")',
            "mover",
            "skipped",
            line=92,
            error_code="UnableToResolveReferenceAttributeValue",
            reason="manager M-404 not found",
        ),
        RecordRow(
            "E901",
            "joiner",
            "unconfirmed",
            line=93,
            reason="no provisioning-log entry 120 min after send",
        ),
    ]
    base: dict[str, object] = {
        "run_id": "employees-3f2a9c1d",
        "source": "employees",
        "file_name": "hr_<script>alert(1)</script>.csv",
        "status": "done",
        "generated_at": T0 + timedelta(minutes=30),
        "planned": {"joiners": 42, "movers": 13, "leavers": 5, "unchanged": 900, "rejected": 1},
        "outcome_counts": {
            "created": 40,
            "updated": 12,
            "disabled": 5,
            "failed": 1,
            "skipped": 1,
            "unconfirmed": 1,
        },
        "records": records,
        "timeline": [
            TimelineEvent(T0, "received", "1000 rows"),
            TimelineEvent(T0 + timedelta(seconds=3), "planned", "42 joiners, 13 movers, 5 leavers"),
            TimelineEvent(T0 + timedelta(seconds=4), "uploading", "batch 1/2"),
            TimelineEvent(T0 + timedelta(seconds=9), "uploaded", "2 batches"),
            TimelineEvent(T0 + timedelta(minutes=12), "done", ""),
        ],
        "rejected": [RejectedRow(77, "missing userName", "@SUM(A1)")],
        "request_ids": ["req-a", "req-b"],
        "batches_total": 2,
        "batches_done": 2,
    }
    base.update(over)
    return ReportInput(**base)  # type: ignore[arg-type]


def test_neutralise_cell() -> None:
    assert neutralise_cell("=1+1") == "'=1+1"
    assert neutralise_cell("+33 1") == "'+33 1"
    assert neutralise_cell("-2") == "'-2"
    assert neutralise_cell("@cmd") == "'@cmd"
    assert neutralise_cell("E1") == "E1"
    assert neutralise_cell(None) == ""


def test_report_json_has_counts_timings_request_ids_and_records() -> None:
    doc = json.loads(build_report_json(sample_input()))
    assert doc["runId"] == "employees-3f2a9c1d"
    assert doc["planned"]["joiners"] == 42
    assert doc["outcomes"]["failed"] == 1
    assert doc["actionByOutcome"]["joiner"] == {"created": 40, "failed": 1, "unconfirmed": 1}
    assert doc["requestIds"] == ["req-a", "req-b"]
    assert doc["timings"]["total"] == 720.0
    assert doc["timings"]["uploading"] == 5.0
    assert len(doc["records"]) == 60
    failed = next(r for r in doc["records"] if r["externalId"] == "E900")
    assert failed["errorCode"] == "AzureActiveDirectoryConflictEncountered"
    assert failed["line"] == 91


def test_failures_csv_lists_problems_and_neutralises_formulas() -> None:
    rows = list(csv.reader(io.StringIO(build_failures_csv(sample_input()).decode())))
    assert rows[0] == ["externalId", "line", "action", "errorCode", "reason"]
    body = {r[0]: r for r in rows[1:]}
    assert set(body) == {"E900", '\'=HYPERLINK("x")', "E901", "'@SUM(A1)"}
    assert body["E900"] == [
        "E900",
        "91",
        "joiner",
        "AzureActiveDirectoryConflictEncountered",
        "userPrincipalName <b>already</b> exists",
    ]
    assert body["E901"][3] == "unconfirmed"
    assert body["'@SUM(A1)"][2] == "rejected"


def test_html_is_self_contained_and_escaped() -> None:
    page = build_report_html(sample_input(held_reason="leavers 600 > max 500 <i>"))
    # The one executable script is the record table's own, allowed by its hash alone.
    assert page.count("<script>") == 1
    assert f"<script>{TABLE_SCRIPT}</script>" in page
    assert f"script-src {script_hash()}" in page
    assert "alert(1)</script>" not in page
    assert "hr_&lt;script&gt;alert(1)&lt;/script&gt;.csv" in page
    assert "userPrincipalName &lt;b&gt;already&lt;/b&gt; exists" in page
    assert "leavers 600 &gt; max 500 &lt;i&gt;" in page
    for external in ("src=", "<link", "url(", "@import", 'href="http', 'href="/'):
        assert external not in page
    assert "<svg" in page
    assert "connector runs approve employees-3f2a9c1d" in page


def test_html_caps_failure_rows() -> None:
    many = [RecordRow(f"F{i}", "joiner", "failed", error_code="X") for i in range(30)]
    page = build_report_html(sample_input(records=many, rejected=[]), max_failure_rows=10)
    assert page.count("<code>X</code>") == 10
    assert "20 more in failures.csv" in page


def test_write_reports_hands_three_files_to_the_store() -> None:
    got: dict[str, tuple[bytes, str]] = {}

    def put(name: str, parts: Iterable[bytes], ctype: str) -> str:
        got[name] = (b"".join(parts), ctype)
        return f"mem://{name}"

    data = sample_input()
    out = write_reports(data, put)
    assert out == {n: f"mem://{n}" for n in ("report.json", "failures.csv", "report.html")}
    assert got["report.html"][1].startswith("text/html")
    assert got["report.html"][0] == build_report_html(data).encode("utf-8")
    assert got["report.json"][0] == build_report_json(data)
    assert got["failures.csv"][0] == build_failures_csv(data)


CHROMIUM_HELP = (
    "headless Chromium is needed for the report screenshot test: "
    "run `apt-get install chromium` (as root) or `make browser`, then re-run the tests"
)


@pytest.mark.browser
def test_html_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.fail(CHROMIUM_HELP)
    page = tmp_path / "report.html"
    page.write_text(
        build_report_html(sample_input(held_reason="leavers 6 (12 %) over 10 %")), "utf-8"
    )
    png = tmp_path / "shot.png"
    blank_page = tmp_path / "blank.html"
    blank_page.write_text("<!DOCTYPE html><html><body></body></html>", "utf-8")
    blank_png = tmp_path / "blank.png"

    def shoot(src: Path, dst: Path) -> None:
        with tempfile.TemporaryDirectory() as profile:
            cmd = [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                f"--screenshot={dst}",
                "--window-size=1200,900",
                "--hide-scrollbars",
                src.as_uri(),
            ]
            env = {**os.environ, "HOME": profile}
            proc = subprocess.run(cmd, capture_output=True, timeout=60, env=env, check=False)
            assert dst.exists(), f"chromium produced no screenshot: {proc.stderr.decode()[-2000:]}"

    shoot(page, png)
    shoot(blank_page, blank_png)
    data = png.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    variance, colours = luminance_stats(data)
    blank_variance, blank_colours = luminance_stats(blank_png.read_bytes())
    assert blank_variance < 1.0  # the checker itself sees a blank page as blank
    assert variance > 500.0, f"screenshot looks blank (luminance variance {variance:.1f})"
    assert colours > 20 > blank_colours
    keep = os.environ.get("REPORT_SCREENSHOT")
    if keep:
        shutil.copy(png, keep)


def test_report_json_is_one_indented_serialization_however_many_records(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = sample_input()
    body = bytes(build_report_json(data))
    assert orjson.dumps(orjson.loads(body), option=orjson.OPT_INDENT_2) == body
    monkeypatch.setattr(report_module, "_RECORDS_BLOCK", 7)  # records written in blocks
    assert bytes(build_report_json(data)) == body
    assert len(orjson.loads(body)["records"]) == len(data.records)
    empty = bytes(build_report_json(dataclasses.replace(data, records=[])))
    assert orjson.loads(empty)["records"] == []


def test_record_table_data_written_in_blocks_is_one_json_array(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    records = [
        RecordRow(f"E{i}", "joiner", "created", display_name=f"</script><!-- {i}")
        for i in range(10)
    ]
    whole = report_table.build_record_table(records)
    monkeypatch.setattr(report_table, "_DATA_BLOCK", 3)
    assert report_table.build_record_table(records) == whole
    data = whole.split('id="rt-data">', 1)[1].split("</script>", 1)[0]
    assert "<" not in data
    assert [r[1] for r in json.loads(data)] == [r.display_name for r in records]
    empty = report_table.build_record_table([])
    assert 'id="rt-data">[]</script>' in empty


def test_failures_csv_written_in_blocks_is_one_csv(monkeypatch: pytest.MonkeyPatch) -> None:
    data = sample_input()
    body = build_failures_csv(data)
    monkeypatch.setattr(report_module, "_CSV_BLOCK", 3)
    assert build_failures_csv(data) == body
    rows = list(csv.reader(io.StringIO(body.decode("utf-8"))))
    assert rows[0] == ["externalId", "line", "action", "errorCode", "reason"]
    assert len(rows) > 4


class _OnePass:
    """Records made as they are read, as the engine's reports get them."""

    def __init__(self, records: list[RecordRow]) -> None:
        self.records = records
        self.passes = 0

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[RecordRow]:
        self.passes += 1
        return (dataclasses.replace(r) for r in self.records)


def test_reports_from_rows_made_as_they_are_read_equal_those_from_a_list() -> None:
    data = sample_input()
    rows = _OnePass(list(data.records))
    streamed = dataclasses.replace(data, records=rows)
    assert build_report_json(streamed) == build_report_json(data)
    assert build_failures_csv(streamed) == build_failures_csv(data)
    assert build_report_html(streamed) == build_report_html(data)
    assert rows.passes >= 3


def test_the_reports_count_the_records_once_and_read_full_rows_twice() -> None:
    data = sample_input()
    full, brief = _OnePass(list(data.records)), _OnePass(list(data.records))
    got: dict[str, bytes] = {}

    def put(name: str, parts: Iterable[bytes], ctype: str) -> str:
        got[name] = b"".join(parts)
        return name

    write_reports(dataclasses.replace(data, records=full, brief_records=brief), put)
    assert (full.passes, brief.passes) == (2, 2)  # report.json, the table; counts, csv
    assert got["report.json"] == build_report_json(data)
    assert got["failures.csv"] == build_failures_csv(data)
    assert got["report.html"] == build_report_html(data).encode("utf-8")
