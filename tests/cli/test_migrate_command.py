"""``connector import-psd1``: the YAML on stdout or in --out, everything to look at on stderr
with its line, and the exit code saying whether a person must edit the result."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import typer
from typer.testing import CliRunner

from connector.cli import migrate
from connector.mapping import load_mapping
from tests.migrate.helpers import CONTRACTOR_PSD1, SAMPLE_PSD1, UNSUPPORTED_PSD1

runner = CliRunner()


def app() -> typer.Typer:
    a = typer.Typer(rich_markup_mode=None)  # as connector.cli.app builds it
    migrate.register(a)
    a.command("noop", hidden=True)(lambda: None)  # keep import-psd1 a named sub-command
    return a


def test_a_complete_translation_writes_the_file_and_exits_0(tmp_path: Path) -> None:
    out = tmp_path / "mapping.yaml"
    result = runner.invoke(app(), ["import-psd1", str(SAMPLE_PSD1), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert load_mapping(out).external_id_column == "WorkerID"
    assert result.stdout == ""
    assert result.stderr == f"wrote {out}: 20 entries translated, 0 left as placeholders\n"


def test_without_out_the_yaml_goes_to_stdout_and_notes_to_stderr() -> None:
    result = runner.invoke(app(), ["import-psd1", str(CONTRACTOR_PSD1)])
    assert result.exit_code == 0, result.output
    assert load_mapping(result.stdout).external_id_column == "ContractorID"
    assert result.stderr.startswith(f"note: {CONTRACTOR_PSD1}:7: this emails item has no type")


def test_placeholders_exit_1_with_each_entry_and_line_on_stderr(tmp_path: Path) -> None:
    out = tmp_path / "mapping.yaml"
    result = runner.invoke(app(), ["import-psd1", str(UNSUPPORTED_PSD1), "-o", str(out)])
    assert result.exit_code == 1
    err = result.stderr.splitlines()
    assert err[0] == (
        f"{UNSUPPORTED_PSD1}:4: active: not translated:"
        " if statements have no equivalent in the mapping language"
    )
    assert sum(": not translated: " in line for line in err) == 9
    assert err[-1] == (
        f"wrote {out}: 3 entries translated, 9 left as placeholders,"
        " 1 problem(s) for the mapping loader"
    )
    assert any(": active is not mapped: " in line for line in err)  # issue #16: an error
    assert "# TODO psd1 line 4: not translated:" in out.read_text(encoding="utf-8")


def test_loader_problems_exit_1_and_name_the_output_file(tmp_path: Path) -> None:
    psd1 = tmp_path / "m.psd1"
    psd1.write_text("@{ userName = 'UserID'; active = { $_.S -eq 'A' } }", encoding="utf-8")
    out = tmp_path / "m.yaml"
    result = runner.invoke(app(), ["import-psd1", str(psd1), "-o", str(out)])
    assert result.exit_code == 1
    assert f"error: {out}:3: externalId is required" in result.stderr
    assert out.exists()


def test_a_file_that_is_not_a_data_file_exits_2_with_one_line_and_writes_nothing(
    tmp_path: Path,
) -> None:
    psd1 = tmp_path / "bad.psd1"
    psd1.write_text("@{\n  externalId = 'WorkerID\n}\n", encoding="utf-8")
    out = tmp_path / "m.yaml"
    result = runner.invoke(app(), ["import-psd1", str(psd1), "-o", str(out)])
    assert result.exit_code == 2
    assert result.stderr == f"error: {psd1}:2: a single-quoted string is never closed\n"
    assert not out.exists()


def test_a_missing_file_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app(), ["import-psd1", str(tmp_path / "nope.psd1")])
    assert result.exit_code == 2
    assert result.stderr == f"error: import-psd1: psd1 {str(tmp_path / 'nope.psd1')!r} not found\n"


def test_an_existing_out_is_kept_unless_forced(tmp_path: Path) -> None:
    out = tmp_path / "mapping.yaml"
    out.write_text("mine\n", encoding="utf-8")
    refused = runner.invoke(app(), ["import-psd1", str(SAMPLE_PSD1), "-o", str(out)])
    assert refused.exit_code == 2
    assert "pass --force" in refused.stderr
    assert out.read_text(encoding="utf-8") == "mine\n"
    forced = runner.invoke(app(), ["import-psd1", str(SAMPLE_PSD1), "-o", str(out), "--force"])
    assert forced.exit_code == 0
    assert out.read_text(encoding="utf-8").startswith("# Translated from AttributeMapping.psd1")


def test_encoding_option_reads_a_windows_ansi_file(tmp_path: Path) -> None:
    psd1 = tmp_path / "ansi.psd1"
    text = "@{ externalId = 'Id'; active = { $true }; userName = 'Nom d''usager é' }"
    psd1.write_bytes(text.encode("cp1252"))
    refused = runner.invoke(app(), ["import-psd1", str(psd1)])
    assert refused.exit_code == 2
    assert "not UTF-8 text" in refused.stderr
    ok = runner.invoke(app(), ["import-psd1", str(psd1), "--encoding", "cp1252"])
    assert ok.exit_code == 0, ok.stderr
    assert 'userName: "Nom d\'usager é"' in ok.stdout


def _main(args: list[str]) -> subprocess.CompletedProcess[str]:
    code = f"from connector.cli import main; raise SystemExit(main({args!r}))"
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )


def test_the_full_app_has_the_command_and_its_exit_codes(tmp_path: Path) -> None:
    done = _main(["import-psd1", str(SAMPLE_PSD1)])
    assert done.returncode == 0, done.stderr
    assert "externalId: WorkerID" in done.stdout
    assert _main(["import-psd1", str(UNSUPPORTED_PSD1)]).returncode == 1
    assert _main(["import-psd1", str(tmp_path / "none.psd1")]).returncode == 2
