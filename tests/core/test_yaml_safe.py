"""The one YAML loading path: a file nested hundreds of levels deep is a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from connector.cli.app import build_app
from connector.config import load_sources
from connector.errors import ConfigError, MappingError
from connector.mapping import load_mapping
from connector.validate import validate
from connector.yaml_safe import MAX_DEPTH, load_yaml

runner = CliRunner()
DEPTH = 500


def _flow(depth: int) -> str:
    return "[" * depth + "]" * depth


def _block(depth: int, indent: int = 2) -> str:
    return (
        "".join(" " * (indent * i) + f"k{i}:\n" for i in range(depth))
        + " " * (indent * depth)
        + "x\n"
    )


@pytest.mark.parametrize("style", ["flow", "block"])
def test_a_mapping_nested_500_levels_is_a_mapping_error_naming_the_file(
    tmp_path: Path, style: str
) -> None:
    path = tmp_path / "deep.yaml"
    deep = _flow(DEPTH) if style == "flow" else "\n" + _block(DEPTH, 4)
    path.write_text(f"externalId: Id\ncore:\n  userName: {deep}\n", encoding="utf-8")
    with pytest.raises(MappingError) as info:
        load_mapping(path)
    [problem] = info.value.problems
    assert problem.startswith(f"{path}:")
    assert f"nested deeper than {MAX_DEPTH} levels" in problem


@pytest.mark.parametrize("style", ["flow", "block"])
def test_a_sources_config_nested_500_levels_is_a_config_error_naming_the_file(
    tmp_path: Path, style: str
) -> None:
    path = tmp_path / "sources.yaml"
    deep = _flow(DEPTH) if style == "flow" else "\n" + _block(DEPTH)
    path.write_text(f"sources: {deep}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_sources(path)
    text = str(info.value)
    assert text.startswith(f"{path}:")
    assert f"nested deeper than {MAX_DEPTH} levels" in text
    assert "\n" not in text  # one line


def test_nesting_up_to_the_limit_still_loads() -> None:
    assert load_yaml("a: " + _flow(MAX_DEPTH - 1)) == {"a": _nested(MAX_DEPTH - 1)}


def _nested(depth: int) -> list[object]:
    out: list[object] = []
    for _ in range(depth - 1):
        out = [out]
    return out


def test_validate_reports_a_deep_mapping_and_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text(f"externalId: Id\ncore:\n  userName: {_flow(DEPTH)}\n", encoding="utf-8")
    report = validate(path)
    [problem] = report.errors
    assert problem.where == f"{path}:3"
    res = runner.invoke(build_app(), ["validate", "--mapping", str(path)])
    assert res.exit_code == 1
    assert "nested deeper than" in res.output
    assert "Traceback" not in res.output
