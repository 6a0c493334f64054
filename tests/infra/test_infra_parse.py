"""Every Bicep file parses, and the Graph-extension file has the expected structure.

No Bicep compiler is available in the build, so parsing (pycep-parser) plus the structural
checks here and in the other test_infra_* files are what stands between a typo and a
failed `azd up`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import bicep_model as bm
import pytest
from infra_contract import GRAPH_APP_ID, GRAPH_APP_ROLES, GRAPH_EXTENSION_FILE, INFRA

EXPECTED_FILES = {
    "main.bicep",
    "modules/alerts.bicep",
    "modules/eventgrid.bicep",
    "modules/functionapp.bicep",
    "modules/graph-permissions.bicep",
    "modules/identity.bicep",
    "modules/keyvault.bicep",
    "modules/monitoring.bicep",
    "modules/rbac.bicep",
    "modules/storage.bicep",
}


def test_the_expected_bicep_files_exist() -> None:
    found = {p.relative_to(INFRA).as_posix() for p in bm.bicep_files()}
    assert found == EXPECTED_FILES


@pytest.mark.parametrize("path", bm.bicep_files(), ids=lambda p: p.relative_to(INFRA).as_posix())
def test_every_bicep_file_parses(path: Path) -> None:
    doc = bm.parse(path)
    assert doc.get("resources") or doc.get("modules"), f"{path} declares nothing"


def test_every_module_reference_resolves_to_a_file() -> None:
    for path in bm.bicep_files():
        for symbol, mod in bm.parse(path).get("modules", {}).items():
            assert mod["type"] == "local", f"{path.name}:{symbol} uses a registry module"
            target = (path.parent / mod["detail"]["path"]).resolve()
            assert target.is_file(), f"{path.name}:{symbol} -> missing {target}"


def test_module_params_exist_and_required_params_are_passed() -> None:
    """Catches what the compiler would: unknown or missing module parameters."""
    for path in bm.bicep_files():
        for symbol, mod in bm.parse(path).get("modules", {}).items():
            target = (path.parent / mod["detail"]["path"]).resolve()
            declared = bm.parse(target).get("parameters", {})
            body, _ = bm.module(path, symbol)
            passed = set(body.get("params", {}))
            assert passed <= set(declared), f"{symbol}: unknown params {passed - set(declared)}"
            required = {n for n, p in declared.items() if p.get("default") is None}
            assert required <= passed, f"{symbol}: missing params {required - passed}"


def test_module_outputs_used_by_main_exist() -> None:
    main = INFRA / "main.bicep"
    text = main.read_text()
    for symbol, mod in bm.parse(main)["modules"].items():
        target = (main.parent / mod["detail"]["path"]).resolve()
        outputs = set(bm.parse(target).get("outputs", {}))
        used = set(re.findall(rf"\b{symbol}\.outputs\.(\w+)", text))
        assert used <= outputs, f"{symbol}: main.bicep reads missing outputs {used - outputs}"


def test_graph_extension_file_structure() -> None:
    code = bm.code_without_comments(GRAPH_EXTENSION_FILE)
    assert re.search(r"^extension microsoftGraphV1$", code, re.M)
    types = set(re.findall(r"'(Microsoft\.Graph/[A-Za-z]+@[\w.]+)'", code))
    assert types == {
        "Microsoft.Graph/servicePrincipals@v1.0",
        "Microsoft.Graph/appRoleAssignedTo@v1.0",
    }
    assert re.search(r"'Microsoft\.Graph/servicePrincipals@v1\.0' existing = \{", code)
    assert f"graphAppId = '{GRAPH_APP_ID}'" in code
    # Roles are looked up by name on the Graph service principal, never hard-coded ids.
    assert "filter(graphServicePrincipal.appRoles, role => (role.value == roleName))[0].id" in code
    assert not re.search(r"appRoleId: '[0-9a-f-]{36}'", code)
    doc = bm.parse(GRAPH_EXTENSION_FILE)
    assert tuple(bm.variable(GRAPH_EXTENSION_FILE, "appRoleNames")) == GRAPH_APP_ROLES
    (assignment,) = bm.resources_of_type(GRAPH_EXTENSION_FILE, "Microsoft.Graph/appRoleAssignedTo")
    assert assignment.looped
    assert assignment.body["principalId"] == "principalId"
    assert bm.render(assignment.body["resourceId"]) == "graphServicePrincipal.id"
    assert set(doc["parameters"]) == {"principalId"}


def test_bicepconfig_pins_the_graph_extension() -> None:
    config = json.loads((INFRA / "bicepconfig.json").read_text())
    ref = config["extensions"]["microsoftGraphV1"]
    pattern = r"br:mcr\.microsoft\.com/bicep/extensions/microsoftgraph/v1\.0:\d+\.\d+\.\d+"
    assert re.fullmatch(pattern, ref)


def test_graph_grants_are_switchable_and_target_the_app_identity() -> None:
    main = INFRA / "main.bicep"
    body, condition = bm.module(main, "graphPermissions")
    assert condition == "grantGraphPermissions"
    assert bm.param_default(main, "grantGraphPermissions") is True
    assert bm.render(body["params"]["principalId"]) == "identity.outputs.principalId"
    granted = bm.parse(main)["outputs"]["GRAPH_PERMISSIONS_GRANTED"]["value"]
    assert granted == "grantGraphPermissions"
