"""`connector sync --source` without an extract pulls a sql source; `connector validate
--source` checks the source's mapping against the columns it has (real SQLite files)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from connector.emulator.config import EmulatorConfig, JobConfig
from connector.emulator.server import run_emulator
from tests.cli.helpers import invoke
from tests.sources.pullworld import JOB, MAPPING, SP, sqlite_exec, sqlite_staging


def _config(path: Path, url: str, query: str = "table: employees") -> Path:
    path.write_text(
        "sources:\n  - name: hr-sql\n    kind: sql\n"
        f"    sql: {{url: '{url}', {query}}}\n"
        f"    mapping: {MAPPING}\n    service_principal_id: {SP}\n    job_id: {JOB}\n"
        "  - name: files\n    match: files/\n"
        f"    mapping: {MAPPING}\n    service_principal_id: {SP}\n    job_id: {JOB}\n",
        encoding="utf-8",
    )
    return path


def test_sync_without_an_extract_pulls_the_source_dry_run_then_for_real(tmp_path: Path) -> None:
    db = tmp_path / "hr.db"
    config = _config(tmp_path / "sources.yaml", sqlite_staging(db))
    common = ["--config", str(config), "--state", str(tmp_path / "state")]
    dry = invoke("sync", "--source", "hr-sql", *common, "--dry-run")
    assert "source hr-sql: pulled 60 rows" in dry
    assert "60 joiners" in dry
    assert not (tmp_path / "state").exists()
    with run_emulator(EmulatorConfig(jobs=[JobConfig(service_principal_id=SP, job_id=JOB)])) as emu:
        net = ["--endpoint", emu.endpoint_url, "--token", emu.token, "--allow-loopback"]
        out = invoke("sync", "--source", "hr-sql", *common, *net)
        assert "uploaded" in out
        emu.wait_idle()
        assert len(emu.users()) == 60
        again = invoke("sync", "--source", "hr-sql", *common, *net)
        assert re.search(r"already|duplicate|nothing to do", again, re.I), again


def test_sync_without_an_extract_names_a_failed_pull_and_exits_1(tmp_path: Path) -> None:
    db = tmp_path / "hr.db"
    config = _config(tmp_path / "sources.yaml", sqlite_staging(db))
    sqlite_exec(db, "DELETE FROM employees")
    out = invoke(
        "sync",
        "--source",
        "hr-sql",
        "--config",
        str(config),
        "--state",
        str(tmp_path / "s"),
        "--dry-run",
        code=1,
    )
    assert "source 'hr-sql'" in out
    assert "no rows" in out


def test_sync_of_a_file_source_without_an_extract_is_refused(tmp_path: Path) -> None:
    config = _config(tmp_path / "sources.yaml", sqlite_staging(tmp_path / "hr.db"))
    out = invoke("sync", "--source", "files", "--config", str(config), code=2)
    assert "receives files" in out


def test_validate_source_passes_a_table_with_every_mapped_column(tmp_path: Path) -> None:
    config = _config(tmp_path / "sources.yaml", sqlite_staging(tmp_path / "hr.db"))
    out = invoke("validate", "--source", "hr-sql", "--config", str(config), "--json")
    assert json.loads(out)["ok"] is True


def test_validate_source_names_a_mapped_column_the_source_lacks(tmp_path: Path) -> None:
    url = sqlite_staging(tmp_path / "hr.db")
    query = "query: 'SELECT EmployeeId, Status, FirstName FROM employees'"
    config = _config(tmp_path / "sources.yaml", url, query)
    out = invoke("validate", "--source", "hr-sql", "--config", str(config), code=1)
    assert "WorkEmail" in out


def test_validate_source_names_the_source_when_the_database_cannot_be_opened(
    tmp_path: Path,
) -> None:
    db = tmp_path / "hr.db"
    config = _config(tmp_path / "sources.yaml", sqlite_staging(db))
    db.unlink()
    db.mkdir()
    out = invoke("validate", "--source", "hr-sql", "--config", str(config), code=1)
    assert "source 'hr-sql'" in out
