"""The README's walkthroughs work as written, in bash and in zsh (macOS's default shell).

The CLI walkthrough (between the ``walkthrough`` markers) is run in full under both shells,
in a scratch folder that links the repository's ``.venv`` and ``samples``, with the emulator
port swapped for a free one. The Functions walkthrough (between the ``readme:local``
markers) needs Azure Functions Core Tools, which cannot be installed here: its commands are
checked for syntax under both shells (``bash -n``, ``zsh -n``) and for the order that makes
them work on a fresh Azurite. ``make unit`` installs zsh (root); without it this test fails.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SHELLS = ("bash", "zsh")


def _between(text: str, start: str, end: str) -> str:
    return text.split(f"<!-- {start} -->", 1)[1].split(f"<!-- {end} -->", 1)[0]


def _sh_blocks(section: str) -> list[str]:
    """The ``sh`` fenced blocks of a README section, dedented by their fence's indentation
    (a list item indents its fence and its lines)."""
    blocks: list[str] = []
    current: list[str] | None = None
    indent = 0
    for line in section.splitlines():
        stripped = line.strip()
        if current is None and stripped == "```sh":
            current, indent = [], len(line) - len(line.lstrip())
        elif current is not None and stripped == "```":
            blocks.append("\n".join(current) + "\n")
            current = None
        elif current is not None:
            current.append(line[indent:] if not line[:indent].strip() else line)
    return blocks


def _shell(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} not found: run `make unit` as root, or `sudo apt-get install {name}`")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli_walkthrough() -> str:
    blocks = _sh_blocks(_between(README.read_text("utf-8"), "walkthrough:start", "walkthrough:end"))
    assert blocks, "no sh block between the walkthrough markers"
    return "\n".join(blocks)


def _functions_walkthrough() -> list[str]:
    section = _between(README.read_text("utf-8"), "readme:local:start", "readme:local:end")
    blocks = _sh_blocks(section)
    assert len(blocks) >= 5, "the Functions walkthrough lost a step"
    return blocks


def _run_in_scratch(shell: str, script: str, folder: Path) -> subprocess.CompletedProcess[str]:
    (folder / ".venv").symlink_to(ROOT / ".venv")
    (folder / "samples").symlink_to(ROOT / "samples")
    path = folder / "walkthrough.sh"
    path.write_text(script, "utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONNECTOR_")}
    proc = subprocess.Popen(
        [_shell(shell), "-e", str(path)],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # the emulator it starts is in this group: cleaned up below
    )
    try:
        out, err = proc.communicate(timeout=240)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.mark.parametrize("shell", SHELLS)
def test_the_cli_walkthrough_runs_as_written(shell: str, tmp_path: Path) -> None:
    script = _cli_walkthrough().replace("8089", str(_free_port()))
    done = _run_in_scratch(shell, script, tmp_path)
    assert done.returncode == 0, f"{shell} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    reports = tmp_path / "st" / "reports" / "employees"
    runs = sorted(p.name for p in reports.iterdir() if p.name.startswith("employees-"))
    assert len(runs) == 2
    for run in runs:
        assert run in done.stdout
        assert (reports / run / "report.html").is_file()
    assert "200 joiners" in done.stdout
    assert "externalId" in done.stdout  # the emulator's users were listed
    emulator_log = (tmp_path / "emulator.log").read_text("utf-8")
    assert "bulkUpload URL:" in emulator_log


def test_the_cli_walkthrough_needs_no_word_split_variable() -> None:
    script = _cli_walkthrough()
    for name in re.findall(r"^\s*([A-Z_]+)=", script, re.MULTILINE):
        unquoted = re.findall(rf"(?<![\"'])\${{?{name}\b", script)
        assert not unquoted, f"${name} is used unquoted: zsh does not split it into options"


@pytest.mark.parametrize("shell", SHELLS)
def test_the_functions_walkthrough_is_valid_shell(shell: str, tmp_path: Path) -> None:
    for number, block in enumerate(_functions_walkthrough(), start=1):
        path = tmp_path / f"step{number}.sh"
        path.write_text(block, "utf-8")
        done = subprocess.run(
            [_shell(shell), "-n", str(path)], capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, f"block {number} under {shell}: {done.stderr}\n{block}"


def test_the_functions_walkthrough_creates_containers_before_the_drop() -> None:
    script = "\n".join(_functions_walkthrough())
    assert "--disableTelemetry" in script.split("azurite", 1)[1].splitlines()[0]
    first_call = script.index("http://localhost:7071/api/health")
    assert first_call < script.index("upload_blob"), "a file is dropped before the app started"


def _ignored(ignore_file: Path, paths: list[str], scratch: Path) -> set[str]:
    subprocess.run(["git", "init", "-q", str(scratch)], check=True)
    shutil.copy(ignore_file, scratch / ".gitignore")
    done = subprocess.run(
        ["git", "-C", str(scratch), "check-ignore", "--no-index", *paths],
        capture_output=True,
        text=True,
        check=False,
    )
    return set(done.stdout.split())


WORKING_FILES = [
    ".azurite/__blobstorage__/x",
    "emulator.local.yaml",
    "emulator.log",
    "sources.yaml",
    "st/records/x.json",
    "day1.csv",
    "exports/hr-2026-12-01.csv",
]


@pytest.mark.parametrize("name", [".gitignore", ".funcignore"])
def test_walkthrough_files_and_extracts_are_ignored(name: str, tmp_path: Path) -> None:
    ignored = _ignored(ROOT / name, [*WORKING_FILES, "samples/hr-extract.csv"], tmp_path)
    assert set(WORKING_FILES) <= ignored
    assert "samples/hr-extract.csv" not in ignored


def test_the_license_is_the_one_pyproject_declares() -> None:
    assert 'license = "MIT"' in (ROOT / "pyproject.toml").read_text("utf-8")
    assert (ROOT / "LICENSE").read_text("utf-8").startswith("MIT License\n")
