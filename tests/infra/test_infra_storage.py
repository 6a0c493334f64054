"""Storage hardening, containers and the personal-data retention rule."""

from __future__ import annotations

import bicep_model as bm
from infra_contract import (
    DATA_CONTAINERS,
    DEADLETTER_CONTAINER,
    DEFAULT_RETENTION_DAYS,
    DEPLOYMENT_CONTAINER,
    EXPIRING_PREFIXES,
    INFRA,
    NEVER_EXPIRE_PREFIXES,
)

STORAGE = bm.module_path("storage.bicep")
MAIN = INFRA / "main.bicep"


def test_storage_account_is_hardened() -> None:
    account = bm.one(STORAGE, "Microsoft.Storage/storageAccounts")
    assert account.body["kind"] == "StorageV2"
    props = account.body["properties"]
    assert props["allowSharedKeyAccess"] is False
    assert props["allowBlobPublicAccess"] is False
    assert props["minimumTlsVersion"] == "TLS1_2"
    assert props["supportsHttpsTrafficOnly"] is True
    assert props["defaultToOAuthAuthentication"] is True
    assert props["allowCrossTenantReplication"] is False
    assert props["encryption"]["requireInfrastructureEncryption"] is True
    # Event Grid and other trusted services must be let through if the firewall is closed.
    assert props["networkAcls"]["bypass"] == "AzureServices"


def test_blob_soft_delete_is_bounded() -> None:
    service = bm.one(STORAGE, "Microsoft.Storage/storageAccounts/blobServices")
    retention = service.body["properties"]["deleteRetentionPolicy"]
    assert retention["enabled"] is True
    assert retention["days"] == "softDeleteDays"
    decorators = bm.param_decorators(STORAGE, "softDeleteDays")
    assert decorators["max_value"] <= 365
    assert bm.param_default(STORAGE, "softDeleteDays") <= 14


def test_every_container_exists_and_is_private() -> None:
    assert tuple(bm.variable(STORAGE, "dataContainerNames")) == DATA_CONTAINERS
    assert bm.render(bm.variable(STORAGE, "containerNames")) == (
        "concat(dataContainerNames, [deploymentContainerName, deadLetterContainerName])"
    )
    assert bm.variable(MAIN, "deploymentContainerName") == DEPLOYMENT_CONTAINER
    assert bm.variable(MAIN, "deadLetterContainerName") == DEADLETTER_CONTAINER
    body, _ = bm.module(MAIN, "storage")
    assert body["params"]["deploymentContainerName"] == "deploymentContainerName"
    assert body["params"]["deadLetterContainerName"] == "deadLetterContainerName"
    container = bm.one(STORAGE, "Microsoft.Storage/storageAccounts/blobServices/containers")
    assert container.looped
    assert container.body["properties"]["publicAccess"] == "None"


def test_lifecycle_rule_expires_archive_and_reports_only() -> None:
    policy = bm.one(STORAGE, "Microsoft.Storage/storageAccounts/managementPolicies")
    assert policy.body["name"] == "default"
    rules = policy.body["properties"]["policy"]["rules"]
    prefixes: set[str] = set()
    for rule in rules:
        assert rule["enabled"] is True
        definition = rule["definition"]
        assert definition["filters"]["blobTypes"] == ["blockBlob"]
        rendered = {
            p.replace("${deadLetterContainerName}", DEADLETTER_CONTAINER)
            for p in definition["filters"]["prefixMatch"]
        }
        prefixes |= rendered
        delete = definition["actions"]["baseBlob"]["delete"]
        assert delete == {"daysAfterModificationGreaterThan": "retentionDays"}
    assert prefixes == EXPIRING_PREFIXES
    for prefix in prefixes:
        assert not any(prefix.startswith(p) for p in NEVER_EXPIRE_PREFIXES), prefix


def test_retention_is_a_parameter_defaulting_to_90_days() -> None:
    assert bm.param_default(STORAGE, "retentionDays") == DEFAULT_RETENTION_DAYS
    assert bm.param_default(MAIN, "retentionDays") == DEFAULT_RETENTION_DAYS
    assert bm.param_decorators(MAIN, "retentionDays")["min_value"] >= 1
    body, _ = bm.module(MAIN, "storage")
    assert body["params"]["retentionDays"] == "retentionDays"


def test_monitoring_accepts_only_entra_authenticated_telemetry() -> None:
    monitoring = bm.module_path("monitoring.bicep")
    component = bm.one(monitoring, "Microsoft.Insights/components")
    assert component.body["properties"]["DisableLocalAuth"] is True
    assert bm.render(component.body["properties"]["WorkspaceResourceId"]) == "workspace.id"
    workspace = bm.one(monitoring, "Microsoft.OperationalInsights/workspaces")
    assert workspace.body["properties"]["features"]["disableLocalAuth"] is True
