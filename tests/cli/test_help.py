"""`--help` of every command at 80 columns: option names in full, flags without a placeholder."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from connector.cli.app import build_app

runner = CliRunner()


def _commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every (path, command) of the tree; Typer's Click commands are walked by duck typing."""
    yield path, command
    subcommands: dict[str, Any] = getattr(command, "commands", None) or {}
    for name, sub in subcommands.items():
        if not sub.hidden:
            yield from _commands(sub, (*path, name))


COMMANDS = list(_commands(typer.main.get_command(build_app())))


def test_the_tree_has_every_command_group() -> None:
    names = {" ".join(path) for path, _ in COMMANDS}
    for expected in ("validate", "sample", "emulator", "status", "logs", "schema add", "sync"):
        assert expected in names


@pytest.mark.parametrize(
    ("path", "command"), COMMANDS, ids=[" ".join(p) or "connector" for p, _ in COMMANDS]
)
def test_help_at_80_columns(path: tuple[str, ...], command: Any) -> None:
    res = runner.invoke(
        build_app(), [*path, "--help"], env={"COLUMNS": "80"}, prog_name="connector"
    )
    assert res.exit_code == 0, res.output
    text = res.output
    assert "…" not in text.replace("(…/bulkUpload)", ""), text  # nothing cut short
    assert "╭" not in text  # plain Click help, no rich panels
    params = command.get_params(typer.Context(command))  # with the --help option
    shown = [p for p in params if p.param_type_name == "option" and not p.hidden]
    assert "--help" in {name for p in shown for name in p.opts}
    for param in shown:
        for name in [*param.opts, *param.secondary_opts]:
            pattern = rf"(?<![\w-]){re.escape(name)}(?![\w-])"
            assert re.search(pattern, text), f"{name} not shown in full:\n{text}"
            if param.is_flag:
                after = re.search(pattern + r"(\S*)( ?<[^>]*>)?", text)
                assert after is not None
                assert after.group(2) is None, f"flag {name} shows a value placeholder:\n{text}"
            elif name.startswith("--"):
                assert re.search(pattern + r" <[^>]+>", text), f"{name} lacks its placeholder"
