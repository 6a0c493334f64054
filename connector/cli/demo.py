"""``connector demo``: three extracts end to end against the in-process emulator.

Day 1 is a first load, day 2 a churn with two planted faults (a duplicate UPN and an
unknown manager), day 3 a truncated extract that the mass-change guard holds. The demo
keeps its files in one directory it recreates each time, and sends nothing beyond
loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import logging
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from connector.cli.common import console as new_console
from connector.cli.exits import failing
from connector.cli.options import GraphOptions, StateLocation, command_flags
from connector.cli.render import open_in_browser, plan_text, print_summary, runs_table
from connector.cli.wiring import command_engine
from connector.errors import ConfigError

if TYPE_CHECKING:
    from connector.emulator.server import RunningEmulator
    from connector.sync.engine import Engine
    from connector.sync.summary import RunSummary

__all__ = [
    "DEFAULT_DEMO_DIR",
    "DEMO_JOB",
    "DEMO_SP",
    "demo_command",
    "demo_engine",
    "demo_mapping",
    "fresh_directory",
    "print_outcome",
    "quiet_engine",
    "run_demo",
    "settle",
]

DEFAULT_DEMO_DIR = Path(".connector") / "demo"
_DEMO_MARKER = ".connector-demo"
DEMO_SP = "6a1c3f0e-1d2b-4c5d-8e9f-0a1b2c3d4e5f"
DEMO_JOB = "API2AAD.5f2b9f0c1e2d4a3b8c7d6e5f4a3b2c1d.7b0e4d2a-9c8b-4a1f-8e3d-2c1b0a9f8e7d"


@dataclass(frozen=True, slots=True)
class _DemoDay:
    """One extract of the demo and the rule printed above its run."""

    path: Path
    title: str


def demo_mapping() -> Path:
    import connector

    path = Path(connector.__file__).resolve().parents[1] / "samples" / "mappings" / "default.yaml"
    if not path.is_file():
        raise ConfigError(
            f"the demo needs the sample mapping {path}; run it from a source checkout"
        )
    return path


def _plant_day2_faults(path: Path, hires: int) -> tuple[str, str]:
    """Give one new hire an existing user's UPN and another a manager that does not exist."""
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    email = header.index("WorkEmail")
    manager = header.index("ManagerId")
    if hires < 2:
        raise ConfigError("the demo's churn produced fewer than two hires")
    clash, orphan = body[-1], body[-2]
    clash[email] = body[2][email]
    orphan[manager] = "9999999"
    with path.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows([header, *body])
    return clash[0], orphan[0]


def fresh_directory(directory: Path) -> Path:
    """Recreate the demo directory; one the demo did not create is refused, not emptied."""
    if directory.exists():
        if not (directory / _DEMO_MARKER).exists():
            raise ConfigError(
                f"{directory} exists and is not a demo directory; choose another --dir"
            )
        shutil.rmtree(directory)
    extracts = directory / "extracts"
    extracts.mkdir(parents=True)
    (directory / _DEMO_MARKER).write_text("state of `connector demo`; safe to delete\n")
    return extracts


def _write_config(directory: Path) -> Path:
    """The demo's sources config: one full source, leavers disabled, dated file names."""
    config_path = directory / "sources.yaml"
    config_path.write_text(
        "# Written by `connector demo`.\n"
        "sources:\n"
        "  - name: employees\n"
        "    match: employees_\n"
        f"    mapping: {demo_mapping()}\n"
        f"    service_principal_id: {DEMO_SP}\n"
        f"    job_id: {DEMO_JOB}\n"
        "    mode: full\n"
        "    leavers: disable\n"
        "    extract_timestamp: {pattern: '_(?P<ts>\\d{8})\\.csv$', format: '%Y%m%d'}\n",
        encoding="utf-8",
    )
    return config_path


def _write_extracts(extracts: Path, rows: int) -> list[_DemoDay]:
    """Day 1 (first load), day 2 (churn and two faults), day 3 (40 % of day 2's rows)."""
    from connector.sample import churn_extract, generate_extract

    day1 = extracts / "employees_20260105.csv"
    day2 = extracts / "employees_20260106.csv"
    day3 = extracts / "employees_20260107.csv"
    generate_extract(day1, rows, seed=42)
    churn = churn_extract(day1, day2, churn=0.06, seed=7)
    clash, orphan = _plant_day2_faults(day2, churn["hires"])
    with day2.open(encoding="utf-8") as fh:
        lines = fh.readlines()
    keep = 1 + (len(lines) - 1) * 2 // 5
    day3.write_text("".join(lines[:keep]), encoding="utf-8")  # a truncated extract
    churned = plan_text(
        {
            "joiners": churn["hires"],
            "movers": churn["movers"] + churn["leavers_inactive"],
            "deactivations": churn["leavers_inactive"],
            "leavers": churn["leavers_removed"],
        }
    )
    return [
        _DemoDay(day1, f"day 1: first load, {rows} joiners"),
        _DemoDay(
            day2,
            f"day 2: churn ({churned}), plus a duplicate UPN on {clash}"
            f" and an unknown manager on {orphan}",
        ),
        _DemoDay(day3, "day 3: a truncated extract (40 % of the rows)"),
    ]


def settle(emu: RunningEmulator, engine: Engine, log_delay: float) -> None:
    """Wait for the emulator to process and its logs to show, then reconcile."""
    emu.wait_idle()
    deadline = time.monotonic() + 20 * max(log_delay, 0.5)
    time.sleep(log_delay + 0.2)
    while True:
        done = asyncio.run(engine.reconcile_open_runs())
        if all(s.state == "done" for s in done) or time.monotonic() > deadline:
            return
        time.sleep(0.3)


def print_outcome(
    out: Console, final: Sequence[RunSummary], directory: Path, config_path: Path, flags: str
) -> None:
    """The runs table, where each report is, and how to inspect the held run."""
    out.rule("summary")
    out.print(runs_table(final))
    out.print("reports:")
    for s in final:
        out.print(f"  {s.run_id} ({s.state}): {s.reports.get('report.html')}", soft_wrap=True)
    out.print(f"state directory: {(directory / 'state').resolve()}")
    out.print(f"sources config:  {config_path.resolve()}")
    held = [s for s in final if s.state == "held"]
    if held:
        out.print(
            f"inspect the held run: connector runs show {held[0].run_id} {flags}",
            soft_wrap=True,
        )


@contextlib.contextmanager
def demo_engine(
    config_path: Path, directory: Path, log_delay: float, flags: str, out: Console
) -> Iterator[tuple[RunningEmulator, Engine]]:
    """The in-process emulator and an engine on the demo's state directory."""
    from connector.emulator.config import EmulatorConfig, JobConfig
    from connector.emulator.server import run_emulator

    location = StateLocation(directory=directory / "state")
    emu_config = EmulatorConfig(
        jobs=[JobConfig(service_principal_id=DEMO_SP, job_id=DEMO_JOB)],
        log_delay_seconds=log_delay,
    )
    with run_emulator(emu_config) as emu:
        graph = GraphOptions(token=emu.token, endpoint=emu.endpoint_url, allow_loopback=True)
        engine = command_engine(config_path, location, graph, create=True, flags=flags)
        out.print(f"emulator listening on {emu.base_url} (loopback only)")
        yield emu, engine


def run_demo(
    directory: Path,
    *,
    rows: int = 300,
    log_delay: float = 1.0,
    console: Console | None = None,
    open_report: bool = False,
) -> list[RunSummary]:
    """Three extracts against the in-process emulator; returns the run summaries.

    The demo prints everything it needs, so engine warnings (the held run) are kept off
    stderr while it runs; the logger's level is restored afterwards (the demo may run
    inside a longer-lived process).
    """
    with quiet_engine():
        return _run_demo(
            directory, rows=rows, log_delay=log_delay, console=console, open_report=open_report
        )


@contextlib.contextmanager
def quiet_engine() -> Iterator[None]:
    """Keep engine warnings (the held run) off stderr while a demo prints everything it
    needs; the level is restored afterwards (a demo may run in a longer-lived process)."""
    engine_log = logging.getLogger("connector")
    previous = engine_log.level
    engine_log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        engine_log.setLevel(previous)


def _run_demo(
    directory: Path,
    *,
    rows: int,
    log_delay: float,
    console: Console | None,
    open_report: bool,
) -> list[RunSummary]:
    out = console or new_console()
    started = time.monotonic()
    directory = directory.resolve()
    extracts = fresh_directory(directory)
    config_path = _write_config(directory)
    days = _write_extracts(extracts, rows)
    flags = command_flags(config_path, StateLocation(directory=directory / "state"))
    with demo_engine(config_path, directory, log_delay, flags, out) as (emu, engine):
        for day in days:
            out.rule(day.title)
            summary = asyncio.run(engine.ingest("employees", day.path.name, day.path))
            print_summary(summary, out, flags)
            if summary.state in ("uploaded", "reconciling"):
                settle(emu, engine, log_delay)
        final = engine.list_runs()
    print_outcome(out, final, directory, config_path, flags)
    out.print(f"done in {time.monotonic() - started:.1f} s, no network used beyond loopback")
    if open_report and final:
        open_in_browser(final[-2].reports["report.html"], out)
    return list(final)


def demo_command(
    directory: Annotated[
        Path, typer.Option("--dir", help="Where the demo keeps its files (recreated each time).")
    ] = DEFAULT_DEMO_DIR,
    rows: Annotated[int, typer.Option("--rows", min=50, max=20000)] = 300,
    open_report: Annotated[bool, typer.Option("--open", help="Open day 2's report.")] = False,
    source: Annotated[
        str | None,
        typer.Option(
            "--source",
            help="sql: pull a SQLite staging table instead of dropping files",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Three extracts end to end against the in-process emulator (no network, no Azure).

    ``--source sql``: a SQLite staging table pulled as a ``kind: sql`` source instead."""
    if source not in (None, "sql"):
        raise typer.BadParameter("the demo's only pulled source is 'sql'", param_hint="--source")
    with failing():
        if source == "sql":
            from connector.cli.demo_sql import run_sql_demo

            run_sql_demo(directory, rows=rows)
        else:
            run_demo(directory, rows=rows, open_report=open_report)
