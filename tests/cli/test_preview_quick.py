"""``preview`` on a plain command line runs without the Typer app, and says what the app says."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from connector.cli import core, main
from connector.cli.preview import quick_preview
from tests.core.helpers import DEFAULT_MAPPING, HR_EXTRACT, ROOT

runner = CliRunner()


@pytest.fixture(autouse=True)
def _no_forced_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)


def _app() -> typer.Typer:
    app = typer.Typer(rich_markup_mode=None)  # as connector.cli.app builds it
    core.register(app)
    return app


def _payloads(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


def test_a_plain_preview_starts_without_typer_pydantic_rich_or_regex(tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["preview", "-m", str(DEFAULT_MAPPING), str(HR_EXTRACT), "-o", str(out)]
    probe = (
        "import sys\nfrom connector.cli import main\n"
        f"code = main({args!r})\n"
        "heavy = ('typer', 'click', 'pydantic', 'rich', 'regex', 'connector.cli.app')\n"
        "print(code, sorted(m for m in sys.modules if m.split('.')[0] in heavy"
        " or m.startswith(heavy)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert done.stdout.splitlines()[-1] == "0 []"
    assert "rows_accepted:" in done.stdout
    assert list(out.glob("bulk-*.json"))


@pytest.mark.parametrize(
    "spelling",
    [
        ["-m", "{mapping}", "{extract}", "-o", "{out}"],
        ["{extract}", "--mapping={mapping}", "--out", "{out}", "--json"],
        ["--json", "-o", "{out}", "--max-bytes", "2048", "-m", "{mapping}", "{extract}"],
        ["--max-bytes=4096", "{extract}", "-m", "{mapping}", "--out={out}"],
    ],
)
def test_the_quick_path_prints_and_writes_what_the_app_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], spelling: list[str]
) -> None:
    out = tmp_path / "out"
    words = {"mapping": str(DEFAULT_MAPPING), "extract": str(HR_EXTRACT), "out": str(out)}
    argv = [w.format(**words) for w in spelling]
    code = quick_preview(argv)
    quick = capsys.readouterr()
    quick_files = _payloads(out)
    res = runner.invoke(_app(), ["preview", *argv])
    assert code == res.exit_code == 0
    assert quick.out == res.stdout
    assert quick_files == _payloads(out)


def test_a_bad_mapping_on_the_quick_path_is_a_usage_error_as_in_the_app(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "m.yaml"
    bad.write_text("externalId: EmployeeId\ncore: {usrName: X}\n", encoding="utf-8")
    argv = ["-m", str(bad), str(HR_EXTRACT), "-o", str(tmp_path / "out")]
    code = quick_preview(argv)
    quick = capsys.readouterr()
    res = runner.invoke(_app(), ["preview", *argv])
    assert code == res.exit_code == 2
    assert quick.err == res.stderr
    assert quick.err.startswith("error: ")


@pytest.mark.parametrize(
    "spelling",
    [
        ["--help"],
        ["-m", "{mapping}", "{extract}"],  # no --out
        ["-m", "{mapping}", "{missing}", "-o", "{out}"],
        ["-m", "{folder}", "{extract}", "-o", "{out}"],
        ["-m", "{mapping}", "{extract}", "-o", "{extract}"],  # --out is a file
        ["-m", "{mapping}", "{extract}", "{extract}", "-o", "{out}"],
        ["-m", "{mapping}", "-m", "{mapping}", "{extract}", "-o", "{out}"],
        ["-m", "{mapping}", "{extract}", "-o", "{out}", "--max-bytes", "10"],
        ["-m", "{mapping}", "{extract}", "-o", "{out}", "--max-bytes", "1e4"],
        ["-m", "{mapping}", "{extract}", "-o", "{out}", "--bogus"],
        ["-m", "{mapping}", "{extract}", "-o", "--json"],
        ["-m", "{mapping}", "{extract}", "--out="],
        ["-m{mapping}", "{extract}", "-o", "{out}"],
        ["-m", "{mapping}", "--", "{extract}", "-o", "{out}"],
    ],
)
def test_other_command_lines_are_left_to_the_app(tmp_path: Path, spelling: list[str]) -> None:
    words = {
        "mapping": str(DEFAULT_MAPPING),
        "extract": str(HR_EXTRACT),
        "out": str(tmp_path / "out"),
        "missing": str(tmp_path / "missing.csv"),
        "folder": str(tmp_path),
    }
    assert quick_preview([w.format(**words) for w in spelling]) is None


def test_a_missing_extract_gets_the_apps_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.csv"
    code = main(["preview", "-m", str(DEFAULT_MAPPING), str(missing), "-o", str(tmp_path)])
    assert code == 2
    assert capsys.readouterr().err.strip() == f"error: preview: extract {str(missing)!r} not found"
