// Least-privilege data-plane role assignments. Every assignment is scoped to the storage
// account, one container, or the Application Insights component; none to the resource group.

@description('Storage account name.')
param storageAccountName string

@description('Application Insights component name.')
param appInsightsName string

@description('Principal (object) id of the app\'s user-assigned managed identity.')
param identityPrincipalId string

@description('Principal id of the Event Grid system topic\'s identity (dead-letter writer).')
param eventGridPrincipalId string

@description('Container Event Grid dead-letters into.')
param deadLetterContainerName string

@description('Optional operator (the person running azd, or a group) who uploads extracts, approves held runs and reads reports. Empty: no assignment.')
param operatorPrincipalId string = ''

@description('Principal type of operatorPrincipalId.')
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param operatorPrincipalType string = 'User'

@description('Name of the optional Key Vault (modules/keyvault.bicep), passed whether or not it is deployed; used only when grantVaultAccess is true.')
param vaultName string

@description('Whether the Key Vault is deployed: the app identity then reads its secrets (Key Vault Secrets User) and the operator manages them (Key Vault Secrets Officer), both scoped to the vault.')
param grantVaultAccess bool = false

// Built-in role definition ids (https://learn.microsoft.com/azure/role-based-access-control/built-in-roles).
var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  storageBlobDataReader: '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
  // Data-plane roles of a vault with Azure RBAC authorization ("Only works for key vaults
  // that use the 'Azure role-based access control' permission model"; built-in roles,
  // Security category): read secret values / manage secrets.
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
  keyVaultSecretsOfficer: 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' existing = {
  parent: storage
  name: 'default'
}

resource incomingContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: blobService
  name: 'incoming'
}

resource reportsContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: blobService
  name: 'reports'
}

resource quarantineContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: blobService
  name: 'quarantine'
}

resource approvalsContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: blobService
  name: 'approvals'
}

resource deadLetterContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: blobService
  name: deadLetterContainerName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

// Always declared (an existing reference deploys nothing); the assignments on it are
// conditional. main.bicep passes the vault's real name either way, so no resource id with an
// empty segment is ever built, even for a skipped assignment.
resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: vaultName
}

// Host storage (timer locks, host keys, deployment package) and the blob trigger read and
// write blobs and manage the receipts/lease blobs: Storage Blob Data Owner.
resource appBlobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, identityPrincipalId, roles.storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// The Event Grid blob trigger queues each event on an internal queue (and poison queue).
resource appQueueContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, identityPrincipalId, roles.storageQueueDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor)
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// The connector code uses no tables. The Functions host does: it writes diagnostic events
// to tables in AzureWebJobsStorage (AZFD0003 when it cannot), and those tables are created
// per month by the host, so the role cannot be narrowed to one table.
resource appTableContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, identityPrincipalId, roles.storageTableDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataContributor)
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Entra-authenticated telemetry ingestion (APPLICATIONINSIGHTS_AUTHENTICATION_STRING).
resource appMetricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, identityPrincipalId, roles.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Event Grid writes undeliverable events into the dead-letter container with its own
// (system-assigned) identity, because shared keys are disabled on the account.
resource eventGridDeadLetterWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(deadLetterContainer.id, eventGridPrincipalId, roles.storageBlobDataContributor)
  scope: deadLetterContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
    principalId: eventGridPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// The operator drops extracts into incoming/ ...
resource operatorIncomingWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(operatorPrincipalId)) {
  name: guid(incomingContainer.id, operatorPrincipalId, roles.storageBlobDataContributor)
  scope: incomingContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
  }
}

// ... approves held runs by uploading a marker blob named after the run id into approvals/
// (the app's timer pass releases the run; docs/deploy.md, "Approve or discard a held run").
// Contributor on this one container only: the operator cannot touch state/ (journals,
// delta baseline) nor archive/ ...
resource operatorApprovalsWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(operatorPrincipalId)) {
  name: guid(approvalsContainer.id, operatorPrincipalId, roles.storageBlobDataContributor)
  scope: approvalsContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
  }
}

// ... reads run reports (the held reason of a held run is in its report) ...
resource operatorReportsReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(operatorPrincipalId)) {
  name: guid(reportsContainer.id, operatorPrincipalId, roles.storageBlobDataReader)
  scope: reportsContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataReader)
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
  }
}

// ... and quarantined files, to see why a file was set aside.
resource operatorQuarantineReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(operatorPrincipalId)) {
  name: guid(quarantineContainer.id, operatorPrincipalId, roles.storageBlobDataReader)
  scope: quarantineContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataReader)
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
  }
}

// The platform resolves the app's Key Vault references (@Microsoft.KeyVault(...) app
// settings) with the app's user-assigned identity (keyVaultReferenceIdentity in
// functionapp.bicep): "Assign the Key Vault Secrets User role to the managed identity"
// (Use Key Vault references as app settings, learn.microsoft.com). Read only, this vault only.
resource appVaultSecretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (grantVaultAccess) {
  name: guid(vault.id, identityPrincipalId, roles.keyVaultSecretsUser)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// The operator stores and rotates the sources' credentials (`az keyvault secret set`,
// docs/deploy.md "Secrets for sql and rest sources"). This vault only.
resource operatorVaultSecretsOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (grantVaultAccess && !empty(operatorPrincipalId)) {
  name: guid(vault.id, operatorPrincipalId, roles.keyVaultSecretsOfficer)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsOfficer)
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
  }
}
