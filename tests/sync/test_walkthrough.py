"""Findings from a first walkthrough of the sync CLI: hints, vocabulary, retries, logs."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from benchmarks.emuworld import JOB, MAPPING, SP, emu_world
from connector.cli import render
from connector.cli.app import build_app
from connector.cli.options import StateLocation, command_flags
from connector.clock import FakeClock
from connector.emulator.config import EmulatorConfig, JobConfig
from connector.emulator.server import run_emulator
from connector.errors import AuthenticationError
from connector.sample import Faults, generate_extract
from connector.state.local import LocalStateStore
from connector.sync.summary import RunSummary
from connector.sync.waiting import WaitingReason

runner = CliRunner()


def local_store(tmp: Path) -> Callable[[FakeClock], Any]:
    return lambda clock: LocalStateStore(tmp / "state", clock=clock, heartbeat=False)


def printed(summary: RunSummary, flags: str = "") -> str:
    console = Console(width=400, highlight=False, record=True)
    with console.capture() as cap:
        render.print_summary(summary, console, flags)
    return cap.get()


def test_retry_failed_checks_a_token_before_creating_a_run(tmp_path: Path) -> None:
    day1 = tmp_path / "hr_20260105.csv"
    generate_extract(day1, 40, seed=5, faults=Faults(duplicate_upn=True))
    with emu_world(local_store(tmp_path)) as w:
        run = w.sync(day1)
        [rec] = w.reconcile()
        assert rec.outcomes.get("failed") == 1
        inner = w.engine.targets

        def no_token(src: Any) -> Any:
            target = inner(src)

            async def preflight() -> None:
                raise AuthenticationError("no credential available")

            target.preflight = preflight
            return target

        w.engine.targets = no_token
        for _ in range(2):
            with pytest.raises(AuthenticationError):
                asyncio.run(w.engine.retry_failed(run.run_id))
        assert [s.run_id for s in w.engine.list_runs()] == [run.run_id]
        w.engine.targets = inner
        retry = asyncio.run(w.engine.retry_failed(run.run_id))
        assert retry.run_id == f"{run.run_id}-retry1"


def test_plan_lines_count_deactivations_among_movers_with_plurals() -> None:
    text = render.plan_text(
        {"joiners": 6, "movers": 13, "deactivations": 6, "leavers": 2, "retries": 1}
    )
    assert text == "6 joiners, 13 movers (6 deactivations), 2 leavers, 1 retry"
    assert render.plan_text({"joiners": 1, "movers": 1, "deactivations": 1}) == (
        "1 joiner, 1 mover (1 deactivation)"
    )


def test_summary_hints_carry_the_command_flags_and_dry_runs_hold_nothing() -> None:
    flags = "--config /x/sources.yaml --state /x/state"
    held = RunSummary("employees-abc", "employees", "f.csv", "held", held_reason="too many")
    out = printed(held, flags)
    assert f"`connector runs approve employees-abc {flags}`" in out
    assert f"`connector runs discard employees-abc {flags}`" in out
    dry = RunSummary(
        "employees-abc",
        "employees",
        "f.csv",
        "dry-run",
        planned={"joiners": 1},
        dry_run=True,
        held_reason="too many",
        batches_total=1,
    )
    out = printed(dry, flags)
    assert "runs approve" not in out
    assert "a real sync would hold it: too many" in out
    assert "acknowledged" not in out
    waiting = RunSummary(
        "employees-abc",
        "employees",
        "f.csv",
        "uploading",
        waiting="QuotaExhaustedError: budget spent",
        waiting_reason=WaitingReason.QUOTA,
    )
    out = printed(waiting, flags)
    assert "waiting (quota): QuotaExhaustedError" in out
    assert f"`connector runs resume employees-abc {flags}`" in out
    failed = RunSummary("employees-abc", "employees", "f.csv", "failed", failed_reason="a\nb")
    out = printed(failed)
    assert "plan:    not planned" in out
    assert "reason: a\n" in out


def test_runs_table_counts_a_manager_warning_as_created() -> None:
    s = RunSummary(
        "employees-abc",
        "employees",
        "f.csv",
        "done",
        outcomes={"created": 5, "skipped": 1},
        outcome_labels={"created": 5, "created (manager unresolved)": 1},
    )
    console = Console(width=400, highlight=False)
    with console.capture() as cap:
        console.print(render.runs_table([s]))
    row = next(line for line in cap.get().splitlines() if "employees-abc" in line)
    cells = row.split()
    # created, updated, disabled, skipped, failed, unconfirmed, warn.
    assert cells[-7:] == ["6", "0", "0", "0", "0", "0", "1"]
    assert "1 created (manager unresolved)" in printed(s)


def test_engine_log_lines_only_with_verbose(capsys: pytest.CaptureFixture[str]) -> None:
    log = logging.getLogger("connector.sync.engine")
    with render.engine_logs(False):
        log.warning("run x: held")
    assert "held" not in capsys.readouterr().err
    with render.engine_logs(True):
        log.warning("run x: held")
    assert capsys.readouterr().err.count("run x: held") == 1


def test_sync_of_a_waiting_runs_file_continues_it(tmp_path: Path) -> None:
    config = tmp_path / "sources.yaml"

    def write_config(budget: int) -> None:
        config.write_text(
            f"daily_call_budget: {budget}\n"
            "sources:\n  - name: employees\n    match: employees/\n"
            f"    mapping: {MAPPING}\n    service_principal_id: {SP}\n    job_id: {JOB}\n",
            encoding="utf-8",
        )

    write_config(1)
    extract = tmp_path / "hr.csv"
    generate_extract(extract, 75, seed=1)
    state = tmp_path / "state"
    emu_cfg = EmulatorConfig(jobs=[JobConfig(service_principal_id=SP, job_id=JOB)])
    with run_emulator(emu_cfg) as emu:
        net = ["--endpoint", emu.endpoint_url, "--token", emu.token, "--allow-loopback"]
        args = ["sync", str(extract), "--source", "employees", "--config", str(config)]
        args += ["--state", str(state), *net]
        first = runner.invoke(build_app(), args)
        assert first.exit_code == 5, first.output  # waiting
        assert "waiting (quota)" in first.output
        run_id = re.search(r"run (employees-\w+)", first.output)
        assert run_id is not None
        hint = f"connector runs resume {run_id.group(1)} --config {config} --state {state}"
        assert hint in first.output
        write_config(10)
        again = runner.invoke(build_app(), args)
        assert again.exit_code == 0, again.output
        assert "left waiting: continuing it" in again.output
        assert "2 of 2 acknowledged" in again.output
        emu.wait_idle()
        assert len(emu.users()) == 75


def test_report_hints_carry_the_flags_that_name_config_and_state(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from connector.report import ReportInput
    from connector.report_held import PLACEHOLDER_FLAGS
    from connector.report_html import build_report_html

    blob = StateLocation(account_url="https://a.blob.core.windows.net")
    flags = command_flags(tmp_path / "s.yaml", blob)
    assert flags == f"--config {tmp_path / 's.yaml'} --state-account-url {blob.account_url}"

    def page(command_flags: str) -> str:
        return build_report_html(
            ReportInput(
                run_id="employees-abc",
                source="employees",
                file_name="f.csv",
                status="held",
                generated_at=datetime(2026, 1, 5, tzinfo=UTC),
                planned={},
                outcome_counts={},
                records=[],
                held_reason="too many",
                command_flags=command_flags,
            )
        )

    assert "connector runs approve employees-abc --config c.yaml --state st" in page(
        "--config c.yaml --state st"
    )
    assert f"connector runs approve employees-abc {PLACEHOLDER_FLAGS}" in page("")
