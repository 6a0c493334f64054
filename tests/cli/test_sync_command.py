"""`connector sync`, `reconcile` and the runs commands against the emulator: dry run, real
sync, reconcile, duplicates, resume, a missing store or run, the loopback opt-in."""

from __future__ import annotations

import re
from pathlib import Path

from benchmarks.emuworld import JOB, SP
from connector.cli.app import build_app
from connector.emulator.config import EmulatorConfig, JobConfig
from connector.emulator.server import run_emulator
from connector.sample import generate_extract
from tests.cli.helpers import invoke, runner, write_config


def run_id_of(output: str) -> str:
    found = re.search(r"run (employees-\w+)", output)
    assert found is not None, output
    return found.group(1)


def test_sync_dry_run_then_real_sync_and_reconcile_against_the_emulator(tmp_path: Path) -> None:
    config = write_config(tmp_path / "sources.yaml")
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
    config = write_config(tmp_path / "sources.yaml")
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
    assert result.exit_code == 2
    assert "loopback" in result.output
