"""The optional Key Vault for the credentials of sql and rest sources.

Off by default; when on: RBAC authorization only, soft delete and purge protection, the
storage account's network pattern, the app identity holding Key Vault Secrets User on the
vault alone, and the app settings named in ``vaultReferences`` turned into Key Vault
references the platform resolves with the app's user-assigned identity.
"""

from __future__ import annotations

import json
import re
from typing import Any

import azd_params
import bicep_model as bm
from infra_contract import (
    APP,
    BICEP_APP_SETTINGS,
    INFRA,
    ROLE_KEY_VAULT_SECRETS_OFFICER,
    ROLE_KEY_VAULT_SECRETS_USER,
    ROOT,
    VAULT_FILE,
    VAULT_REFERENCE_VALUE,
    VAULT_REFERENCES,
    VAULT_SWITCH,
)

from connector.config import parse_sources

MAIN = INFRA / "main.bicep"
APP_FILE = bm.module_path("functionapp.bicep")
RBAC = bm.module_path("rbac.bicep")
STORAGE = bm.module_path("storage.bicep")
PARAMETERS = INFRA / "main.parameters.json"
VAULT_TYPE = "Microsoft.KeyVault/vaults"
BASE_ENV = {
    "AZURE_ENV_NAME": "hr-connector-prod",
    "AZURE_LOCATION": "westeurope",
    "ALERT_EMAIL": "hr-it-oncall@contoso.com",
    "CONNECTOR_SOURCES": "{}",
}
#: "@Microsoft.KeyVault(VaultName=myvault;SecretName=mysecret)" (Use Key Vault references as
#: app settings, learn.microsoft.com, "Reference string"); SecretVersion left out on purpose.
DOCUMENTED_REFERENCE = re.compile(r"@Microsoft\.KeyVault\(VaultName=[^;()]+;SecretName=[^;()]+\)")


def _vault() -> bm.Resource:
    return bm.one(VAULT_FILE, VAULT_TYPE)


def _resolve(env: dict[str, str]) -> dict[str, Any]:
    types = {n: p["type"] for n, p in bm.parse(MAIN)["parameters"].items()}
    return azd_params.load_parameters(PARAMETERS.read_text(), types, {**BASE_ENV, **env})


def _vault_reference_settings(vault_name: str, references: dict[str, str]) -> list[dict[str, str]]:
    """What functionapp.bicep's for-expression yields, with its template text substituted."""
    var = bm.variable(APP_FILE, "vaultReferenceSettings")
    loop = var["loop_type"]["detail"]
    assert loop["item_name"] == "entry"
    assert bm.render(loop["array_name"]) == f"items({VAULT_REFERENCES})"
    assert bm.render(var["config"]["name"]) == "entry.key"
    template = var["config"]["value"]
    return [
        {
            "name": key,
            "value": template.replace("${vaultName}", vault_name).replace("${entry.value}", value),
        }
        for key, value in references.items()
    ]


def test_vault_is_deployed_only_when_enabled_and_is_off_by_default() -> None:
    body, condition = bm.module(MAIN, "vault")
    assert condition == VAULT_SWITCH
    assert bm.parse(MAIN)["modules"]["vault"]["detail"]["path"] == "modules/keyvault.bicep"
    assert body["params"]["name"] == "vaultName"
    assert bm.param_default(MAIN, VAULT_SWITCH) is False
    raw = json.loads(PARAMETERS.read_text())["parameters"]
    assert raw[VAULT_SWITCH] == {"value": "${ENABLE_VAULT=false}"}
    assert _resolve({})[VAULT_SWITCH] == "false"
    assert _resolve({"ENABLE_VAULT": "true"})[VAULT_SWITCH] == "true"
    output = bm.parse(MAIN)["outputs"]["VAULT_NAME"]["value"]
    assert bm.render(output) == "conditional(enableVault, vaultName, )"
    # No vault resource anywhere else, and no secrets created by the templates.
    vaults = [r for r in bm.all_resources() if r.type == VAULT_TYPE and not r.existing]
    assert [r.file for r in vaults] == [VAULT_FILE]
    assert not [r for r in bm.all_resources() if r.type.startswith(f"{VAULT_TYPE}/")]


def test_vault_name_fits_key_vault_limits() -> None:
    assert bm.variable(MAIN, "vaultName") == "kv-${resourceToken}"
    # uniqueString() is 13 characters: kv- + 13 = 16 <= 24, letters/digits/hyphens.
    assert bm.render(bm.variable(MAIN, "resourceToken")).startswith("to_lower(unique_string(")
    limits = bm.param_decorators(VAULT_FILE, "name")
    assert (limits["min_length"], limits["max_length"]) == (3, 24)


def test_vault_authorizes_with_rbac_only_and_keeps_deleted_secrets() -> None:
    props = _vault().body["properties"]
    assert props["enableRbacAuthorization"] is True
    assert props["accessPolicies"] == []
    assert props["enableSoftDelete"] is True
    assert props["enablePurgeProtection"] is True
    assert props["softDeleteRetentionInDays"] == "softDeleteRetentionDays"
    limits = bm.param_decorators(VAULT_FILE, "softDeleteRetentionDays")
    assert (limits["min_value"], limits["max_value"]) == (7, 90)
    assert bm.param_default(VAULT_FILE, "softDeleteRetentionDays") == 90
    for use in ("Deployment", "DiskEncryption", "TemplateDeployment"):
        assert props[f"enabledFor{use}"] is False, use
    assert bm.render(props["tenantId"]) == "subscription(null).tenantId"


def test_vault_network_access_follows_the_storage_account() -> None:
    vault = _vault().body["properties"]
    storage = bm.one(STORAGE, "Microsoft.Storage/storageAccounts").body["properties"]
    assert vault["publicNetworkAccess"] == storage["publicNetworkAccess"]
    assert vault["networkAcls"] == storage["networkAcls"]


def test_app_identity_reads_secrets_of_this_vault_only() -> None:
    roles = bm.variable(RBAC, "roles")
    assert roles["keyVaultSecretsUser"] == ROLE_KEY_VAULT_SECRETS_USER
    assert roles["keyVaultSecretsOfficer"] == ROLE_KEY_VAULT_SECRETS_OFFICER
    symbols = {r.symbol: r for r in bm.resources(RBAC)}
    vault = symbols["vault"]
    assert (vault.type, vault.existing, vault.body["name"]) == (VAULT_TYPE, True, "vaultName")
    reader = symbols["appVaultSecretsUser"]
    assert reader.body["scope"] == "vault"
    assert reader.condition == "grantVaultAccess"
    assert reader.body["properties"]["principalId"] == APP
    assert bm.render(reader.body["properties"]["roleDefinitionId"]).endswith(
        "roles.keyVaultSecretsUser, null, null)"
    )
    officer = symbols["operatorVaultSecretsOfficer"]
    assert officer.body["scope"] == "vault"
    assert bm.render(officer.condition) == "and(grantVaultAccess, !empty(operatorPrincipalId))"
    # main.bicep: the flag is the switch, and the role assignments wait for the vault.
    body, _ = bm.module(MAIN, "rbac")
    assert body["params"]["grantVaultAccess"] == VAULT_SWITCH
    assert body["params"]["vaultName"] == "vaultName"
    assert body["dependsOn"] == ["vault"]


def test_app_settings_named_in_vault_references_become_key_vault_references() -> None:
    site = bm.one(APP_FILE, "Microsoft.Web/sites")
    props = site.body["properties"]
    # The app has only its user-assigned identity; references would otherwise try a
    # system-assigned one.
    assert props["keyVaultReferenceIdentity"] == "identityId"
    args = list(props["siteConfig"]["appSettings"]["function"]["parameters"].values())
    assert args[1:] == ["vaultReferenceSettings"]
    assert bm.variable(APP_FILE, "vaultReferenceSettings")["config"]["value"] == (
        VAULT_REFERENCE_VALUE
    )
    assert bm.param_default(APP_FILE, VAULT_REFERENCES) == {}
    body, _ = bm.module(MAIN, "functionApp")
    assert body["params"]["vaultName"] == "vaultName"
    # Without the vault no reference is wired (it would point at a vault that does not exist).
    assert bm.render(body["params"][VAULT_REFERENCES]) == (
        f"conditional({VAULT_SWITCH}, {VAULT_REFERENCES}, {{}})"
    )
    settings = _vault_reference_settings("kv-abc123", {"HR_CLIENT_SECRET": "hr-client-secret"})
    assert settings == [
        {
            "name": "HR_CLIENT_SECRET",
            "value": "@Microsoft.KeyVault(VaultName=kv-abc123;SecretName=hr-client-secret)",
        }
    ]
    assert DOCUMENTED_REFERENCE.fullmatch(settings[0]["value"])


def test_the_settings_a_sources_config_names_are_wired_from_azd_to_the_app() -> None:
    """sources.yaml names the settings; VAULT_REFERENCES maps them to secrets; the app gets refs."""
    sources = {
        "sources": [
            {
                "name": "hr-api",
                "kind": "rest",
                "rest": {
                    "url": "https://hr.example.com/api/v1/workers",
                    "records": "$.value[*]",
                    "auth": {
                        "type": "oauth2_client_credentials",
                        "token_url": "https://login.example.com/oauth2/token",
                        "client_id_setting": "HR_CLIENT_ID",
                        "client_secret_setting": "HR_CLIENT_SECRET",
                    },
                },
                "schedule": "0 0 2 * * *",
                "mapping": "samples/mappings/default.yaml",
                "service_principal_id": "5b4e2a1c-9d3f-4e8a-b7c6-0f1e2d3c4b5a",
                "job_id": "API2AAD.0123456789abcdef0123456789abcdef.1111-2222",
            }
        ]
    }
    config = parse_sources(json.dumps(sources), path=ROOT / "CONNECTOR_SOURCES")
    auth = config.sources[0].rest.auth  # type: ignore[union-attr]
    named = {auth.client_id_setting, auth.client_secret_setting}
    references = {"HR_CLIENT_ID": "hr-client-id", "HR_CLIENT_SECRET": "hr-client-secret"}
    params = _resolve({"ENABLE_VAULT": "true", "VAULT_REFERENCES": json.dumps(references)})
    assert params[VAULT_REFERENCES] == references
    settings = _vault_reference_settings("kv-abc123", params[VAULT_REFERENCES])
    assert {s["name"] for s in settings} == named
    assert not named & BICEP_APP_SETTINGS
    for setting in settings:
        assert DOCUMENTED_REFERENCE.fullmatch(setting["value"]), setting


def test_unset_vault_references_leave_the_empty_default() -> None:
    raw = json.loads(PARAMETERS.read_text())["parameters"]
    assert raw[VAULT_REFERENCES] == {"value": "${VAULT_REFERENCES}"}
    assert VAULT_REFERENCES not in _resolve({})  # omitted: the template default {} applies
    assert bm.param_default(MAIN, VAULT_REFERENCES) == {}
    assert _resolve({"VAULT_REFERENCES": "{}"})[VAULT_REFERENCES] == {}


def test_deploy_doc_explains_the_vault_and_sources_doc_points_to_it() -> None:
    deploy = (ROOT / "docs" / "deploy.md").read_text()
    section = deploy.split("## Secrets for sql and rest sources\n", 1)[1].split("\n## ", 1)[0]
    for needle in (
        "azd env set ENABLE_VAULT true",
        "azd env set VAULT_REFERENCES '{",
        "az keyvault secret set",
        ROLE_KEY_VAULT_SECRETS_USER,
        ROLE_KEY_VAULT_SECRETS_OFFICER,
        "keyVaultReferenceIdentity",
        "@Microsoft.KeyVault(VaultName=myvault;SecretName=mysecret)",
    ):
        assert needle in section, needle
    # The azd example is valid JSON and maps setting names to secret names.
    example = re.search(r"azd env set VAULT_REFERENCES '(\{.*?\})'", section)
    assert example is not None
    assert all(isinstance(v, str) for v in json.loads(example.group(1)).values())
    sources = (ROOT / "docs" / "sources.md").read_text()
    assert "deploy.md#secrets-for-sql-and-rest-sources" in sources
