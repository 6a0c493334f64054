"""report.json and failures.csv (formula-safe), written in blocks, and the three files handed
to the store."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections.abc import Iterable, Iterator

import orjson
import pytest

import connector.report as report_module
import connector.report_table as report_table
from connector.csv_out import neutralise_cell
from connector.report import (
    RecordRow,
    build_failures_csv,
    build_report_json,
    write_reports,
)
from connector.report_html import build_report_html
from tests.report.sample_report import sample_input


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
