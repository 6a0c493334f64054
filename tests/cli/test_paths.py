"""Every file a command reads, given as a missing path, a folder or a path that cannot be
read, is one line on stderr and exit 2: never Typer's usage block, never a traceback.

The parameters are found by walking the app, so a new file argument or option is covered
(and must be declared with connector/cli/paths.py) without editing this test."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import typer.main
from typer.core import TyperArgument
from typer.testing import CliRunner

from connector.cli.app import build_app
from connector.cli.files import file_problem

#: Path parameters that name something the command writes or creates, not a file it reads.
NOT_INPUT_FILES = {"--out", "--state", "--dir"}


def _path_parameters() -> list[tuple[tuple[str, ...], str, bool, bool]]:
    """(command words, option name or argument name, is_argument, has --json) per file the
    CLI reads."""
    found = []

    def walk(command: object, words: tuple[str, ...]) -> None:
        subcommands = getattr(command, "commands", None)
        if subcommands is not None:
            for name, sub in sorted(subcommands.items()):
                walk(sub, (*words, name))
            return
        params = list(command.params)  # type: ignore[attr-defined]
        has_json = any("--json" in p.opts for p in params)
        for param in params:
            descriptor = getattr(param, "type_descriptor", None)
            if descriptor is None or descriptor.annotation is not Path:
                continue
            is_argument = isinstance(param, TyperArgument)
            label = param.name if is_argument else max(param.opts, key=len)
            if label not in NOT_INPUT_FILES:
                found.append((words, label, is_argument, has_json))

    walk(typer.main.get_command(build_app()), ())
    return found


PARAMETERS = _path_parameters()


def test_the_walk_finds_the_file_parameters_the_issue_names() -> None:
    named = {(" ".join(words), label) for words, label, _, _ in PARAMETERS}
    assert {
        ("validate", "extract"),
        ("validate", "--mapping"),
        ("validate", "--config"),
        ("preview", "extract"),
        ("preview", "--mapping"),
        ("sample", "--from"),
        ("sync", "extract"),
        ("sync", "--config"),
        ("runs approve", "--config"),
        ("import-psd1", "psd1"),
        ("status", "--certificate"),
    } <= named


def _unreadable(tmp_path: Path) -> tuple[Path, str]:
    """A path that exists but this process cannot read: a file with mode 000; when the tests
    run as root (root reads any file), a path below a regular file (ENOTDIR for everyone)."""
    locked = tmp_path / "locked.csv"
    locked.write_text("id\n", encoding="utf-8")
    locked.chmod(0)
    if not os.access(locked, os.R_OK):
        return locked, "cannot be read (Permission denied)"
    plain = tmp_path / "plain-file"
    plain.write_text("", encoding="utf-8")
    return plain / "x.csv", "cannot be read (Not a directory)"


def _bad_path(tmp_path: Path, what: str) -> tuple[Path, str]:
    if what == "missing":
        return tmp_path / "nope.csv", "not found"
    if what == "folder":
        folder = tmp_path / "a-folder"
        folder.mkdir()
        return folder, "is a folder: give a file"
    return _unreadable(tmp_path)


def _args(words: tuple[str, ...], label: str, is_argument: bool, path: Path) -> list[str]:
    return [*words, str(path)] if is_argument else [*words, label, str(path)]


@pytest.mark.parametrize("what", ["missing", "folder", "unreadable"])
@pytest.mark.parametrize(
    ("words", "label", "is_argument", "has_json"),
    PARAMETERS,
    ids=[f"{' '.join(w)} {label}" for w, label, _, _ in PARAMETERS],
)
def test_a_bad_file_path_is_one_line_and_exit_2(
    tmp_path: Path, words: tuple[str, ...], label: str, is_argument: bool, has_json: bool, what: str
) -> None:
    path, problem = _bad_path(tmp_path, what)
    result = CliRunner().invoke(build_app(), _args(words, label, is_argument, path))
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.stderr == f"error: {' '.join(words)}: {label} {str(path)!r} {problem}\n"
    assert result.stdout == ""
    if has_json:  # the same line as the error document, even with --json after the path
        result = CliRunner().invoke(
            build_app(), [*_args(words, label, is_argument, path), "--json"]
        )
        assert result.exit_code == 2, result.output
        doc = json.loads(result.stdout)
        assert (doc["kind"], doc["exit_code"]) == ("error", 2)
        assert doc["error"] == f"{' '.join(words)}: {label} {str(path)!r} {problem}"


def test_a_bad_config_from_the_environment_says_where_it_came_from(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        build_app(), ["runs", "list"], env={"CONNECTOR_CONFIG": str(tmp_path)}
    )
    assert result.exit_code == 2, result.output
    assert result.stderr == (
        f"error: runs list: --config {str(tmp_path)!r} (from CONNECTOR_CONFIG)"
        " is a folder: give a file\n"
    )


def test_a_readable_file_or_a_pipe_passes_the_check(tmp_path: Path) -> None:
    plain = tmp_path / "hr.csv"
    plain.write_text("id\n", encoding="utf-8")
    assert file_problem(plain) is None
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    assert file_problem(fifo) is None  # not opened: a pipe is read by the command itself
