"""The names the deployment shares with the Functions code and the docs, in one place.

The infra tests assert the Bicep in ``infra/`` and the scripts in ``scripts/`` against these
constants; tests of the Functions app (and of the README settings table) can import this
module too, so that code == README == Bicep is checked against one list:

    sys.path.insert(0, str(ROOT / "tests" / "infra")); import infra_contract

Changing a name here without changing the Bicep (or the other way round) fails the tests.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
SCRIPTS = ROOT / "scripts"
GRAPH_EXTENSION_FILE = INFRA / "modules" / "graph-permissions.bicep"

# -- functions and triggers (function_app.py; docs/architecture.md) ------------------------
TRIGGER_CONNECTION = "HrDropStorage"
INGEST_FUNCTION = "ingest_extract"
INGEST_PATH = "incoming/{name}"
INGEST_SOURCE = "EventGrid"
RECONCILE_FUNCTION = "reconcile"
RECONCILE_SCHEDULE_BINDING = "%RECONCILE_SCHEDULE%"
HEALTH_FUNCTION = "health"
HEALTH_ROUTE = "health"
FUNCTION_NAMES = frozenset({INGEST_FUNCTION, RECONCILE_FUNCTION, HEALTH_FUNCTION})

# -- containers ----------------------------------------------------------------------------
DATA_CONTAINERS = ("incoming", "archive", "quarantine", "state", "reports", "approvals")
INCOMING_CONTAINER = "incoming"
#: Operators approve a held run by uploading a blob named ``<run id>`` here (optional JSON
#: body ``{"by": "name"}``); the timer pass releases the run (docs/deploy.md).
APPROVALS_CONTAINER = "approvals"
QUARANTINE_CONTAINER = "quarantine"
DEPLOYMENT_CONTAINER = "app-package"
DEADLETTER_CONTAINER = "deadletter"
#: Lifecycle expiry: prefix -> the storage-module parameter holding its age in days.
#: Everything that holds HR rows (personal data) expires; approval markers go with reports.
EXPIRY_BY_PREFIX = {
    "archive/": "retentionDays",
    "reports/": "retentionDays",
    f"{APPROVALS_CONTAINER}/": "retentionDays",
    f"{DEADLETTER_CONTAINER}/": "retentionDays",
    f"{QUARANTINE_CONTAINER}/": "quarantineRetentionDays",
}
EXPIRING_PREFIXES = frozenset(EXPIRY_BY_PREFIX)
# Prefixes that must never expire: delta baseline, work in progress, host storage, package.
NEVER_EXPIRE_PREFIXES = frozenset(
    {"state/", "incoming/", "azure-webjobs", "scm", f"{DEPLOYMENT_CONTAINER}/"}
)
DEFAULT_RETENTION_DAYS = 90
DEFAULT_QUARANTINE_RETENTION_DAYS = 30

# -- app settings (connector/functions/settings.py reads the connector ones) ------------
HOST_STORAGE_SETTINGS = (
    "AzureWebJobsStorage__credential",
    "AzureWebJobsStorage__clientId",
    "AzureWebJobsStorage__blobServiceUri",
    "AzureWebJobsStorage__queueServiceUri",
    "AzureWebJobsStorage__tableServiceUri",
)
TRIGGER_SETTINGS = (
    f"{TRIGGER_CONNECTION}__credential",
    f"{TRIGGER_CONNECTION}__clientId",
    f"{TRIGGER_CONNECTION}__blobServiceUri",
    f"{TRIGGER_CONNECTION}__queueServiceUri",
)
TELEMETRY_SETTINGS = (
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
)
CONNECTOR_SETTINGS = (
    "GRAPH_CLIENT_ID",
    "CONNECTOR_SOURCES",
    "RECONCILE_SCHEDULE",
    "CONNECTOR_DAILY_CALL_BUDGET",
)
#: Exactly the app settings the Bicep sets on the function app.
BICEP_APP_SETTINGS = frozenset(
    HOST_STORAGE_SETTINGS + TRIGGER_SETTINGS + TELEMETRY_SETTINGS + CONNECTOR_SETTINGS
)
#: Settings the deployment must not set: invalid on Flex Consumption, or shared-key /
#: local-only connections (shared keys are disabled on the account).
FORBIDDEN_SETTINGS = frozenset(
    {
        "FUNCTIONS_WORKER_RUNTIME",
        "FUNCTIONS_EXTENSION_VERSION",
        "FUNCTIONS_WORKER_PROCESS_COUNT",
        "WEBSITE_RUN_FROM_PACKAGE",
        "WEBSITE_CONTENTSHARE",
        "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
        "WEBSITE_NODE_DEFAULT_VERSION",
        "SCM_DO_BUILD_DURING_DEPLOYMENT",
        "ENABLE_ORYX_BUILD",
        "WEBSITE_TIME_ZONE",
        "AZURE_CLIENT_ID",
        "AzureWebJobsStorage",
        TRIGGER_CONNECTION,
        "APPINSIGHTS_INSTRUMENTATIONKEY",
        "CONNECTOR_EMULATOR_TOKEN",
        "CONNECTOR_EMULATOR_URL",
    }
)
#: siteConfig properties Flex Consumption rejects or replaces.
FORBIDDEN_SITE_CONFIG = frozenset(
    {
        "alwaysOn",
        "ftpsState",
        "functionAppScaleLimit",
        "preWarmedInstanceCount",
        "use32BitWorkerProcess",
        "linuxFxVersion",
        "netFrameworkVersion",
    }
)
DEFAULT_RECONCILE_SCHEDULE = "0 */15 * * * *"
DEFAULT_DAILY_CALL_BUDGET = 2000

# -- role assignments ------------------------------------------------------------------------
ROLE_STORAGE_BLOB_DATA_OWNER = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"
ROLE_STORAGE_BLOB_DATA_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
ROLE_STORAGE_BLOB_DATA_READER = "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"
ROLE_STORAGE_QUEUE_DATA_CONTRIBUTOR = "974c5e8b-45b9-4653-ba55-5f855dd0fb88"
ROLE_STORAGE_TABLE_DATA_CONTRIBUTOR = "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"
ROLE_MONITORING_METRICS_PUBLISHER = "3913510d-42f4-4e42-8a64-420c390055eb"
#: Key Vault data-plane roles (built-in roles, Security category, learn.microsoft.com
#: role-based-access-control/built-in-roles/security): "Read secret contents" (getSecret,
#: readMetadata) and "Perform any action on the secrets of a key vault, except manage
#: permissions". Both "only work for key vaults that use the 'Azure role-based access
#: control' permission model".
ROLE_KEY_VAULT_SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"
ROLE_KEY_VAULT_SECRETS_OFFICER = "b86a8fe4-44ce-4948-aee5-eccb2c155cd7"
ALLOWED_ROLES = frozenset(
    {
        ROLE_STORAGE_BLOB_DATA_OWNER,
        ROLE_STORAGE_BLOB_DATA_CONTRIBUTOR,
        ROLE_STORAGE_BLOB_DATA_READER,
        ROLE_STORAGE_QUEUE_DATA_CONTRIBUTOR,
        ROLE_STORAGE_TABLE_DATA_CONTRIBUTOR,
        ROLE_MONITORING_METRICS_PUBLISHER,
        ROLE_KEY_VAULT_SECRETS_USER,
        ROLE_KEY_VAULT_SECRETS_OFFICER,
    }
)
#: Broad or key-granting roles that must not appear anywhere in infra/.
FORBIDDEN_ROLES = frozenset(
    {
        "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",  # Owner
        "b24988ac-6180-42a0-ab88-20f7382dd24c",  # Contributor
        "17d1049b-9a84-46fb-8f53-869881c3d3ab",  # Storage Account Contributor (key access)
        "81a9662b-bebf-436f-a333-f67b29880f12",  # Storage Account Key Operator Service Role
        "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",  # User Access Administrator
        "00482a5a-887f-4fb3-b363-3b7fe8e74483",  # Key Vault Administrator (all data, keys too)
    }
)
# Principal kinds: the app's UAMI, the Event Grid topic's identity, the optional operator.
APP = "identityPrincipalId"
EVENT_GRID = "eventGridPrincipalId"
OPERATOR = "operatorPrincipalId"
#: Every role assignment as (principal, role, resource type of the scope, scope name).
#: Scope name None: the whole storage account / component.
EXPECTED_ROLE_ASSIGNMENTS = frozenset(
    {
        (APP, ROLE_STORAGE_BLOB_DATA_OWNER, "Microsoft.Storage/storageAccounts", None),
        (APP, ROLE_STORAGE_QUEUE_DATA_CONTRIBUTOR, "Microsoft.Storage/storageAccounts", None),
        (APP, ROLE_STORAGE_TABLE_DATA_CONTRIBUTOR, "Microsoft.Storage/storageAccounts", None),
        (APP, ROLE_MONITORING_METRICS_PUBLISHER, "Microsoft.Insights/components", None),
        (APP, ROLE_KEY_VAULT_SECRETS_USER, "Microsoft.KeyVault/vaults", None),
        (OPERATOR, ROLE_KEY_VAULT_SECRETS_OFFICER, "Microsoft.KeyVault/vaults", None),
        (
            EVENT_GRID,
            ROLE_STORAGE_BLOB_DATA_CONTRIBUTOR,
            "Microsoft.Storage/storageAccounts/blobServices/containers",
            "deadLetterContainerName",
        ),
        (
            OPERATOR,
            ROLE_STORAGE_BLOB_DATA_CONTRIBUTOR,
            "Microsoft.Storage/storageAccounts/blobServices/containers",
            "incoming",
        ),
        (
            OPERATOR,
            ROLE_STORAGE_BLOB_DATA_CONTRIBUTOR,
            "Microsoft.Storage/storageAccounts/blobServices/containers",
            APPROVALS_CONTAINER,
        ),
        (
            OPERATOR,
            ROLE_STORAGE_BLOB_DATA_READER,
            "Microsoft.Storage/storageAccounts/blobServices/containers",
            "reports",
        ),
        (
            OPERATOR,
            ROLE_STORAGE_BLOB_DATA_READER,
            "Microsoft.Storage/storageAccounts/blobServices/containers",
            "quarantine",
        ),
    }
)

#: Role assignments that exist only when the optional Key Vault is deployed (condition
#: ``grantVaultAccess``, and the operator's also needs an operator).
VAULT_ROLE_ASSIGNMENTS = frozenset(
    {
        (APP, ROLE_KEY_VAULT_SECRETS_USER, "Microsoft.KeyVault/vaults", None),
        (OPERATOR, ROLE_KEY_VAULT_SECRETS_OFFICER, "Microsoft.KeyVault/vaults", None),
    }
)

# -- optional Key Vault (infra/modules/keyvault.bicep) -----------------------------------------
VAULT_FILE = INFRA / "modules" / "keyvault.bicep"
#: main.bicep parameters: the switch (off by default) and the references to wire.
VAULT_SWITCH = "enableVault"
VAULT_REFERENCES = "vaultReferences"
#: The documented reference form, without a version (the latest secret version is used).
VAULT_REFERENCE_VALUE = "@Microsoft.KeyVault(VaultName=${vaultName};SecretName=${entry.value})"

# -- Microsoft Graph app roles of the managed identity --------------------------------------
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
GRAPH_APP_ROLES = (
    "SynchronizationData-User.Upload",
    "ProvisioningLog.Read.All",
    "AuditLog.Read.All",
    "Directory.Read.All",
    "Synchronization.Read.All",
)

# -- Event Grid ----------------------------------------------------------------------------
EVENT_TYPE = "Microsoft.Storage.BlobCreated"
SUBJECT_PREFIX = f"/blobServices/default/containers/{INCOMING_CONTAINER}/"

# -- alerts (connector/functions/telemetry.py writes these events) ----------------------
#: customDimensions key that carries the event name (OpenTelemetry log attributes).
ALERT_EVENT_PROPERTY = "connector.event"
#: Event names the log alerts match, by alert.
ALERT_EVENTS = {
    "records-failed": "records_failed",
    "runs-held": "run_held",
    "job-quarantined": "job_quarantined",
    "pull-failed": "pull_failed",
    "source-stale": "source_stale",
}
#: The OpenTelemetry counters behind the same events (customMetrics), for the docs.
ALERT_METRICS = (
    "connector.records.failed",
    "connector.runs.held",
    "connector.jobs.quarantined",
    "connector.pulls.failed",
    "connector.sources.stale",
)

# -- checkov ----------------------------------------------------------------------------------
#: Every inline skip, as (check id, checkov resource id). Adding one is a reviewed decision.
ALLOWED_CHECKOV_SKIPS = frozenset(
    {
        ("CKV_AZURE_35", "Microsoft.Storage/storageAccounts.storage"),
        ("CKV_AZURE_59", "Microsoft.Storage/storageAccounts.storage"),
        ("CKV_AZURE_206", "Microsoft.Storage/storageAccounts.storage"),
        ("CKV_AZURE_225", "Microsoft.Web/serverfarms.plan"),
        ("CKV_AZURE_78", "Microsoft.Web/sites.functionApp"),
        ("CKV_AZURE_222", "Microsoft.Web/sites.functionApp"),
        ("CKV_AZURE_17", "Microsoft.Web/sites.functionApp"),
        ("CKV_AZURE_212", "Microsoft.Web/sites.functionApp"),
        ("CKV_AZURE_213", "Microsoft.Web/sites.functionApp"),
        ("CKV_AZURE_109", "Microsoft.KeyVault/vaults.vault"),
        ("CKV_AZURE_189", "Microsoft.KeyVault/vaults.vault"),
    }
)
