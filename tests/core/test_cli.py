"""The core CLI commands through Typer's runner, and exit codes through the console script."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import orjson
import typer
from typer.testing import CliRunner

from connector.cli import core

from .helpers import DEFAULT_MAPPING, GOLDEN, HR_EXTRACT, ROOT

runner = CliRunner()


def app() -> typer.Typer:
    a = typer.Typer()
    core.register(a)
    return a


def test_commands_are_registered() -> None:
    result = runner.invoke(app(), ["--help"])
    assert result.exit_code == 0
    for name in ("validate", "preview", "sample"):
        assert name in result.output


def test_validate_exit_codes(tmp_path: Path) -> None:
    ok = runner.invoke(app(), ["validate", "--mapping", str(DEFAULT_MAPPING), str(HR_EXTRACT)])
    assert ok.exit_code == 0, ok.output
    assert "0 error(s), 0 warning(s), 60 rows checked" in ok.output
    bad = tmp_path / "m.yaml"
    bad.write_text("externalId: EmployeeId\ncore: {usrName: X}\n", encoding="utf-8")
    res = runner.invoke(app(), ["validate", "--mapping", str(bad), str(HR_EXTRACT), "--json"])
    assert res.exit_code == 1
    report = orjson.loads(res.output)
    assert report["ok"] is False
    assert report["problems"][0]["where"] == f"{bad}:2"
    missing = runner.invoke(app(), ["validate", "--mapping", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2
    assert runner.invoke(app(), ["validate", str(HR_EXTRACT)]).exit_code == 2  # --mapping needed


def test_preview_writes_payloads_and_summary(tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = runner.invoke(
        app(),
        [
            "preview",
            "--mapping",
            str(DEFAULT_MAPPING),
            str(HR_EXTRACT),
            "--out",
            str(out),
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    summary = orjson.loads(res.output)
    assert summary["rows_read"] == 60
    assert summary["requests"] == 2
    assert summary["bytes"] == sum(p.stat().st_size for p in out.glob("bulk-*.json"))
    assert (out / "bulk-00001.json").read_bytes() == (
        GOLDEN / "default" / "bulk-00001.json"
    ).read_bytes()
    text = runner.invoke(
        app(), ["preview", "-m", str(DEFAULT_MAPPING), str(HR_EXTRACT), "-o", str(out)]
    )
    assert "rows_accepted: 60" in text.output
    assert "\x1b[" not in text.output  # no progress bar or colours off a terminal


def test_preview_reports_rejections_and_cap(tmp_path: Path) -> None:
    extract = tmp_path / "x.csv"
    args = ["sample", "--rows", "100", "--seed", "2", "--out", str(extract)]
    res = runner.invoke(app(), [*args, "--bad-dates", "3", "--duplicate-ids", "1"])
    assert res.exit_code == 0, res.output
    out = tmp_path / "out"
    preview = ["preview", "-m", str(DEFAULT_MAPPING), str(extract), "-o", str(out), "--json"]
    res = runner.invoke(app(), preview)
    assert res.exit_code == 0  # 3 bad dates + both rows of a duplicate = 5 %, the cap itself
    summary = orjson.loads(res.stdout)
    assert summary["rejected_by_reason"] == {"duplicate_external_id": 2, "invalid_value": 3}
    assert summary["rows_accepted"] == 95
    with (out / "rejected.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["reason"] for r in rows].count("invalid_value") == 3
    assert list(rows[0]) == ["line", "externalId", "reason", "message"]
    # one more bad row puts the file over the cap: exit 1, the summary says why
    res = runner.invoke(app(), [*args, "--bad-dates", "4", "--duplicate-ids", "1"])
    res = runner.invoke(app(), preview)
    assert res.exit_code == 1
    assert "over the cap of 5.0%" in orjson.loads(res.stdout)["error"]


def test_sample_and_churn(tmp_path: Path) -> None:
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    res = runner.invoke(
        app(), ["sample", "--rows", "50", "--seed", "1", "--out", str(a), "--layout", "csv2scim"]
    )
    assert res.exit_code == 0
    assert a.read_text(encoding="utf-8").startswith("WorkerID,WorkerStatus,")
    res = runner.invoke(app(), ["sample", "--from", str(a), "--churn", "0.3", "--out", str(b)])
    assert res.exit_code == 0, res.output
    assert "hires 5" in res.output
    bad = runner.invoke(app(), ["sample", "--out", str(a), "--layout", "sap"])
    assert bad.exit_code == 2


def _main(args: list[str]) -> subprocess.CompletedProcess[str]:
    code = f"from connector.cli import main; raise SystemExit(main({args!r}))"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )


def test_console_script_exit_codes(tmp_path: Path) -> None:
    assert _main(["validate", "--mapping", str(DEFAULT_MAPPING), str(HR_EXTRACT)]).returncode == 0
    bad = tmp_path / "m.yaml"
    bad.write_text("externalId: Id\n", encoding="utf-8")
    assert _main(["validate", "--mapping", str(bad), str(HR_EXTRACT)]).returncode == 1
    assert _main(["validate", "--bogus"]).returncode == 2


def test_preview_shows_mapping_warnings_on_stderr_and_in_json(tmp_path: Path) -> None:
    m = tmp_path / "m.yaml"
    m.write_text(
        DEFAULT_MAPPING.read_text(encoding="utf-8").replace(
            "      type: work\n      primary: true", "      type: home\n      primary: true"
        ),
        encoding="utf-8",
    )
    out = tmp_path / "out"
    res = runner.invoke(app(), ["preview", "-m", str(m), str(HR_EXTRACT), "-o", str(out)])
    assert res.exit_code == 0, res.output
    [line] = [x for x in res.stderr.splitlines() if x.startswith("warning:")]
    assert f"{m}:" in line
    assert "emails type 'home'" in line
    assert "warning" not in res.stdout
    res = runner.invoke(app(), ["preview", "-m", str(m), str(HR_EXTRACT), "-o", str(out), "--json"])
    [warning] = orjson.loads(res.stdout)["warnings"]
    assert "emails type 'home'" in warning
    clean = runner.invoke(
        app(), ["preview", "-m", str(DEFAULT_MAPPING), str(HR_EXTRACT), "-o", str(out), "--json"]
    )
    assert orjson.loads(clean.stdout)["warnings"] == []
    assert "warning" not in clean.stderr
