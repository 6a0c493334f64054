"""`connector demo --source sql`: a SQLite staging table pulled end to end."""

from __future__ import annotations

import re
from pathlib import Path

from tests.cli.helpers import invoke


def test_sql_demo_pulls_the_staging_table_through_the_engine(tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    out = invoke("demo", "--source", "sql", "--dir", str(demo), "--rows", "80")
    assert "source hr-sql: pulled 80 rows" in out
    assert "this file was already received: nothing done" in out  # the unchanged pull
    states = re.findall(r"^ (hr-sql-\w+)\s+hr-sql-pull\.csv\s+(\w+)", out, re.M)
    assert [s for _, s in states] == ["done", "done", "held"]
    assert (demo / "staging.db").is_file()
    shown = invoke(
        "runs",
        "show",
        states[2][0],
        "--config",
        str(demo / "sources.yaml"),
        "--state",
        str(demo / "state"),
    )
    assert "held" in shown


def test_demo_refuses_an_unknown_source_kind(tmp_path: Path) -> None:
    out = invoke("demo", "--source", "rest", "--dir", str(tmp_path / "d"), code=2)
    assert "'sql'" in out
