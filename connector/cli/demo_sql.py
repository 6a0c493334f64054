"""``connector demo --source sql``: a SQLite staging table pulled end to end.

The same engine as the file demo, with a ``kind: sql`` source: day 1 pulls the table (a
first load), day 2 pulls it after HR's churn was written into it, a pull of the unchanged
table is a no-op, and a table left with 40 % of its rows is held by the mass-change
guard. Everything stays in the demo directory and on loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from connector.cli.common import console as new_console
from connector.cli.demo import (
    DEMO_JOB,
    DEMO_SP,
    demo_engine,
    demo_mapping,
    fresh_directory,
    print_outcome,
    quiet_engine,
    settle,
)
from connector.cli.options import StateLocation, command_flags
from connector.cli.pulled import print_pull
from connector.cli.render import print_summary
from connector.sync.summary import RunSummary

__all__ = ["run_sql_demo"]

_SOURCE = "hr-sql"


def _load_table(db: Path, extract: Path) -> int:
    """Replace the staging table ``employees`` with the rows of ``extract`` (all text;
    an empty field is NULL, as an HR export into a staging table would leave it)."""
    with extract.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    with contextlib.closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("DROP TABLE IF EXISTS employees")
        columns = ", ".join(f'"{c}" TEXT' for c in header)
        conn.execute(f"CREATE TABLE employees ({columns})")
        # only placeholders are formatted in; the values are bound parameters
        insert = f"INSERT INTO employees VALUES ({', '.join('?' for _ in header)})"  # noqa: S608
        conn.executemany(insert, [[v or None for v in r] for r in body])
    return len(body)


def _write_config(directory: Path, db: Path) -> Path:
    config_path = directory / "sources.yaml"
    config_path.write_text(
        "# Written by `connector demo --source sql`.\n"
        "sources:\n"
        f"  - name: {_SOURCE}\n"
        "    kind: sql\n"
        f"    sql: {{url: 'sqlite:///{db}', table: employees}}\n"
        "    schedule: '0 0 2 * * *'\n"
        f"    mapping: {demo_mapping()}\n"
        f"    service_principal_id: {DEMO_SP}\n"
        f"    job_id: {DEMO_JOB}\n"
        "    mode: full\n"
        "    leavers: disable\n",
        encoding="utf-8",
    )
    return config_path


def _steps(work: Path, db: Path, rows: int) -> list[tuple[str, Callable[[], object]]]:
    """What HR does to the staging table before each pull, with the rule printed."""
    from connector.sample import churn_extract, generate_extract

    day1, day2 = work / "day1.csv", work / "day2.csv"
    generate_extract(day1, rows, seed=42)
    churn_extract(day1, day2, churn=0.06, seed=7)

    def truncate() -> None:
        with contextlib.closing(sqlite3.connect(db)) as conn, conn:
            conn.execute("DELETE FROM employees WHERE rowid % 5 NOT IN (1, 2)")

    return [
        (
            f"day 1: the staging table holds {rows} people: first load",
            lambda: _load_table(db, day1),
        ),
        ("day 2: HR's churn written into the table", lambda: _load_table(db, day2)),
        ("day 2, again: the table is unchanged", lambda: None),
        ("day 3: the table lost 60 % of its rows", truncate),
    ]


def run_sql_demo(
    directory: Path, *, rows: int = 300, log_delay: float = 1.0, console: Console | None = None
) -> list[RunSummary]:
    """Pull a SQLite staging table four times against the in-process emulator."""
    with quiet_engine():
        return _run(directory, rows, log_delay, console or new_console())


def _run(directory: Path, rows: int, log_delay: float, out: Console) -> list[RunSummary]:
    started = time.monotonic()
    directory = directory.resolve()
    work = fresh_directory(directory)
    db = directory / "staging.db"
    config_path = _write_config(directory, db)
    flags = command_flags(config_path, StateLocation(directory=directory / "state"))
    with demo_engine(config_path, directory, log_delay, flags, out) as (emu, engine):
        out.print(f"staging table: {db} (SQLite), pulled as source {_SOURCE}")
        for title, change in _steps(work, db, rows):
            out.rule(title)
            change()
            result = asyncio.run(engine.pull(_SOURCE))
            print_pull(result, out)
            if result.summary is not None:
                print_summary(result.summary, out, flags)
                if result.summary.state in ("uploaded", "reconciling"):
                    settle(emu, engine, log_delay)
        final = engine.list_runs()
    print_outcome(out, final, directory, config_path, flags)
    out.print(f"done in {time.monotonic() - started:.1f} s, no network used beyond loopback")
    return list(final)
