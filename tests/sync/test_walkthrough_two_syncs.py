"""The README walkthrough through the CLI: two syncs within a minute, then reconcile."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from benchmarks.emuworld import JOB, MAPPING, SP
from connector.cli.app import build_app
from connector.emulator.config import EmulatorConfig, JobConfig
from connector.emulator.server import run_emulator
from connector.sample import churn_extract, generate_extract

runner = CliRunner()


def test_two_syncs_within_a_minute_then_reconcile_end_every_run_done(tmp_path: Path) -> None:
    config = tmp_path / "sources.yaml"
    config.write_text(
        "sources:\n  - name: employees\n    match: employees/\n"
        f"    mapping: {MAPPING}\n    service_principal_id: {SP}\n    job_id: {JOB}\n",
        encoding="utf-8",
    )
    day1, day2 = tmp_path / "day1.csv", tmp_path / "day2.csv"
    generate_extract(day1, 200, seed=1)
    churn_extract(day1, day2, churn=0.05, seed=2)
    state = tmp_path / "st"
    emu_cfg = EmulatorConfig(jobs=[JobConfig(service_principal_id=SP, job_id=JOB)])
    with run_emulator(emu_cfg) as emu:
        net = ["--endpoint", emu.endpoint_url, "--token", emu.token, "--allow-loopback"]
        common = ["-c", str(config), "--state", str(state)]
        for day in (day1, day2):
            out = runner.invoke(build_app(), ["sync", str(day), "-s", "employees", *common, *net])
            assert out.exit_code == 0, out.output
        emu.wait_idle()
        rec = runner.invoke(build_app(), ["reconcile", *common, *net])
        assert rec.exit_code == 0, rec.output
        listed = runner.invoke(build_app(), ["runs", "list", *common])
        assert listed.exit_code == 0, listed.output
    rows = [line for line in listed.output.splitlines() if "employees-" in line]
    assert len(rows) == 2, listed.output
    for row in rows:
        assert re.search(r"\bdone\b", row), listed.output
        assert "reconciling" not in row
    assert "unconfirmed" not in rec.output, rec.output
    assert "pending" not in rec.output, rec.output
