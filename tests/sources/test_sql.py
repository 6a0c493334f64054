"""The sql source against a real PostgreSQL server and SQLite: values, streaming,
credentials, watermarks and every failure naming the source."""

from __future__ import annotations

import sqlite3
import struct
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from connector.errors import EmptySnapshotError, SourceAuthError, SourceError
from connector.extract import ExtractProfile, ExtractReader
from connector.sources.models import SqlSettings
from connector.sources.snapshot import Watermark
from connector.sources.sql import (
    AZURE_POSTGRES_SCOPE,
    AZURE_SQL_SCOPE,
    SQL_COPT_SS_ACCESS_TOKEN,
    entra_connect_params,
    pull_sql,
    sql_columns,
    token_hook,
)
from tests.sources.conftest import ENTRA_TOKEN, READER_PASSWORD
from tests.sources.helpers import read_csv
from tests.sources.pg import PgServer

SETTINGS = {"HR_DB_PASSWORD": READER_PASSWORD}


def _pg(postgres: PgServer, **kw: object) -> SqlSettings:
    base: dict[str, object] = {
        "url": postgres.url("hr_reader"),
        "auth": "password",
        "password_setting": "HR_DB_PASSWORD",
        "query": 'SELECT "EmployeeID", "FirstName", "LastName", "HireDate", "UpdatedAt",'
        ' "Active", "Salary", "Rating", "ManagerID" FROM staging.employees'
        ' ORDER BY "EmployeeID"',
    }
    base.update(kw)
    return SqlSettings.model_validate(base)


class FakeCredential:
    def __init__(self, token: str = ENTRA_TOKEN) -> None:
        self.token = token
        self.scopes: list[str] = []

    def get_token(self, *scopes: str) -> SimpleNamespace:
        self.scopes.extend(scopes)
        return SimpleNamespace(token=self.token, expires_on=0)


def test_postgres_rows_become_text_by_the_documented_rules(
    postgres: PgServer, tmp_path: Path
) -> None:
    snap = pull_sql("hr-sql", _pg(postgres), settings=SETTINGS, directory=tmp_path)
    rows = read_csv(snap.path)
    assert rows[0] == [
        "EmployeeID", "FirstName", "LastName", "HireDate", "UpdatedAt",
        "Active", "Salary", "Rating", "ManagerID",
    ]  # fmt: skip
    assert rows[1] == [
        "E001", "Ada", "Lovelace", "2020-01-15", "2026-01-01T08:00:00+00:00",
        "true", "52000.50", "0.1", "",
    ]  # fmt: skip
    assert rows[2][5:8] == ["true", "61000.00", "4"]
    assert rows[3][3] == ""
    assert rows[3][5] == "false"
    assert rows[3][6:8] == ["", ""]
    assert snap.rows == 3
    assert snap.columns[0] == "EmployeeID"


def test_pulling_the_same_data_twice_gives_the_same_content_hash(
    postgres: PgServer, tmp_path: Path
) -> None:
    first = pull_sql("hr-sql", _pg(postgres), settings=SETTINGS, directory=tmp_path)
    second = pull_sql("hr-sql", _pg(postgres), settings=SETTINGS, directory=tmp_path)
    assert first.sha256 == second.sha256
    assert first.path != second.path
    import hashlib

    assert hashlib.sha256(first.path.read_bytes()).hexdigest() == first.sha256


def test_a_snapshot_is_read_by_the_extract_reader_like_a_dropped_file(
    postgres: PgServer, tmp_path: Path
) -> None:
    snap = pull_sql("hr-sql", _pg(postgres), settings=SETTINGS, directory=tmp_path)
    with ExtractReader(snap.path, id_column="EmployeeID", label="hr-sql") as reader:
        rows = list(reader)
    assert [r.values["EmployeeID"] for r in rows] == ["E001", "E002", "E003"]
    assert [r.line for r in rows] == [2, 3, 4]


def test_duplicate_ids_in_a_pulled_snapshot_are_rejected_with_their_lines(
    postgres: PgServer, tmp_path: Path
) -> None:
    query = (
        'SELECT "EmployeeID", "FirstName" FROM staging.employees UNION ALL'
        " SELECT 'E001', 'Again' ORDER BY 2"
    )
    snap = pull_sql("hr-sql", _pg(postgres, query=query), settings=SETTINGS, directory=tmp_path)
    profile = ExtractProfile(max_rejected_share=1.0)
    reader = ExtractReader(snap.path, profile, id_column="EmployeeID", label="hr-sql")
    accepted = [r.values["EmployeeID"] for r in reader]
    assert accepted == ["E002", "E003"]
    assert sorted((r.line, r.reason_code) for r in reader.rejected) == [
        (2, "duplicate_external_id"),
        (3, "duplicate_external_id"),
    ]


def test_a_table_can_be_named_instead_of_a_query(postgres: PgServer, tmp_path: Path) -> None:
    cfg = _pg(postgres, query=None, table="staging.employees")
    with pytest.raises(SourceError, match=r"'hr-sql'.*column 'Photo' holds binary values"):
        pull_sql("hr-sql", cfg, settings=SETTINGS, directory=tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing half-written is left


def test_entra_auth_hands_the_managed_identity_token_to_postgres_as_the_password(
    postgres: PgServer, tmp_path: Path
) -> None:
    cred = FakeCredential()
    cfg = _pg(postgres, url=postgres.url("mi_reader"), auth="entra", password_setting=None)
    snap = pull_sql("hr-sql", cfg, settings={}, credential=cred, directory=tmp_path)
    assert snap.rows == 3
    assert cred.scopes == [AZURE_POSTGRES_SCOPE]


def test_a_refused_entra_token_is_an_auth_error_naming_the_source(
    postgres: PgServer, tmp_path: Path
) -> None:
    cfg = _pg(postgres, url=postgres.url("mi_reader"), auth="entra", password_setting=None)
    with pytest.raises(SourceAuthError) as info:
        pull_sql("hr-sql", cfg, settings={}, credential=FakeCredential("wrong"), directory=tmp_path)
    assert "'hr-sql'" in str(info.value)
    assert "wrong" not in str(info.value)


def test_a_wrong_password_is_an_auth_error_without_the_password(
    postgres: PgServer, tmp_path: Path
) -> None:
    with pytest.raises(SourceAuthError) as info:
        pull_sql("hr-sql", _pg(postgres), settings={"HR_DB_PASSWORD": "nope-123"})
    assert "'hr-sql'" in str(info.value)
    assert "nope-123" not in str(info.value)


def test_a_missing_password_setting_is_named(postgres: PgServer) -> None:
    with pytest.raises(SourceError, match="app setting 'HR_DB_PASSWORD'"):
        pull_sql("hr-sql", _pg(postgres), settings={})


def test_an_unreachable_database_is_a_source_error(postgres: PgServer) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = _pg(postgres, url=f"postgresql+psycopg://hr_reader@127.0.0.1:{port}/hr")
    with pytest.raises(SourceError, match=r"source 'hr-sql': database error"):
        pull_sql("hr-sql", cfg, settings=SETTINGS)


def test_a_query_returning_no_rows_is_refused(postgres: PgServer, tmp_path: Path) -> None:
    cfg = _pg(postgres, query="SELECT * FROM staging.empty_employees")
    with pytest.raises(EmptySnapshotError, match="no rows"):
        pull_sql("hr-sql", cfg, settings=SETTINGS, directory=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_bad_query_names_the_source_and_the_database_message(postgres: PgServer) -> None:
    cfg = _pg(postgres, query="SELECT nope FROM staging.employees")
    with pytest.raises(SourceError, match=r"'hr-sql'.*column \"nope\" does not exist"):
        pull_sql("hr-sql", cfg, settings=SETTINGS)


def test_sql_columns_reads_the_header_without_rows(postgres: PgServer) -> None:
    cols = sql_columns("hr-sql", _pg(postgres), settings=SETTINGS)
    assert cols[:3] == ["EmployeeID", "FirstName", "LastName"]
    assert len(cols) == 9


def test_a_watermark_pull_reads_only_rows_at_or_above_the_last_mark(
    postgres: PgServer, tmp_path: Path
) -> None:
    cfg = _pg(postgres, watermark="UpdatedAt")
    first = pull_sql("hr-sql", cfg, settings=SETTINGS, directory=tmp_path)
    assert first.rows == 3
    assert first.watermark == Watermark("datetime", "2026-01-03T10:00:00+00:00")
    stored = Watermark.from_json(first.watermark.to_json())
    again = pull_sql("hr-sql", cfg, settings=SETTINGS, last_watermark=stored, directory=tmp_path)
    assert [r[0] for r in read_csv(again.path)[1:]] == ["E003"]
    mid = Watermark("datetime", datetime(2026, 1, 2, tzinfo=UTC).isoformat())
    later = pull_sql("hr-sql", cfg, settings=SETTINGS, last_watermark=mid, directory=tmp_path)
    assert [r[0] for r in read_csv(later.path)[1:]] == ["E002", "E003"]


def test_a_watermark_pull_with_nothing_new_is_an_empty_snapshot_keeping_the_mark(
    postgres: PgServer, tmp_path: Path
) -> None:
    cfg = _pg(postgres, watermark="UpdatedAt")
    mark = Watermark("datetime", "2027-01-01T00:00:00+00:00")
    snap = pull_sql("hr-sql", cfg, settings=SETTINGS, last_watermark=mark, directory=tmp_path)
    assert snap.rows == 0
    assert snap.watermark == mark
    assert read_csv(snap.path) == [list(snap.columns)]


def test_a_watermark_column_missing_from_the_query_is_named(postgres: PgServer) -> None:
    cfg = _pg(postgres, query='SELECT "EmployeeID" FROM staging.employees', watermark="UpdatedAt")
    with pytest.raises(SourceError, match=r"'hr-sql'.*UpdatedAt does not exist"):
        pull_sql("hr-sql", cfg, settings=SETTINGS)


def _sqlite(tmp_path: Path) -> str:
    db = tmp_path / "hr.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE people (id TEXT, name TEXT, score REAL, n INTEGER, ok BOOLEAN)")
        conn.executemany(
            "INSERT INTO people VALUES (?, ?, ?, ?, ?)",
            [("1", "A, with comma", 0.30000000000000004, 7, 1), ("2", 'quote "x"', 2.5, None, 0)],
        )
    conn.close()
    return f"sqlite:///{db}"


def test_sqlite_rows_stream_into_a_canonical_csv(tmp_path: Path) -> None:
    cfg = SqlSettings(url=_sqlite(tmp_path), table="people")
    snap = pull_sql("local", cfg, settings={}, directory=tmp_path)
    assert snap.path.read_text(encoding="utf-8") == (
        'id,name,score,n,ok\n1,"A, with comma",0.30000000000000004,7,1\n2,"quote ""x""",2.5,,0\n'
    )


def test_sqlite_with_a_watermark_on_a_query(tmp_path: Path) -> None:
    cfg = SqlSettings(url=_sqlite(tmp_path), query="SELECT id, n FROM people", watermark="id")
    snap = pull_sql("local", cfg, settings={}, directory=tmp_path)
    assert snap.watermark == Watermark("text", "2")
    again = pull_sql("local", cfg, settings={}, last_watermark=snap.watermark, directory=tmp_path)
    assert read_csv(again.path) == [["id", "n"], ["2", ""]]


def test_duplicate_column_names_are_refused_with_their_names(
    postgres: PgServer, tmp_path: Path
) -> None:
    cfg = _pg(postgres, query='SELECT "EmployeeID", "EmployeeID" FROM staging.employees')
    with pytest.raises(SourceError, match="columns EmployeeID appear more than once"):
        pull_sql("hr-sql", cfg, settings=SETTINGS, directory=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_entra_for_sql_server_puts_the_token_struct_in_attrs_before() -> None:
    cparams: dict[str, object] = {"attrs_before": {99: b"keep"}}
    entra_connect_params("mssql", "abc", cparams)
    raw = "abc".encode("utf-16-le")
    assert cparams["attrs_before"] == {
        99: b"keep",
        SQL_COPT_SS_ACCESS_TOKEN: struct.pack("<I", len(raw)) + raw,
    }


def test_entra_for_sql_server_asks_for_the_azure_sql_scope_at_connect() -> None:
    cred = FakeCredential()
    hook = token_hook("az", "mssql", AZURE_SQL_SCOPE, cred)
    cparams: dict[str, object] = {}
    hook(None, None, [], cparams)
    assert cred.scopes == [AZURE_SQL_SCOPE]
    assert SQL_COPT_SS_ACCESS_TOKEN in cparams["attrs_before"]  # type: ignore[operator]


def test_a_failing_credential_is_an_auth_error_naming_the_scope() -> None:
    class Broken:
        def get_token(self, *scopes: str) -> SimpleNamespace:
            raise RuntimeError("imds down")

    hook = token_hook("az", "postgresql", AZURE_POSTGRES_SCOPE, Broken())
    with pytest.raises(SourceAuthError, match=r"'az'.*ossrdbms-aad.*RuntimeError"):
        hook(None, None, [], {})


def test_a_data_error_shows_the_sqlstate_and_never_the_value(postgres: PgServer) -> None:
    cfg = _pg(postgres, query='SELECT "FirstName"::int AS n FROM staging.employees')
    with pytest.raises(SourceError, match=r"'hr-sql': database error SQLSTATE 22P02") as info:
        pull_sql("hr-sql", cfg, settings=SETTINGS)
    assert "Ada" not in str(info.value)
