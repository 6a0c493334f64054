"""`connector demo`: three extracts end to end, inspectable state, a directory it owns."""

from __future__ import annotations

import json
import re
from pathlib import Path

from connector.cli.app import build_app
from tests.cli.helpers import invoke, runner


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
    assert result.exit_code == 2  # a configuration problem: exit 2
    assert "not a demo directory" in result.output
    assert (tmp_path / "mine" / "keep.txt").exists()
