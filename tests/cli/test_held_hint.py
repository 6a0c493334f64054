"""A run held by the CLI prints release and drop commands that work as pasted: they name
the config, state and target options the sync used, read the token from the environment
and never echo it."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import orjson
import pytest

from benchmarks.emuworld import JOB, SP
from connector.cli.exits import EXIT_HELD
from connector.emulator.config import EmulatorConfig, JobConfig
from connector.emulator.server import run_emulator
from connector.sample import generate_extract
from tests.cli.helpers import invoke, write_config


def _held_command(output: str, verb: str) -> str:
    found = re.search(rf"`(connector runs {verb} [^`]+)`", output)
    assert found is not None, output
    return found.group(1)


def test_a_cli_held_run_prints_pasteable_commands_that_approve_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path / "sources.yaml")
    state = tmp_path / "state"
    day1, day2 = tmp_path / "hr_1.csv", tmp_path / "hr_2.csv"
    generate_extract(day1, 100, seed=8)
    day2.write_text("".join(day1.read_text().splitlines(keepends=True)[:41]))
    common = ["--config", str(config), "--state", str(state)]
    emu_cfg = EmulatorConfig(jobs=[JobConfig(service_principal_id=SP, job_id=JOB)])
    with run_emulator(emu_cfg) as emu:
        net = ["--endpoint", emu.endpoint_url, "--token", emu.token, "--allow-loopback"]
        invoke("sync", str(day1), "--source", "employees", *common, *net)
        out = invoke("sync", str(day2), "--source", "employees", *common, *net, code=EXIT_HELD)

        approve, discard = _held_command(out, "approve"), _held_command(out, "discard")
        assert emu.token not in out
        for command in (approve, discard):
            words = shlex.split(command)
            assert words[words.index("--config") + 1] == str(config)
            assert words[words.index("--state") + 1] == str(state)
            assert words[words.index("--endpoint") + 1] == emu.endpoint_url
            assert "--allow-loopback" in words
            assert words[words.index("--token") + 1] == "$CONNECTOR_TOKEN"
        run_id = shlex.split(approve)[3]
        reports = list(state.rglob(f"{run_id}/report.json"))
        doc = orjson.loads(reports[0].read_bytes())
        assert doc["approvalHint"] == {"kind": "cli", "approve": approve, "discard": discard}
        assert emu.token not in reports[0].read_text()

        # pasted into a shell that has CONNECTOR_TOKEN set, the approve command releases it
        monkeypatch.setenv("CONNECTOR_TOKEN", emu.token)
        pasted = [os.path.expandvars(word) for word in shlex.split(approve)[1:]]
        released = invoke(*pasted)
        assert "approved" in released or "uploaded" in released
        shown = orjson.loads(invoke("runs", "show", run_id, *common, "--json"))
        assert shown["run"]["state"] == "uploaded"
