"""The sync commands' exit codes and --open without a browser."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from connector.emulator.server import RunningEmulator


def test_cli_exits_non_zero_for_waiting_failed_or_blocked_runs() -> None:
    import typer

    from connector.cli.exits import EXIT_FAILED, EXIT_HELD, EXIT_WAITING, exit_for
    from connector.sync.summary import RunSummary

    def summary(state: str, waiting: str | None = None) -> RunSummary:
        return RunSummary("r", "employees", "f.csv", state, waiting=waiting)

    exit_for([summary("uploaded"), summary("discarded")])
    for state, waiting, code in (
        ("held", None, EXIT_HELD),
        ("uploading", "QuotaExhaustedError: spent", EXIT_WAITING),
        ("failed", None, EXIT_FAILED),
        ("blocked", None, EXIT_FAILED),
    ):
        with pytest.raises(typer.Exit) as info:
            exit_for([summary("uploaded"), summary(state, waiting)])
        assert info.value.exit_code == code


def test_open_without_a_browser_says_where_the_report_is(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import webbrowser

    from connector.cli.common import console as _console
    from connector.cli.render import open_in_browser as _open_in_browser

    opened: list[str] = []

    def no_browser(url: str) -> bool:
        opened.append(url)
        return False

    monkeypatch.setattr(webbrowser, "open", no_browser)
    blob = "https://acct.blob.core.windows.net/reports/employees/r/report.html"
    _open_in_browser(blob, _console())
    assert opened == [blob]  # a blob URL is opened as is, not wrapped in a file path
    assert f"no browser available; open {blob}" in capsys.readouterr().out
    _open_in_browser("/tmp/x/report.html", _console())
    assert opened[-1] == "file:///tmp/x/report.html"


@contextmanager
def synced(tmp_path: Path) -> Iterator[tuple[RunningEmulator, list[str], list[str]]]:
    """An emulator whose job took a 5-person extract through ``connector sync``: yields it,
    the config/state options and the network options."""
    from benchmarks.emuworld import JOB, SP
    from connector.emulator.config import EmulatorConfig, JobConfig
    from connector.emulator.server import run_emulator
    from connector.sample import generate_extract
    from tests.cli.helpers import invoke, write_config

    config = write_config(tmp_path / "sources.yaml")
    extract = tmp_path / "hr.csv"
    generate_extract(extract, 5, seed=1)
    common = ["--config", str(config), "--state", str(tmp_path / "state")]
    emu_cfg = EmulatorConfig(jobs=[JobConfig(service_principal_id=SP, job_id=JOB)])
    with run_emulator(emu_cfg) as emu:
        net = ["--endpoint", emu.endpoint_url, "--token", emu.token, "--allow-loopback"]
        invoke("sync", str(extract), "--source", "employees", *common, *net)
        emu.wait_idle()
        yield emu, common, net


def test_reconcile_and_sync_exit_non_zero_and_name_a_source_busy_with_its_lock(
    tmp_path: Path,
) -> None:
    from connector.cli.exits import EXIT_SKIPPED
    from connector.sample import generate_extract
    from connector.state.local import LocalStateStore
    from tests.cli.helpers import invoke

    with synced(tmp_path) as (_, common, net):
        other = LocalStateStore(tmp_path / "state", heartbeat=False)
        with other.lock("employees", owner="other-run"):  # a live holder: respected
            out = invoke("reconcile", *common, *net, code=EXIT_SKIPPED)
            generate_extract(tmp_path / "hr2.csv", 6, seed=2)
            busy = invoke(
                "sync", str(tmp_path / "hr2.csv"), "-s", "employees", *common, *net, code=1
            )
            assert "source 'employees' is locked by other-run" in busy
        assert "source employees skipped this pass" in out
        assert "other-run" in out
        assert "no open runs in the sources checked" in out
        assert "done" in invoke("reconcile", *common, *net)  # lock free: handled, exit 0


def test_reconcile_exit_puts_failures_before_skipped_sources_before_waiting_runs() -> None:
    import typer

    from connector.cli.exits import EXIT_FAILED, EXIT_SKIPPED, EXIT_WAITING
    from connector.cli.sync import _reconcile_exit
    from connector.sync.summary import RunSummary

    waiting = RunSummary("r", "employees", "f.csv", "uploading", waiting="quota")
    failed = RunSummary("r", "employees", "f.csv", "failed")
    busy = {"contractors": "locked"}
    for runs, skipped, flag, code in (
        ([waiting], busy, False, EXIT_SKIPPED),
        ([failed], busy, False, EXIT_FAILED),
        ([], busy, True, EXIT_FAILED),
        ([waiting], {}, False, EXIT_WAITING),
        ([], busy, False, EXIT_SKIPPED),
    ):
        with pytest.raises(typer.Exit) as info:
            _reconcile_exit(runs, skipped, failed=flag)
        assert info.value.exit_code == code
    _reconcile_exit([], {}, failed=False)  # all handled: exit 0


def test_reconcile_help_lists_its_exit_codes() -> None:
    from tests.cli.helpers import invoke

    text = " ".join(invoke("reconcile", "--help").replace("│", " ").split())  # rich panel
    assert "3 when a source was skipped because another run holds its lock" in text


def test_reconcile_names_a_job_that_was_never_started_and_exits_non_zero(tmp_path: Path) -> None:
    """``NotRun`` with a schedule that is not ``Active``: the job was never started, so what
    was sent only queues; reconcile reads the logs, says so on the run, and exits 1."""
    from connector.cli.exits import EXIT_FAILED
    from tests.cli.helpers import invoke

    with synced(tmp_path) as (emu, common, net):
        emu.set_job_state("NotRun")
        out = invoke("reconcile", *common, *net, code=EXIT_FAILED)
    assert (
        "source employees: job not ready (NotRun): the provisioning job has not been started"
        in " ".join(out.split())
    )
