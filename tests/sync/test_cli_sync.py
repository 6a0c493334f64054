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
    assert day2["outcomes"]["skipped"] == 1
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
    assert "2 bulk requests would be sent" in dry
    assert not (state / "documents").exists() or not list((state / "documents").rglob("*"))
    emu_cfg = EmulatorConfig(jobs=[JobConfig(service_principal_id=SP, job_id=JOB)])
    with run_emulator(emu_cfg) as emu:
        net = ["--endpoint", emu.endpoint_url, "--token", emu.token, "--allow-loopback"]
        out = invoke("sync", str(extract), "--source", "employees", *common, *net)
        assert "uploaded" in out
        assert "2/2 acknowledged" in out
        emu.wait_idle()
        rec = invoke("reconcile", *common, *net)
        assert "done" in rec
        assert len(emu.users()) == 75
        dup = invoke("sync", str(extract), "--source", "employees", *common, *net)
        assert "already received" in dup


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
