"""checkov scans infra/ with zero failed checks; every skip is inline, reasoned and expected.

checkov runs from its own virtualenv (it pins an older Bicep parser than pycep-parser 0.7.1),
as a subprocess, offline (--skip-download, BC_SKIP_MAPPING). The Graph-extension file is
the only file it may fail to parse (its parser predates `extension`); it holds no Azure
resources, and test_infra_parse.py checks its structure instead.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from infra_contract import ALLOWED_CHECKOV_SKIPS, GRAPH_EXTENSION_FILE, INFRA, ROOT

SKIP_COMMENT = re.compile(r"//\s*checkov:skip=([A-Z0-9_]+):(.*)$")


def _checkov_bin() -> str:
    default = ROOT / ".venv" / "checkov" / "bin" / "checkov"
    configured = os.environ.get("CHECKOV_BIN") or str(default)
    if not Path(configured).is_file():
        pytest.fail(f"checkov not found at {configured}; `make unit` installs it")
    return configured


def _run(*extra: str) -> dict[str, Any]:
    cmd = [
        _checkov_bin(),
        "-d",
        str(INFRA),
        "--framework",
        "bicep",
        "--compact",
        "--skip-download",
        *extra,
        "-o",
        "json",
    ]
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert proc.returncode in (0, 1), f"checkov crashed ({proc.returncode}): {proc.stderr[-2000:]}"
    report = json.loads(proc.stdout)
    if isinstance(report, list):  # one report per framework; we ask for one
        (report,) = report
    assert report["check_type"] == "bicep"
    return report


@pytest.fixture(scope="module")
def quiet_report() -> dict[str, Any]:
    return _run("--quiet")


@pytest.fixture(scope="module")
def full_report() -> dict[str, Any]:
    return _run()


def test_checkov_reports_zero_failed_checks(quiet_report: dict[str, Any]) -> None:
    failed = [
        f"{c['check_id']} {c['file_path']} {c['resource']}: {c['check_name']}"
        for c in quiet_report["results"]["failed_checks"]
    ]
    assert failed == []
    assert quiet_report["summary"]["failed"] == 0


def test_checkov_really_scanned_the_resources(full_report: dict[str, Any]) -> None:
    summary = full_report["summary"]
    assert summary["resource_count"] >= 40
    assert summary["passed"] >= 15
    scanned = {c["file_path"] for c in full_report["results"]["passed_checks"]}
    assert {"/modules/storage.bicep", "/modules/functionapp.bicep"} <= scanned


def test_only_the_graph_extension_file_fails_to_parse(full_report: dict[str, Any]) -> None:
    errors = {Path(p).resolve() for p in full_report["results"]["parsing_errors"]}
    assert errors <= {GRAPH_EXTENSION_FILE.resolve()}


def test_skips_are_the_reviewed_inline_ones_with_reasons(full_report: dict[str, Any]) -> None:
    skipped = full_report["results"]["skipped_checks"]
    assert {(c["check_id"], c["resource"]) for c in skipped} == ALLOWED_CHECKOV_SKIPS
    for check in skipped:
        reason = check["check_result"].get("suppress_comment") or ""
        assert len(reason) >= 40, f"{check['check_id']}: reason too thin: {reason!r}"


def test_every_inline_skip_comment_is_used_and_inside_a_resource(
    full_report: dict[str, Any],
) -> None:
    used = {
        (c["check_id"], c["file_path"], tuple(c["file_line_range"]))
        for c in full_report["results"]["skipped_checks"]
    }
    for path in INFRA.rglob("*.bicep"):
        rel = "/" + path.relative_to(INFRA).as_posix()
        for lineno, line in enumerate(path.read_text().splitlines(), start=1):
            match = SKIP_COMMENT.search(line)
            if not match:
                continue
            check_id, reason = match.group(1), match.group(2).strip()
            assert reason, f"{rel}:{lineno}: skip without a reason"
            inside = any(
                cid == check_id and f == rel and start < lineno < end
                for cid, f, (start, end) in used
            )
            assert inside, f"{rel}:{lineno}: {check_id} skip is not inside a resource it applies to"
