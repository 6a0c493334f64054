"""`connector sync --dry-run` against today's call budget, as text and as `--json`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from benchmarks.emuworld import JOB, SP
from connector.emulator.config import EmulatorConfig, JobConfig
from connector.emulator.server import run_emulator
from connector.sample import generate_extract
from tests.cli.helpers import invoke, write_config
from tests.cli.test_scripts import doc


def budget_config(path: Path, budget: int) -> Path:
    write_config(path)
    path.write_text(f"daily_call_budget: {budget}\n" + path.read_text(encoding="utf-8"))
    return path


def test_sync_dry_run_json_carries_the_budget_order_and_days(tmp_path: Path) -> None:
    config = budget_config(tmp_path / "sources.yaml", 2)
    extract = tmp_path / "hr.csv"
    generate_extract(extract, 300, seed=2)
    state = tmp_path / "state"
    common = ["sync", str(extract), "--source", "employees", "--config", str(config)]
    run = doc(*common, "--state", str(state), "--dry-run")["run"]
    assert not state.exists()
    forecast = run["forecast"]
    assert forecast["calls_needed"] == run["batches_total"] == 6
    assert (forecast["calls_left_today"], forecast["daily_budget"]) == (2, 2)
    assert forecast["fits"] is False
    assert forecast["days"] == 3
    today = datetime.now(UTC).date()
    assert forecast["done_by"] in {
        d.isoformat() for d in (today.fromordinal(today.toordinal() + k) for k in (2, 3))
    }
    assert forecast["send_order"] == run["send_order"]
    assert forecast["send_order"].startswith("sent in priority order: ")
    assert forecast["order_note"] == (
        f"{forecast['send_order']} (6 calls needed, 2 left in today's budget)"
    )
    assert sum(forecast["order_counts"].values()) == 300
    groups = forecast["groups"]
    order = [g for g in ("leavers", "joiners", "movers") if forecast["order_counts"][g]]
    assert [g["group"] for g in groups] == order
    assert groups[0]["first_call"] == 1
    assert groups[-1]["last_call"] == 6
    assert set(groups[0]) == {"group", "records", "first_call", "last_call", "day"}

    text = invoke(*common, "--state", str(state), "--dry-run")
    assert "budget:  6 calls needed, 2 left today (daily budget 2): does not fit" in text
    assert f"order:   {forecast['send_order']}" in text
    assert f"days:    ~3 days, done ~{forecast['done_by']}" in text
    assert "would send 6 bulk requests in priority order over ~3 days, done ~" in text


def test_sync_dry_run_json_within_the_budget_says_it_fits(tmp_path: Path) -> None:
    config = budget_config(tmp_path / "sources.yaml", 2000)
    extract = tmp_path / "hr.csv"
    generate_extract(extract, 75, seed=1)
    state = ["--config", str(config), "--state", str(tmp_path / "state")]
    run = doc("sync", str(extract), "--source", "employees", *state, "--dry-run")["run"]
    forecast = run["forecast"]
    assert forecast["fits"] is True
    assert (forecast["calls_needed"], forecast["calls_left_today"]) == (2, 2000)
    assert forecast["send_order"] is None
    assert forecast["groups"] == []
    assert forecast["days"] == 1


def test_runs_show_says_a_held_run_would_not_fit_todays_budget(tmp_path: Path) -> None:
    config = budget_config(tmp_path / "sources.yaml", 2)
    day1, day2 = tmp_path / "hr_1.csv", tmp_path / "hr_2.csv"
    generate_extract(day1, 60, seed=3)  # 2 calls: today's budget spent
    generate_extract(day2, 20, seed=3)  # truncated: held
    state = ["--config", str(config), "--state", str(tmp_path / "state")]
    emu_cfg = EmulatorConfig(jobs=[JobConfig(service_principal_id=SP, job_id=JOB)])
    with run_emulator(emu_cfg) as emu:
        net = ["--endpoint", emu.endpoint_url, "--token", emu.token, "--allow-loopback"]
        doc("sync", str(day1), "--source", "employees", *state, *net)
        held = doc("sync", str(day2), "--source", "employees", *state, *net, code=4)["run"]
    shown = doc("runs", "show", held["run_id"], *state)["run"]
    forecast = shown["forecast"]
    assert forecast["fits"] is False
    assert (forecast["calls_needed"], forecast["calls_left_today"]) == (1, 0)
    assert forecast["send_order"].startswith("sent in priority order: 38 leavers/deactivations")
    assert forecast["days"] == 2
    text = invoke("runs", "show", held["run_id"], *state)
    assert "budget:  1 call needed, 0 left today (daily budget 2): does not fit today" in text
    assert f"order:   {forecast['send_order']}" in text
    assert "days:    ~2 days, done ~" in text
    listed = doc("runs", "list", *state, kind="runs")["runs"]
    assert listed[-1]["forecast"] is None  # only the view of one held run reads its plan
