"""Pulled sources through the engine: a pull is a run like a dropped file, against the
emulator over loopback, with real SQLite files and the session's real PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.config import parse_sources
from connector.errors import EmptySnapshotError, SourceAuthError, SourceError
from connector.sync.pulling import PullState
from tests.sources.conftest import READER_PASSWORD
from tests.sources.fake_hr_api import CLIENT_ID, CLIENT_SECRET, WORKERS, ApiState
from tests.sources.pg import PgServer
from tests.sources.pullworld import (
    JOB,
    SP,
    config_for,
    pull_world,
    sample_rows,
    sqlite_exec,
    sqlite_staging,
    tree_digest,
)


def _record(w: object) -> PullState:
    doc, _ = w.engine.runs.pull_record("hr-sql")  # type: ignore[attr-defined]
    return PullState.from_doc(doc)


def test_a_staging_table_is_pulled_sent_and_reconciled_end_to_end(tmp_path: Path) -> None:
    url = sqlite_staging(tmp_path / "hr.db")
    with pull_world(tmp_path, config_for(f"{{url: '{url}', table: employees}}")) as w:
        result = w.pull()
        assert result.rows == 60
        assert result.summary is not None
        assert result.summary.state == "uploaded"
        assert result.summary.planned["joiners"] == 60
        [done] = w.reconcile()
        assert done.state == "done"
        assert done.outcomes.get("created") == 60
        assert len(w.emu.users()) == 60
        assert _record(w).last_pull_at == result.pulled_at
        assert _record(w).last_run == result.summary.run_id


def test_pulling_unchanged_data_twice_is_a_no_op(tmp_path: Path) -> None:
    url = sqlite_staging(tmp_path / "hr.db")
    with pull_world(tmp_path, config_for(f"{{url: '{url}', table: employees}}")) as w:
        first = w.pull()
        calls = len(w.emu.calls())
        w.clock.advance(3600)
        again = w.pull()
        assert again.summary is not None
        assert first.summary is not None
        assert again.summary.duplicate
        assert again.summary.run_id == first.summary.run_id
        assert len(w.emu.calls()) == calls
        assert len(w.engine.list_runs()) == 1


def test_a_person_absent_from_the_next_full_pull_is_disabled_as_a_leaver(
    tmp_path: Path,
) -> None:
    db = tmp_path / "hr.db"
    url = sqlite_staging(db)
    _, body = sample_rows()
    gone = body[-1][0]
    with pull_world(tmp_path, config_for(f"{{url: '{url}', table: employees}}")) as w:
        w.pull()
        w.reconcile()
        sqlite_exec(db, 'DELETE FROM employees WHERE "EmployeeId" = ?', gone)
        w.clock.advance(86400)
        second = w.pull()
        assert second.summary is not None
        assert second.summary.planned["leavers"] == 1
        assert second.summary.state == "uploaded"
        assert w.emu.users()[gone]["accountEnabled"] is False


def test_an_empty_pull_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "hr.db"
    url = sqlite_staging(db)
    with pull_world(tmp_path, config_for(f"{{url: '{url}', table: employees}}")) as w:
        w.pull()
        w.reconcile()
        before, calls = tree_digest(w.state), len(w.emu.calls())
        sqlite_exec(db, "DELETE FROM employees")
        w.clock.advance(86400)
        with pytest.raises(EmptySnapshotError, match="source 'hr-sql'"):
            w.pull()
        assert tree_digest(w.state) == before
        assert len(w.emu.calls()) == calls


def test_a_pull_that_would_disable_most_people_is_held_by_the_guard(tmp_path: Path) -> None:
    db = tmp_path / "hr.db"
    url = sqlite_staging(db)
    _, body = sample_rows()
    keep = body[0][0]
    with pull_world(tmp_path, config_for(f"{{url: '{url}', table: employees}}")) as w:
        w.pull()
        w.reconcile()
        calls = len(w.emu.calls())
        sqlite_exec(db, 'DELETE FROM employees WHERE "EmployeeId" <> ?', keep)
        w.clock.advance(86400)
        held = w.pull()
        assert held.summary is not None
        assert held.summary.state == "held"
        assert held.summary.held_reason
        assert len(w.emu.calls()) == calls
        enabled = [u for u in w.emu.users().values() if u["accountEnabled"]]
        assert len(enabled) == len([r for r in body if r[1] in ("Active", "On leave")])


def test_an_unreachable_database_fails_the_pull_naming_the_source_and_changes_nothing(
    tmp_path: Path,
) -> None:
    db = tmp_path / "hr.db"
    url = sqlite_staging(db)
    with pull_world(tmp_path, config_for(f"{{url: '{url}', table: employees}}")) as w:
        first = w.pull()
        before, calls = tree_digest(w.state), len(w.emu.calls())
        db.unlink()
        (tmp_path / "hr.db").mkdir()  # a directory where the database was: cannot open
        w.clock.advance(86400)
        with pytest.raises(SourceError, match="source 'hr-sql'"):
            w.pull()
        assert tree_digest(w.state) == before
        assert len(w.emu.calls()) == calls
        assert _record(w).last_pull_at == first.pulled_at


def test_a_snapshot_lacking_a_mapped_column_sends_nothing_and_is_not_a_successful_pull(
    tmp_path: Path,
) -> None:
    db = tmp_path / "hr.db"
    url = sqlite_staging(db)
    query = "SELECT EmployeeId, Status, FirstName FROM employees"
    with pull_world(tmp_path, config_for(f"{{url: '{url}', query: '{query}'}}")) as w:
        result = w.pull()
        assert result.summary is not None
        assert result.summary.state == "failed"
        assert "hr-sql-pull.csv, line 1" in (result.summary.failed_reason or "")
        assert "WorkEmail" in (result.summary.failed_reason or "")
        assert w.emu.calls() == []
        assert _record(w).last_pull_at is None


def test_a_delta_source_stores_its_watermark_once_the_run_is_applied(tmp_path: Path) -> None:
    db = tmp_path / "hr.db"
    url = sqlite_staging(db, updated=True)
    block = f"{{url: '{url}', table: employees, watermark: UpdatedAt}}"
    _, body = sample_rows()
    changed = body[3][0]
    with pull_world(tmp_path, config_for(block, mode="delta")) as w:
        first = w.pull()
        assert first.summary is not None
        assert first.summary.state == "uploaded"
        assert first.watermark == "60"
        assert _record(w).watermark is not None
        assert _record(w).watermark.text == "60"  # type: ignore[union-attr]
        assert _record(w).pending_run is None
        w.reconcile()
        sqlite_exec(
            db,
            'UPDATE employees SET "JobTitle" = ?, "UpdatedAt" = 61 WHERE "EmployeeId" = ?',
            "Chief Dreamer",
            changed,
        )
        w.clock.advance(3600)
        second = w.pull()
        assert second.rows == 2  # at or above the stored mark: row 60 again, and the change
        assert second.summary is not None
        assert second.summary.planned["movers"] == 1
        assert _record(w).watermark.text == "61"  # type: ignore[union-attr]
        w.clock.advance(3600)
        third = w.pull()  # nothing new: the row at the mark again, unchanged
        assert third.summary is None or third.summary.planned.get("movers", 0) == 0


def test_a_dry_run_pull_plans_and_records_nothing(tmp_path: Path) -> None:
    url = sqlite_staging(tmp_path / "hr.db")
    with pull_world(tmp_path, config_for(f"{{url: '{url}', table: employees}}")) as w:
        result = w.pull(dry_run=True)
        assert result.summary is not None
        assert result.summary.dry_run
        assert result.summary.planned["joiners"] == 60
        assert w.emu.calls() == []
        assert _record(w).last_pull_at is None


def _pg_staging(server: PgServer) -> None:
    header, body = sample_rows()
    with server.admin() as conn:
        conn.execute("DROP SCHEMA IF EXISTS pulled CASCADE")
        conn.execute("CREATE SCHEMA pulled")
        cols = ", ".join(f'"{c}" text' for c in header)
        conn.execute(f"CREATE TABLE pulled.employees ({cols})")
        marks = ", ".join("%s" for _ in header)
        with conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO pulled.employees VALUES ({marks})",
                [[v or None for v in r] for r in body],
            )
        conn.execute("GRANT USAGE ON SCHEMA pulled TO hr_reader")
        conn.execute("GRANT SELECT ON ALL TABLES IN SCHEMA pulled TO hr_reader")


def _pg_block(server: PgServer) -> str:
    _pg_staging(server)
    return (
        f"{{url: '{server.url('hr_reader')}', table: pulled.employees,"
        " auth: password, password_setting: HR_DB_PASSWORD}"
    )


def test_a_postgresql_staging_table_is_synced_end_to_end(
    tmp_path: Path, postgres: PgServer
) -> None:
    block = _pg_block(postgres)
    settings = {"HR_DB_PASSWORD": READER_PASSWORD}
    with pull_world(tmp_path, config_for(block)) as w:
        result = w.pull(settings=settings)
        assert result.summary is not None
        assert result.summary.state == "uploaded"
        [done] = w.reconcile()
        assert done.outcomes.get("created") == 60
        w.clock.advance(3600)
        assert w.pull(settings=settings).summary.duplicate  # type: ignore[union-attr]


def test_refused_database_credentials_fail_the_pull_and_change_nothing(
    tmp_path: Path, postgres: PgServer
) -> None:
    block = _pg_block(postgres)
    with pull_world(tmp_path, config_for(block)) as w:
        with pytest.raises(SourceAuthError, match="source 'hr-sql'"):
            w.pull(settings={"HR_DB_PASSWORD": "wrong"})
        assert w.emu.calls() == []
        assert tree_digest(w.state) == {}


REST_MAPPING = """version: 1
externalId: id
core:
  userName: {template: "{id}@contoso.com"}
  displayName: {template: "{name.given} {name.family}"}
  name:
    givenName: name.given
    familyName: name.family
  active:
    column: active
    transforms:
      - lookup: {table: {"true": true, "false": false}}
"""


def test_a_paged_hr_api_is_pulled_with_oauth2_and_synced_end_to_end(
    tmp_path: Path, hr_api: ApiState
) -> None:
    mapping = tmp_path / "workers.yaml"
    mapping.write_text(REST_MAPPING, encoding="utf-8")
    config = parse_sources(
        f"""
sources:
  - name: hr-api
    kind: rest
    rest:
      url: {hr_api.base}/odata/workers
      records: "$.value[*]"
      next: "$['@odata.nextLink']"
      auth: {{type: oauth2_client_credentials, token_url: {hr_api.base}/token,
              client_id_setting: HR_CLIENT_ID, client_secret_setting: HR_CLIENT_SECRET}}
    mapping: {mapping}
    service_principal_id: {SP}
    job_id: {JOB}
"""
    )
    settings = {"HR_CLIENT_ID": CLIENT_ID, "HR_CLIENT_SECRET": CLIENT_SECRET}
    with pull_world(tmp_path, config) as w:
        result = w.pull("hr-api", settings=settings)
        assert result.rows == len(WORKERS)
        assert result.summary is not None
        assert result.summary.state == "uploaded", result.summary.failed_reason
        [done] = w.reconcile()
        assert done.outcomes.get("created") == len(WORKERS)
        assert w.emu.users()["E004"]["accountEnabled"] is False
        with pytest.raises(SourceAuthError, match="source 'hr-api'"):
            w.pull("hr-api", settings={**settings, "HR_CLIENT_SECRET": "wrong"})


def test_duplicate_ids_in_a_pull_reject_every_row_carrying_them_and_disable_no_one(
    tmp_path: Path,
) -> None:
    db = tmp_path / "hr.db"
    url = sqlite_staging(db)
    header, body = sample_rows()
    twin = list(body[5])
    twin[header.index("JobTitle")] = "Someone Else"
    with pull_world(tmp_path, config_for(f"{{url: '{url}', table: employees}}")) as w:
        w.pull()
        w.reconcile()
        marks = ", ".join("?" for _ in header)
        sqlite_exec(db, f"INSERT INTO employees VALUES ({marks})", *[v or None for v in twin])
        w.clock.advance(86400)
        second = w.pull()
        assert second.summary is not None
        assert second.summary.planned["leavers"] == 0
        assert second.summary.planned.get("movers", 0) == 0
        journal = w.engine.get_run(second.summary.run_id)
        assert journal.rejected_count == 2
        rejected = w.engine.runs.load_rejected(journal)
        assert {r.external_id for r in rejected} == {twin[0]}
        assert all("duplicate" in r.reason.lower() for r in rejected)
        assert sorted(r.line for r in rejected) == [7, 62]  # the table's row order, header 1
        assert w.emu.users()[twin[0]]["accountEnabled"] is True
