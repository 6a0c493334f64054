"""Packaging stays honest: what Azure installs equals what the package declares."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _requirements() -> list[str]:
    lines = (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]


def test_requirements_are_pinned_exactly() -> None:
    reqs = _requirements()
    assert reqs, "requirements.txt is empty"
    for req in reqs:
        assert "==" in req, f"{req!r} in requirements.txt is not pinned with =="


def test_requirements_match_pyproject_dependencies() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = sorted(d.lower() for d in project["dependencies"])
    assert declared == sorted(r.lower() for r in _requirements())


def test_no_dev_tools_in_requirements() -> None:
    dev_only = {"pytest", "hypothesis", "respx", "ruff", "mypy", "scim2-models", "pycep-parser"}
    names = {r.split("==")[0].lower() for r in _requirements()}
    assert not names & dev_only


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "make test" in ci.splitlines()[-1]
    assert "make test" in readme
