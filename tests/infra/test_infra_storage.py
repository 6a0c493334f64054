"""Storage hardening, containers and the personal-data retention rule."""

from __future__ import annotations

import json

import bicep_model as bm
from infra_contract import (
    APPROVALS_CONTAINER,
    DATA_CONTAINERS,
    DEADLETTER_CONTAINER,
    DEFAULT_QUARANTINE_RETENTION_DAYS,
    DEFAULT_RETENTION_DAYS,
    DEPLOYMENT_CONTAINER,
    EXPIRY_BY_PREFIX,
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


def test_lifecycle_expires_every_personal_data_prefix_after_its_own_parameter() -> None:
    policy = bm.one(STORAGE, "Microsoft.Storage/storageAccounts/managementPolicies")
    assert policy.body["name"] == "default"
    rules = policy.body["properties"]["policy"]["rules"]
    names = [rule["name"] for rule in rules]
    assert len(names) == len(set(names)), f"duplicate lifecycle rule names: {names}"
    expiry: dict[str, str] = {}
    for rule in rules:
        assert rule["enabled"] is True
        assert rule["type"] == "Lifecycle"
        definition = rule["definition"]
        assert definition["filters"]["blobTypes"] == ["blockBlob"]
        actions = definition["actions"]
        days = actions["baseBlob"]["delete"]["daysAfterModificationGreaterThan"]
        assert actions["baseBlob"]["delete"] == {"daysAfterModificationGreaterThan": days}
        assert actions["snapshot"]["delete"] == {"daysAfterCreationGreaterThan": days}
        for prefix in definition["filters"]["prefixMatch"]:
            rendered = prefix.replace("${deadLetterContainerName}", DEADLETTER_CONTAINER)
            assert rendered not in expiry, f"{rendered} is matched by two rules"
            expiry[rendered] = days
    assert expiry == EXPIRY_BY_PREFIX
    for prefix in expiry:
        assert not any(prefix.startswith(p) for p in NEVER_EXPIRE_PREFIXES), prefix
        # Every expiring prefix is a whole container the deployment creates.
        container = prefix.rstrip("/")
        assert container in DATA_CONTAINERS or container == DEADLETTER_CONTAINER, prefix


def test_retention_is_a_parameter_defaulting_to_90_days() -> None:
    assert bm.param_default(STORAGE, "retentionDays") == DEFAULT_RETENTION_DAYS
    assert bm.param_default(MAIN, "retentionDays") == DEFAULT_RETENTION_DAYS
    assert bm.param_decorators(MAIN, "retentionDays")["min_value"] >= 1
    body, _ = bm.module(MAIN, "storage")
    assert body["params"]["retentionDays"] == "retentionDays"


def test_quarantine_expiry_is_its_own_parameter_defaulting_to_30_days() -> None:
    for path in (STORAGE, MAIN):
        assert bm.param_default(path, "quarantineRetentionDays") == (
            DEFAULT_QUARANTINE_RETENTION_DAYS
        )
        limits = bm.param_decorators(path, "quarantineRetentionDays")
        assert (limits["min_value"], limits["max_value"]) == (1, 3650)
    # Quarantined files were never applied: they should not outlive the archive by default.
    assert DEFAULT_QUARANTINE_RETENTION_DAYS <= DEFAULT_RETENTION_DAYS
    body, _ = bm.module(MAIN, "storage")
    assert body["params"]["quarantineRetentionDays"] == "quarantineRetentionDays"
    params_file = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert params_file["quarantineRetentionDays"]["value"] == (
        "${QUARANTINE_RETENTION_DAYS=" + str(DEFAULT_QUARANTINE_RETENTION_DAYS) + "}"
    )


def test_approvals_container_exists_for_held_run_markers() -> None:
    assert APPROVALS_CONTAINER in DATA_CONTAINERS
    assert APPROVALS_CONTAINER in bm.variable(STORAGE, "dataContainerNames")
    # Markers are small and processed within one timer interval; they go with the reports.
    assert EXPIRY_BY_PREFIX[f"{APPROVALS_CONTAINER}/"] == "retentionDays"


def test_monitoring_accepts_only_entra_authenticated_telemetry() -> None:
    monitoring = bm.module_path("monitoring.bicep")
    component = bm.one(monitoring, "Microsoft.Insights/components")
    assert component.body["properties"]["DisableLocalAuth"] is True
    assert bm.render(component.body["properties"]["WorkspaceResourceId"]) == "workspace.id"
    workspace = bm.one(monitoring, "Microsoft.OperationalInsights/workspaces")
    assert workspace.body["properties"]["features"]["disableLocalAuth"] is True
