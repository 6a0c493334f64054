"""Role assignments: only the allowed roles, at the allowed scopes, never the resource group."""

from __future__ import annotations

import re

import bicep_model as bm
from infra_contract import (
    ALLOWED_ROLES,
    EXPECTED_ROLE_ASSIGNMENTS,
    FORBIDDEN_ROLES,
    INFRA,
    OPERATOR,
    VAULT_ROLE_ASSIGNMENTS,
)

RBAC = bm.module_path("rbac.bicep")
ROLE_TYPE = "Microsoft.Authorization/roleAssignments"
ROLE_REF = (
    r"subscription_resource_id\(Microsoft\.Authorization/roleDefinitions, "
    r"roles\.(\w+), null, null\)"
)
WHOLE_RESOURCE_SCOPES = (
    "Microsoft.Storage/storageAccounts",
    "Microsoft.Insights/components",
    "Microsoft.KeyVault/vaults",
)


def _assignments() -> set[tuple[str, str, str, str | None]]:
    roles = bm.variable(RBAC, "roles")
    symbols = {r.symbol: r for r in bm.resources(RBAC)}
    found = set()
    for ra in bm.resources_of_type(RBAC, ROLE_TYPE):
        props = ra.body["properties"]
        role_ref = bm.render(props["roleDefinitionId"])
        match = re.fullmatch(ROLE_REF, role_ref)
        assert match, f"{ra.symbol}: roleDefinitionId {role_ref}"
        guid = roles[match.group(1)]
        scope = symbols[ra.body["scope"]]
        assert scope.existing, f"{ra.symbol}: scope {scope.symbol} is not an existing resource"
        scope_name = None if scope.type in WHOLE_RESOURCE_SCOPES else scope.body["name"]
        found.add((props["principalId"], guid, scope.type, scope_name))
        # Deterministic name over scope, principal and role: re-deployments are idempotent.
        assert bm.render(ra.body["name"]) == (
            f"guid({scope.symbol}.id, {props['principalId']}, roles.{match.group(1)})"
        )
        key = (props["principalId"], guid, scope.type, scope_name)
        operator_condition = "!empty(operatorPrincipalId)"
        if key in VAULT_ROLE_ASSIGNMENTS:  # only with the optional vault
            operator_condition = f"and(grantVaultAccess, {operator_condition})"
            if props["principalId"] != OPERATOR:
                assert ra.condition == "grantVaultAccess", ra.symbol
        elif props["principalId"] != OPERATOR:
            assert ra.condition is None, ra.symbol
        if props["principalId"] == OPERATOR:
            assert bm.render(ra.condition) == operator_condition, ra.symbol
            assert props["principalType"] == "operatorPrincipalType"
        else:
            assert props["principalType"] == "ServicePrincipal"
    return found


def test_role_definitions_are_the_allowed_guids() -> None:
    roles = bm.variable(RBAC, "roles")
    assert set(roles.values()) <= ALLOWED_ROLES


def test_role_assignments_are_exactly_the_expected_least_privilege_set() -> None:
    assert _assignments() == EXPECTED_ROLE_ASSIGNMENTS


def test_no_role_assignment_outside_the_rbac_module() -> None:
    for res in bm.all_resources():
        if res.type == ROLE_TYPE:
            assert res.file == RBAC, f"{res.file.name}:{res.symbol}"


def test_no_broad_or_key_granting_role_anywhere() -> None:
    for path in INFRA.rglob("*"):
        if path.is_file():
            text = path.read_text().lower()
            for guid in FORBIDDEN_ROLES:
                assert guid not in text, f"{path}: forbidden role {guid}"


def test_rbac_module_principals_come_from_the_identities() -> None:
    body, _ = bm.module(INFRA / "main.bicep", "rbac")
    params = {k: bm.render(v) for k, v in body["params"].items()}
    assert params["identityPrincipalId"] == "identity.outputs.principalId"
    assert params["eventGridPrincipalId"] == "eventGrid.outputs.principalId"
    assert params["operatorPrincipalId"] == "principalId"
    assert params["deadLetterContainerName"] == "deadLetterContainerName"
    assert params["vaultName"] == "vaultName"
    assert params["grantVaultAccess"] == "enableVault"
