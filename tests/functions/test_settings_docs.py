"""Code == README settings table == Bicep app settings.

``APP_SETTING_NAMES`` (what ``connector/functions/settings.py`` reads) must be exactly the settings
documented in the README's settings table, and the Bicep must set every one of them
except the local-only ones, and none of those. The table's text lives in
``docs/functions.md`` (between the ``readme:settings`` markers) and is pasted into the
README; both are checked.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pycep import BicepParser

from connector.functions.settings import (
    APP_SETTING_NAMES,
    AZURE_SETTING_NAMES,
    LOCAL_ONLY_SETTING_NAMES,
)

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
_NAME = re.compile(r"^`([A-Za-z_][A-Za-z0-9_]*)`$")
# Settings the Functions host (not our code) reads; Bicep may set these as well.
_HOST_PREFIXES = ("AzureWebJobsStorage", "AzureFunctionsWebHost", "AzureFunctionsJobHost")


def settings_table(markdown: str) -> set[str]:
    """Names in the first column of every markdown table whose first header is 'Setting'."""
    names: set[str] = set()
    in_table = False
    for raw in markdown.splitlines():
        line = raw.strip()
        if not line.startswith("|"):
            in_table = False
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if not in_table:
            in_table = cells[0].lower() == "setting"
            continue
        if set(cells[0]) <= set("-: "):
            continue  # the separator row
        m = _NAME.match(cells[0])
        assert m, f"settings table row without a `NAME` first cell: {raw!r}"
        names.add(m.group(1))
    return names


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def bicep_app_settings() -> set[str]:
    """Names of every ``appSettings`` entry of every ``Microsoft.Web/sites`` in infra/."""
    names: set[str] = set()
    sites = 0
    for path in sorted(INFRA.rglob("*.bicep")):
        text = path.read_text(encoding="utf-8")
        if "Microsoft.Web/sites" not in text:
            continue
        parsed = BicepParser().parse(text=text)
        for resource in (parsed.get("resources") or {}).values():
            if resource.get("type") != "Microsoft.Web/sites" or resource.get("existing"):
                continue
            sites += 1
            for node in _walk(resource.get("config") or {}):
                items = node.get("appSettings") or []
                if isinstance(items, dict):  # concat([...literal...], <Key Vault references>)
                    items = [
                        i
                        for a in items["function"]["parameters"].values()
                        if isinstance(a, list)
                        for i in a
                    ]
                for item in items:
                    if isinstance(item, dict) and isinstance(item.get("name"), str):
                        names.add(item["name"])
    assert sites, "no Microsoft.Web/sites resource found in infra/"
    return names


def test_docs_table_lists_exactly_the_settings_the_code_reads() -> None:
    text = (ROOT / "docs" / "functions.md").read_text(encoding="utf-8")
    block = text.split("<!-- readme:settings:start -->")[1].split("<!-- readme:settings:end -->")[0]
    assert settings_table(block) == set(APP_SETTING_NAMES)


def test_readme_table_lists_exactly_the_settings_the_code_reads() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    documented = settings_table(readme)
    missing = sorted(set(APP_SETTING_NAMES) - documented)
    extra = sorted(documented - set(APP_SETTING_NAMES))
    hint = "the table's text is in docs/functions.md (readme:settings markers)"
    assert not missing, f"README settings table lacks settings the code reads: {missing}; {hint}"
    assert not extra, f"README settings table lists settings the code does not read: {extra}"


def test_bicep_sets_every_azure_setting_and_no_local_one() -> None:
    bicep = bicep_app_settings()
    assert set(AZURE_SETTING_NAMES) <= bicep, sorted(set(AZURE_SETTING_NAMES) - bicep)
    assert not (LOCAL_ONLY_SETTING_NAMES & bicep), sorted(LOCAL_ONLY_SETTING_NAMES & bicep)
    unknown = {n for n in bicep - set(APP_SETTING_NAMES) if not n.startswith(_HOST_PREFIXES)}
    assert not unknown, f"Bicep sets settings neither the code nor the host reads: {unknown}"


def test_infra_contract_agrees_with_the_code() -> None:
    """The infra tests' own list (tests/infra/infra_contract.py) names the same settings."""
    contract_dir = ROOT / "tests" / "infra"
    if not (contract_dir / "infra_contract.py").is_file():
        pytest.fail("tests/infra/infra_contract.py is missing")
    sys.path.insert(0, str(contract_dir))
    try:
        import infra_contract
    finally:
        sys.path.remove(str(contract_dir))
    read_by_code = set(infra_contract.BICEP_APP_SETTINGS) & set(APP_SETTING_NAMES)
    assert read_by_code == set(AZURE_SETTING_NAMES)
    assert infra_contract.TRIGGER_CONNECTION == "HrDropStorage"


def test_table_parser_reads_names_and_refuses_malformed_rows() -> None:
    sample = (
        "| Setting | Meaning |\n|---|---|\n| `A_B` | x |\n| `C__d` | y |\n\n| Other |\n|--|\n| z |"
    )
    assert settings_table(sample) == {"A_B", "C__d"}
    with pytest.raises(AssertionError, match="without a `NAME`"):
        settings_table("| Setting |\n|---|\n| A_B |")
