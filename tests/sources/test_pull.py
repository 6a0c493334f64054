"""pull_snapshot: the one call the engine makes for a pulled source."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from connector.errors import ConfigError
from connector.extract import ExtractReader
from connector.sources.pull import is_pulled, pull_snapshot, source_columns
from tests.sources.fake_hr_api import ApiState
from tests.sources.helpers import source_from


def _db(tmp_path: Path) -> Path:
    db = tmp_path / "hr.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE employees (EmployeeID TEXT, FirstName TEXT)")
        conn.executemany("INSERT INTO employees VALUES (?, ?)", [("E1", "Ada"), ("E2", "Alan")])
    conn.close()
    return db


def test_a_sql_source_is_pulled_into_a_snapshot_the_extract_reader_reads(tmp_path: Path) -> None:
    src = source_from(
        f"    kind: sql\n    sql: {{url: 'sqlite:///{_db(tmp_path)}', table: employees}}\n"
    )
    assert is_pulled(src)
    snap = pull_snapshot(src, settings={}, directory=tmp_path)
    with ExtractReader(snap.path, id_column="EmployeeID", label=f"{src.name} pull") as reader:
        assert [r.values for r in reader] == [
            {"EmployeeID": "E1", "FirstName": "Ada"},
            {"EmployeeID": "E2", "FirstName": "Alan"},
        ]
    assert source_columns(src, settings={}) == ["EmployeeID", "FirstName"]


def test_a_rest_source_is_pulled_with_settings_from_the_mapping_given(
    hr_api: ApiState, tmp_path: Path
) -> None:
    src = source_from(
        f"    kind: rest\n    rest: {{url: '{hr_api.base}/apikey/workers', records: '$.value[*]',"
        " auth: {type: api_key, key_setting: HR_KEY}}\n"
    )
    snap = pull_snapshot(src, settings={"HR_KEY": "k-123"}, directory=tmp_path)
    assert snap.rows == 5
    assert source_columns(src, settings={"HR_KEY": "k-123"})[0] == "id"


def test_the_environment_is_the_default_settings(
    hr_api: ApiState, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HR_KEY", "k-123")
    src = source_from(
        f"    kind: rest\n    rest: {{url: '{hr_api.base}/apikey/workers', records: '$.value[*]',"
        " auth: {type: api_key, key_setting: HR_KEY}}\n"
    )
    assert pull_snapshot(src, directory=tmp_path).rows == 5


def test_a_file_source_is_not_pulled() -> None:
    src = source_from("    match: employees/\n")
    assert not is_pulled(src)
    with pytest.raises(ConfigError, match="is a file source; it is not pulled"):
        pull_snapshot(src, settings={})


def test_due_sources_picks_pulled_sources_whose_schedule_has_come() -> None:
    from datetime import datetime

    from connector.config import parse_sources
    from connector.sources.pull import due_sources
    from tests.sources.helpers import ENDPOINT

    def src(name: str, extra: str) -> str:
        return f"  - name: {name}\n    mapping: m.yaml\n    endpoint: {ENDPOINT}\n{extra}"

    sql = "    kind: sql\n    sql: {url: 'sqlite:///x.db', table: t}\n"
    config = parse_sources(
        "sources:\n"
        + src("files", "    match: a/\n")
        + src("nightly", sql + "    schedule: '0 0 2 * * *'\n")
        + src("hourly", sql + "    schedule: '0 0 * * * *'\n")
        + src("manual", sql)
    )
    now = datetime(2026, 3, 2, 2, 30)
    last = {"nightly": datetime(2026, 3, 2, 2, 0, 5), "hourly": datetime(2026, 3, 2, 1, 0, 1)}
    assert [s.name for s in due_sources(config.sources, last, now)] == ["hourly"]
    assert [s.name for s in due_sources(config.sources, {}, now)] == ["nightly", "hourly"]
