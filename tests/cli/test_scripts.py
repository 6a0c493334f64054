"""The CLI for scripts: --version, the exit code table, --json documents, options from the
environment (a bad extract path as one line with exit 2: test_paths.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from benchmarks.emuworld import JOB, SP
from connector.cli.app import build_app
from connector.cli.exits import EXIT_CODES
from connector.emulator.config import EmulatorConfig, JobConfig
from connector.emulator.server import run_emulator
from connector.sample import generate_extract
from tests.cli.helpers import write_config

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, code: int = 0, env: dict[str, str] | None = None) -> tuple[str, str]:
    """``connector ARGS`` → (stdout, stderr); the exit code must be ``code``."""
    result = CliRunner().invoke(build_app(), list(args), env=env, catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.stdout, result.stderr


def doc(*args: str, code: int = 0, kind: str = "run") -> dict[str, Any]:
    """``connector ARGS --json``: stdout is one JSON document of ``kind``."""
    out, _ = run(*args, "--json", code=code)
    parsed: dict[str, Any] = json.loads(out)
    assert parsed["kind"] == kind, parsed
    assert parsed["version"] == 1
    assert parsed["exit_code"] == code
    return parsed


def test_the_exit_codes_are_pinned_and_documented() -> None:
    assert EXIT_CODES == {
        0: "ok",
        1: "failed or blocked",
        2: "usage or configuration error",
        3: "source skipped (another run holds its lock)",
        4: "held (approve or discard)",
        5: "waiting (run reconcile later)",
    }
    for page in (ROOT / "README.md", ROOT / "docs" / "cli.md"):
        text = page.read_text(encoding="utf-8")
        for code in EXIT_CODES:
            assert re.search(rf"^\| {code} \|", text, re.MULTILINE), (page, code)
    out, _ = run("--help")
    assert "4 held (approve or discard)" in " ".join(out.split())


def test_version_prints_the_installed_version() -> None:
    out, _ = run("--version")
    assert re.fullmatch(r"connector \d+\.\d+\.\d+\S*\n", out), out


def test_a_usage_error_keeps_clicks_code_2() -> None:
    run("runs", "list", "--no-such-option", code=2)


def test_an_unknown_source_is_a_configuration_error_exit_2(tmp_path: Path) -> None:
    config = write_config(tmp_path / "sources.yaml")
    extract = tmp_path / "hr.csv"
    generate_extract(extract, 5, seed=1)
    state = ["--config", str(config), "--state", str(tmp_path / "s")]
    failed = doc(
        "sync", str(extract), "--source", "employes", *state, "--dry-run", code=2, kind="error"
    )
    assert "no source named 'employes'" in failed["error"]


def test_run_commands_print_one_json_document_and_exit_by_the_table(tmp_path: Path) -> None:
    config = write_config(tmp_path / "sources.yaml")
    day1, day2 = tmp_path / "hr_1.csv", tmp_path / "hr_2.csv"
    generate_extract(day1, 60, seed=3)
    generate_extract(day2, 20, seed=3)  # truncated: held
    state = ["--config", str(config), "--state", str(tmp_path / "state")]
    emu_cfg = EmulatorConfig(jobs=[JobConfig(service_principal_id=SP, job_id=JOB)])
    with run_emulator(emu_cfg) as emu:
        net = ["--endpoint", emu.endpoint_url, "--token", emu.token, "--allow-loopback"]
        first = doc("sync", str(day1), "--source", "employees", *state, *net)["run"]
        assert first["state"] == "uploaded"
        held = doc("sync", str(day2), "--source", "employees", *state, *net, code=4)["run"]
        assert held["state"] == "held"
        assert held["held_reason"]
        emu.wait_idle()
        rec = doc("reconcile", *state, *net, kind="reconcile")
        assert [r["run_id"] for r in rec["reconciled"]] == [first["run_id"]]
        assert rec["skipped"] == {}
        assert rec["errors"] == {}
        listed = doc("runs", "list", *state, kind="runs")["runs"]
        assert [r["run_id"] for r in listed] == [first["run_id"], held["run_id"]]
        shown = doc("runs", "show", held["run_id"], *state)
        assert shown["run"]["run_id"] == held["run_id"]
        assert shown["timeline"][0]["state"]
        assert shown["held"] is not None
        report = doc("report", first["run_id"], *state, kind="report")
        assert Path(report["paths"]["report.html"]).is_file()
        resumed = doc("runs", "resume", first["run_id"], *state, *net)
        assert resumed["run"] is None
        assert resumed["state"] in {"reconciling", "done"}
        dropped = doc("runs", "discard", held["run_id"], *state)["run"]
        assert dropped["state"] == "discarded"
        missing = doc("runs", "show", "employees-nope", *state, code=1, kind="error")
        assert "employees-nope" in missing["error"]
        assert emu.token not in json.dumps([first, held, rec, listed, shown, report])


def test_endpoint_token_state_and_config_come_from_the_environment(tmp_path: Path) -> None:
    config = write_config(tmp_path / "sources.yaml")
    extract = tmp_path / "hr.csv"
    generate_extract(extract, 10, seed=4)
    state = tmp_path / "state"
    emu_cfg = EmulatorConfig(jobs=[JobConfig(service_principal_id=SP, job_id=JOB)])
    with run_emulator(emu_cfg) as emu:
        env = {
            "CONNECTOR_CONFIG": str(config),
            "CONNECTOR_STATE": str(state),
            "CONNECTOR_ENDPOINT": emu.endpoint_url,
            "CONNECTOR_TOKEN": emu.token,
            "CONNECTOR_ALLOW_LOOPBACK": "1",
        }
        out, err = run("sync", str(extract), "--source", "employees", env=env)
        assert "uploaded" in out
        assert emu.token not in out + err  # a token from the environment is never echoed
        emu.wait_idle()
        assert len(emu.users()) == 10
        listed, _ = run("runs", "list", env=env)
        assert "employees" in listed
    assert state.is_dir()


def test_graph_and_file_commands_print_documents_of_their_kind(tmp_path: Path) -> None:
    from tests.core.helpers import DEFAULT_MAPPING, HR_EXTRACT

    checked = doc("validate", "--mapping", str(DEFAULT_MAPPING), str(HR_EXTRACT), kind="validation")
    assert checked["errors"] == 0
    previewed = doc(
        "preview",
        str(HR_EXTRACT),
        "--mapping",
        str(DEFAULT_MAPPING),
        "--out",
        str(tmp_path / "o"),
        kind="preview",
    )
    assert previewed["warnings"] == []
    with run_emulator(EmulatorConfig()) as emu:
        net = ["--endpoint", emu.endpoint_url, "--token", emu.token, "--allow-loopback"]
        schema = doc(
            "schema", "add", *net, "--mapping", str(DEFAULT_MAPPING), "--dry-run", kind="schema"
        )
        assert schema["dry_run"] is True
        assert doc("status", *net, kind="status")["job"]["status"]["code"]
        assert doc("logs", *net, kind="logs")["entries"] == []
        refused = doc(
            "status", "--endpoint", emu.endpoint_url, "--token", emu.token, code=2, kind="error"
        )
        assert "--allow-loopback" in refused["error"]
        assert emu.token not in refused["error"]
