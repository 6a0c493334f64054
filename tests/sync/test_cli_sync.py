"""The sync CLI: demo, runs commands, report, and sync/reconcile against the emulator."""

from __future__ import annotations

import json
import re
from pathlib import Path

from typer.testing import CliRunner

from connector.cli.app import build_app
from connector.emulator.config import EmulatorConfig, JobConfig
from connector.emulator.server import run_emulator
from connector.sample import generate_extract
from tests.sync.emuworld import JOB, SP

runner = CliRunner()


def run_id_of(output: str) -> str:
    found = re.search(r"run (employees-\w+)", output)
    assert found is not None, output
    return found.group(1)


def invoke(*args: str) -> str:
    result = runner.invoke(build_app(), list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_demo_runs_three_extracts_and_leaves_inspectable_state(tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    out = invoke("demo", "--dir", str(demo), "--rows", "120")
    assert "day 3: a truncated extract" in out
    assert f"state directory: {demo.resolve() / 'state'}" in out
    reports = re.findall(r"\((done|held)\): (\S+report\.html)", out)
    assert [state for state, _ in reports] == ["done", "done", "held"]
    for _, path in reports:
        assert Path(path).read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    config, state = demo / "sources.yaml", demo / "state"
    day2 = json.loads(Path(reports[1][1]).with_name("report.json").read_text())
    assert day2["outcomes"]["failed"] == 1
    # the user with an unknown manager was created: shown as such, with the warning
    assert day2["outcomes"]["created (manager unresolved)"] == 1
    assert "skipped" not in day2["outcomes"]
    held_id = Path(reports[2][1]).parent.name

    listing = invoke("runs", "list", "--config", str(config), "--state", str(state))
    assert held_id in listing
    shown = invoke("runs", "show", held_id, "--config", str(config), "--state", str(state))
    assert "held" in shown
    assert "leavers would be disabled" in shown
    gone = invoke("runs", "discard", held_id, "--config", str(config), "--state", str(state))
    assert "discarded" in gone
    rep = invoke("report", held_id, "--config", str(config), "--state", str(state))
    assert "report.html" in rep
    # running the demo again starts from scratch
    again = invoke("demo", "--dir", str(demo), "--rows", "120")
    assert again.count("(done)") == 2


def test_demo_refuses_a_directory_it_did_not_create(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("x")
    result = runner.invoke(build_app(), ["demo", "--dir", str(tmp_path / "mine")])
    assert result.exit_code == 1
    assert "not a demo directory" in result.output
    assert (tmp_path / "mine" / "keep.txt").exists()


def test_sync_dry_run_then_real_sync_and_reconcile_against_the_emulator(tmp_path: Path) -> None:
    mapping = Path(__file__).resolve().parents[2] / "samples" / "mappings" / "default.yaml"
    config = tmp_path / "sources.yaml"
    config.write_text(
        "sources:\n  - name: employees\n    match: employees/\n"
        f"    mapping: {mapping}\n    service_principal_id: {SP}\n    job_id: {JOB}\n",
        encoding="utf-8",
    )
    extract = tmp_path / "hr.csv"
    generate_extract(extract, 75, seed=1)
    state = tmp_path / "state"
    common = ["--config", str(config), "--state", str(state)]
    dry = invoke("sync", str(extract), "--source", "employees", *common, "--dry-run")
    assert "75 joiners" in dry
    assert "a real sync would send 2 bulk requests" in dry
    assert "acknowledged" not in dry
    assert "runs approve" not in dry
    assert f"new empty state at {state}" in dry
    assert not state.exists(), "a dry run creates no state"
    # operator commands never create a store: a mistyped --state is an error naming it
    typo = tmp_path / "stat"
    listed = runner.invoke(
        build_app(), ["runs", "list", "--config", str(config), "--state", str(typo)]
    )
    assert listed.exit_code == 1
    assert f"no state store at {typo}" in listed.output
    assert not typo.exists()
    emu_cfg = EmulatorConfig(jobs=[JobConfig(service_principal_id=SP, job_id=JOB)])
    with run_emulator(emu_cfg) as emu:
        net = ["--endpoint", emu.endpoint_url, "--token", emu.token, "--allow-loopback"]
        out = invoke("sync", str(extract), "--source", "employees", *common, *net)
        assert "uploaded" in out
        assert "batches: 2 of 2 acknowledged" in out
        emu.wait_idle()
        rec = invoke("reconcile", *common, *net)
        assert "done" in rec
        assert "step 2 of 2, provisioning logs read:" in rec
        assert rec.count(run_id_of(out)) == 1  # listed once, under its step
        assert len(emu.users()) == 75
        dup = invoke("sync", str(extract), "--source", "employees", *common, *net)
        assert "already received" in dup
        again = invoke("sync", str(extract), "--source", "employees", *common, "--dry-run")
        assert "a real sync would do nothing" in again
        run_id = re.search(r"run (employees-\w+)", out)
        assert run_id is not None
        done = invoke("runs", "resume", run_id.group(1), *common, *net)
        assert f"nothing to resume: run {run_id.group(1)} is done" in done
        missing = runner.invoke(build_app(), ["runs", "show", "employees-nope", *common])
        assert missing.exit_code == 1
        assert f"in the state store {state}" in missing.output


def test_sync_refuses_a_loopback_endpoint_without_the_flag(tmp_path: Path) -> None:
    mapping = Path(__file__).resolve().parents[2] / "samples" / "mappings" / "default.yaml"
    config = tmp_path / "sources.yaml"
    config.write_text(
        "sources:\n  - name: employees\n    match: employees/\n"
        f"    mapping: {mapping}\n    service_principal_id: {SP}\n    job_id: {JOB}\n",
        encoding="utf-8",
    )
    extract = tmp_path / "hr.csv"
    generate_extract(extract, 5, seed=1)
    result = runner.invoke(
        build_app(),
        [
            "sync",
            str(extract),
            "--source",
            "employees",
            "--config",
            str(config),
            "--state",
            str(tmp_path / "s"),
            "--endpoint",
            f"http://127.0.0.1:9/v1.0/servicePrincipals/{SP}/synchronization/jobs/{JOB}/bulkUpload",
            "--token",
            "t",
        ],
    )
    assert result.exit_code == 1
    assert "loopback" in result.output
