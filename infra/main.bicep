// HR-to-Entra ID provisioning connector: least-privilege Flex Consumption deployment.
// Deployed by `azd up` (subscription scope: the resource group is created here).
// See docs/deploy.md. No Bicep compiler runs in this repository's build; the checks in
// tests/infra/ (parse, checkov, assertions over the parsed templates) stand in for it.

targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('azd environment name; seeds resource names and the azd-env-name tag.')
param environmentName string

@minLength(1)
@description('Azure region for every resource.')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Resource group name; empty: rg-<environmentName>.')
param resourceGroupName string = ''

@description('Object id of the operator (by default the person running azd) who uploads extracts to incoming/, approves held runs in approvals/ and reads reports/ and quarantine/. Empty: no operator access.')
param principalId string = ''

@description('Principal type of principalId.')
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param principalType string = 'User'

@minLength(3)
@description('E-mail address that receives the connector\'s alerts.')
param alertEmail string

// An object, not a string: azd (1.23.4 and later) substitutes ${CONNECTOR_SOURCES} into an
// object parameter's value on its own and parses the result as JSON, so the JSON may hold
// quotes, backslashes and newlines. A string parameter gets the value pasted into the
// parameters file's JSON text unescaped, which breaks on the first quote. The function app
// module turns the object back into JSON text (valid YAML) for the app setting.
@description('Sources configuration as a JSON object, the same document as sources.yaml (app setting CONNECTOR_SOURCES, as JSON text). Holds endpoints and mapping choices, never secrets.')
param connectorSources object

@description('NCRONTAB schedule of the reconcile timer, in UTC (app setting RECONCILE_SCHEDULE).')
param reconcileSchedule string = '0 */15 * * * *'

@minValue(1)
@maxValue(1000000)
@description('bulkUpload calls allowed per rolling 24 hours, counted by the connector in hourly buckets (app setting CONNECTOR_DAILY_CALL_BUDGET): 2000 by default, 6000 with Microsoft Entra ID Governance licences.')
param dailyCallBudget int = 2000

@allowed([
  '3.11'
  '3.12'
])
@description('Python version of the Flex Consumption runtime.')
param pythonVersion string = '3.11'

@allowed([
  512
  2048
  4096
])
@description('Memory per Flex Consumption instance, in MB. A dropped file is read in 4 MiB chunks; a first load of 100,000 records peaks at 153 MB, 300,000 at 242 MB, 1,000,000 at 654 MB (measured, docs/benchmarks.md Blob ingest). Pick 512 for sources up to about 150,000 records, 2048 up to about 1,000,000, 4096 beyond or for several such sources at once (see docs/deploy.md).')
param instanceMemoryMB int = 2048

@minValue(1)
@maxValue(1000)
@description('Maximum number of instances the app scales out to.')
param maximumInstanceCount int = 40

@minValue(1)
@maxValue(3650)
@description('Days after which archived extracts, reports, approval markers and dead-lettered events are deleted (HR data is personal data; the owner decides).')
param retentionDays int = 90

@minValue(1)
@maxValue(3650)
@description('Days after which quarantined files (refused extracts, personal data) are deleted. Default 30: long enough to see why a file was refused and drop a fixed one; the archive and the reports, not the quarantine, record what was sent.')
param quarantineRetentionDays int = 30

@minValue(30)
@maxValue(730)
@description('Days Log Analytics keeps telemetry.')
param logRetentionDays int = 30

@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
])
@description('Storage account replication.')
param storageSkuName string = 'Standard_LRS'

@description('Grant the Microsoft Graph app roles with the Graph Bicep extension (needs Privileged Role Administrator). false: run scripts/grant-graph-permissions.(sh|ps1) as an administrator instead.')
param grantGraphPermissions bool = true

@description('Deploy a Key Vault for the credentials of sql and rest sources (RBAC authorization, soft delete and purge protection; the app identity may read its secrets). Off by default. See docs/deploy.md, "Secrets for sql and rest sources".')
param enableVault bool = false

// An object for the same reason as connectorSources (azd parses it as JSON). Names only: the
// secret values are stored in the vault by an operator, never passed to the deployment.
@description('App settings to wire as Key Vault references when enableVault is true, as {"APP_SETTING_NAME": "secret-name"}, e.g. {"HR_CLIENT_SECRET": "hr-client-secret"}: the app setting named in a source\'s *_setting key then holds @Microsoft.KeyVault(VaultName=<vault>;SecretName=<secret-name>). Ignored when enableVault is false.')
param vaultReferences object = {}

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
  workload: 'hr-entra-provisioning-connector'
}
var functionAppName = 'func-${resourceToken}'
// kv- + 13 characters: within Key Vault's 24. Computed here (not read from the conditional
// module's outputs) so the rbac and function app modules get a real name either way.
var vaultName = 'kv-${resourceToken}'
var deploymentContainerName = 'app-package'
var deadLetterContainerName = 'deadletter'
// Names shared with function_app.py (docs/architecture.md).
var ingestFunctionName = 'ingest_extract'
var incomingContainerName = 'incoming'

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: !empty(resourceGroupName) ? resourceGroupName : 'rg-${environmentName}'
  location: location
  tags: tags
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-${resourceToken}'
    location: location
    tags: tags
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: 'st${resourceToken}'
    location: location
    tags: tags
    skuName: storageSkuName
    deploymentContainerName: deploymentContainerName
    deadLetterContainerName: deadLetterContainerName
    retentionDays: retentionDays
    quarantineRetentionDays: quarantineRetentionDays
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: 'log-${resourceToken}'
    applicationInsightsName: 'appi-${resourceToken}'
    location: location
    tags: tags
    logRetentionDays: logRetentionDays
  }
}

module eventGrid 'modules/eventgrid.bicep' = {
  name: 'eventgrid'
  scope: rg
  params: {
    name: 'evgt-${resourceToken}'
    location: location
    tags: tags
    storageAccountId: storage.outputs.id
  }
}

module vault 'modules/keyvault.bicep' = if (enableVault) {
  name: 'keyvault'
  scope: rg
  params: {
    name: vaultName
    location: location
    tags: tags
  }
}

module rbac 'modules/rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    appInsightsName: monitoring.outputs.appInsightsName
    identityPrincipalId: identity.outputs.principalId
    eventGridPrincipalId: eventGrid.outputs.principalId
    deadLetterContainerName: deadLetterContainerName
    operatorPrincipalId: principalId
    operatorPrincipalType: principalType
    vaultName: vaultName
    grantVaultAccess: enableVault
  }
  // The vault role assignments need the vault in place (a no-op when it is not deployed).
  dependsOn: [
    vault
  ]
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  scope: rg
  params: {
    name: functionAppName
    planName: 'plan-${resourceToken}'
    location: location
    tags: tags
    azdServiceName: 'connector'
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerName: deploymentContainerName
    appInsightsName: monitoring.outputs.appInsightsName
    pythonVersion: pythonVersion
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    connectorSources: connectorSources
    reconcileSchedule: reconcileSchedule
    dailyCallBudget: dailyCallBudget
    vaultName: vaultName
    vaultReferences: enableVault ? vaultReferences : {}
  }
  // The host must find its storage and telemetry roles in place when it first starts.
  dependsOn: [
    rbac
  ]
}

module alerts 'modules/alerts.bicep' = {
  name: 'alerts'
  scope: rg
  params: {
    namePrefix: 'alert-${resourceToken}'
    tags: tags
    alertEmail: alertEmail
    location: location
    appInsightsId: monitoring.outputs.appInsightsId
    systemTopicId: eventGrid.outputs.id
    blobEndpoint: storage.outputs.blobEndpoint
  }
}

module graphPermissions 'modules/graph-permissions.bicep' = if (grantGraphPermissions) {
  name: 'graph-permissions'
  scope: rg
  params: {
    principalId: identity.outputs.principalId
  }
}

// Outputs become azd environment values read by the hook scripts and docs/deploy.md.
// None of them is a secret.
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output AZURE_FUNCTION_APP_HOSTNAME string = functionApp.outputs.defaultHostName
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_STORAGE_ACCOUNT_ID string = storage.outputs.id
output AZURE_STORAGE_BLOB_ENDPOINT string = storage.outputs.blobEndpoint
output EVENTGRID_SYSTEM_TOPIC_NAME string = eventGrid.outputs.name
output EVENTGRID_SYSTEM_TOPIC_ID string = eventGrid.outputs.id
output INGEST_FUNCTION_NAME string = ingestFunctionName
output INCOMING_CONTAINER_NAME string = incomingContainerName
output DEADLETTER_CONTAINER_NAME string = deadLetterContainerName
output MANAGED_IDENTITY_PRINCIPAL_ID string = identity.outputs.principalId
output MANAGED_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.appInsightsName
output GRAPH_PERMISSIONS_GRANTED bool = grantGraphPermissions
// Empty when the vault is not deployed.
output VAULT_NAME string = enableVault ? vaultName : ''
