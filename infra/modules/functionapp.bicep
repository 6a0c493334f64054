// Flex Consumption (FC1) plan and the Python function app. Every connection is
// identity-based (one user-assigned identity); Flex-invalid settings such as
// FUNCTIONS_WORKER_RUNTIME, FUNCTIONS_EXTENSION_VERSION and WEBSITE_RUN_FROM_PACKAGE are
// deliberately absent (the runtime is set in functionAppConfig.runtime).

@description('Function app name (also the default host id; keep it at most 32 characters).')
@maxLength(32)
param name string

@description('Flex Consumption plan name.')
param planName string

@description('Azure region.')
param location string

@description('Tags applied to the plan and the app.')
param tags object

@description('azd service name the app is tagged with (azure.yaml services key).')
param azdServiceName string

@description('Resource id of the user-assigned managed identity.')
param identityId string

@description('Client id of the user-assigned managed identity.')
param identityClientId string

@description('Storage account name (host storage, trigger connection and deployment container).')
param storageAccountName string

@description('Container holding the deployment package.')
param deploymentContainerName string

@description('Application Insights component name.')
param appInsightsName string

@description('Python version of the Flex runtime.')
@allowed([
  '3.11'
  '3.12'
])
param pythonVersion string = '3.11'

@description('Memory per instance in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Upper bound on instances the app scales out to.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Sources configuration (the sources.yaml document as an object); app setting CONNECTOR_SOURCES holds it as JSON text, which the app reads as YAML.')
param connectorSources object

@description('NCRONTAB schedule (UTC) of the reconcile timer, app setting RECONCILE_SCHEDULE.')
param reconcileSchedule string

@description('bulkUpload calls allowed per rolling 24 hours (counted by the connector in hourly buckets), app setting CONNECTOR_DAILY_CALL_BUDGET.')
param dailyCallBudget int

@description('Name of the Key Vault the references in vaultReferences point to.')
param vaultName string

@description('App settings to make Key Vault references, as {"APP_SETTING_NAME": "secret-name"}: each becomes @Microsoft.KeyVault(VaultName=<vaultName>;SecretName=<secret-name>). Names of settings and secrets only, never values.')
param vaultReferences object = {}

// Key Vault references, documented form "@Microsoft.KeyVault(VaultName=myvault;SecretName=mysecret)"
// (Use Key Vault references as app settings, learn.microsoft.com, "Reference string"). No
// version: the platform uses the latest one and picks up a rotated secret within 24 hours.
var vaultReferenceSettings = [
  for entry in items(vaultReferences): {
    name: entry.key
    value: '@Microsoft.KeyVault(VaultName=${vaultName};SecretName=${entry.value})'
  }
]

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    // checkov:skip=CKV_AZURE_225:Zone redundancy is a dedicated-plan setting; not applicable to a Flex Consumption (FC1) plan in this template.
    reserved: true
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, {
    'azd-service-name': azdServiceName
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    // checkov:skip=CKV_AZURE_222:Event Grid delivers BlobCreated events to the app's public webhook endpoint (authenticated by the blobs_extension system key); without VNet integration the app must stay reachable.
    // checkov:skip=CKV_AZURE_17:Client certificates would make Event Grid webhook delivery fail (Event Grid presents no client certificate); HTTP functions use function keys.
    // checkov:skip=CKV_AZURE_212:Flex Consumption scales each function group from zero; a standing minimum of instances (always-ready) costs money and is not needed for file-driven and timer work.
    // checkov:skip=CKV_AZURE_78:Flex Consumption has no FTP/FTPS endpoint (ftpsState is not a valid Flex setting); Kudu basic-auth publishing is disabled below.
    // checkov:skip=CKV_AZURE_213:The only HTTP endpoint (/api/health) requires a function key, which the platform health-check probe does not send; Flex Consumption instances are managed by the platform.
    serverFarmId: plan.id
    httpsOnly: true
    publicNetworkAccess: 'Enabled'
    // Key Vault references "use the app's system-assigned identity by default"; this app has
    // only the user-assigned one, so name it (documented property keyVaultReferenceIdentity,
    // "the resource ID of the user-assigned identity").
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
      http20Enabled: true
      appSettings: concat([
        // Host storage, identity-based (blob: host keys, timer locks; queue: the blob
        // trigger's internal queue; table: host diagnostic events).
        {
          name: 'AzureWebJobsStorage__credential'
          value: 'managedidentity'
        }
        {
          name: 'AzureWebJobsStorage__clientId'
          value: identityClientId
        }
        {
          name: 'AzureWebJobsStorage__blobServiceUri'
          value: storage.properties.primaryEndpoints.blob
        }
        {
          name: 'AzureWebJobsStorage__queueServiceUri'
          value: storage.properties.primaryEndpoints.queue
        }
        {
          name: 'AzureWebJobsStorage__tableServiceUri'
          value: storage.properties.primaryEndpoints.table
        }
        // Blob-trigger connection HrDropStorage (connection= in function_app.py); a blob
        // trigger needs the queue URI as well as the blob URI.
        {
          name: 'HrDropStorage__credential'
          value: 'managedidentity'
        }
        {
          name: 'HrDropStorage__clientId'
          value: identityClientId
        }
        {
          name: 'HrDropStorage__blobServiceUri'
          value: storage.properties.primaryEndpoints.blob
        }
        {
          name: 'HrDropStorage__queueServiceUri'
          value: storage.properties.primaryEndpoints.queue
        }
        // Telemetry with Entra auth only (the component has local auth disabled).
        {
          name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
          value: appInsights.properties.ConnectionString
        }
        {
          name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
          value: 'ClientId=${identityClientId};Authorization=AAD'
        }
        // Connector settings (connector/functions/settings.py).
        {
          name: 'GRAPH_CLIENT_ID'
          value: identityClientId
        }
        {
          name: 'CONNECTOR_SOURCES'
          value: string(connectorSources)
        }
        {
          name: 'RECONCILE_SCHEDULE'
          value: reconcileSchedule
        }
        {
          name: 'CONNECTOR_DAILY_CALL_BUDGET'
          value: string(dailyCallBudget)
        }
      ], vaultReferenceSettings)
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: pythonVersion
      }
    }
  }
}

// Kudu basic-auth publishing is off; azd deploys with an Entra token.
resource scmBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'scm'
  properties: {
    allow: false
  }
}

output id string = functionApp.id
output name string = functionApp.name
output defaultHostName string = functionApp.properties.defaultHostName
