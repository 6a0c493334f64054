"""What the CLI tests share: invoking the app and writing a one-source config."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from benchmarks.emuworld import JOB, MAPPING, SP
from connector.cli.app import build_app

runner = CliRunner()

DATED_FILES = "    extract_timestamp: {pattern: '_(?P<ts>\\d{8})\\.csv$', format: '%Y%m%d'}\n"
"""Config line: the extract's time is the ``_YYYYMMDD`` in its file name."""


def invoke(*args: str, code: int = 0) -> str:
    """Run ``connector ARGS``; the exit code must be ``code``. Returns the output."""
    result = runner.invoke(build_app(), list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output


def write_config(path: Path, *, extra: str = "") -> Path:
    """A sources config at ``path`` with one source, ``employees``, for the emulator's job."""
    path.write_text(
        "sources:\n  - name: employees\n    match: employees/\n"
        f"    mapping: {MAPPING}\n    service_principal_id: {SP}\n    job_id: {JOB}\n" + extra,
        encoding="utf-8",
    )
    return path
