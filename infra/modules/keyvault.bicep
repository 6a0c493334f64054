// Optional Key Vault for the credentials of sql and rest sources (docs/deploy.md, "Secrets for
// sql and rest sources"). Deployed only when main.bicep's enableVault is true.
//
// The template creates no secrets and takes no secret values: an operator stores them with
// `az keyvault secret set`, and the function app reads them through Key Vault references in
// its app settings (functionapp.bicep), resolved by the platform with the app's user-assigned
// identity. Access is Azure RBAC only (no access policies): the app identity holds "Key Vault
// Secrets User" on this vault (rbac.bicep), nothing wider.

@description('Key Vault name (3-24 letters, digits and hyphens, starting with a letter; globally unique).')
@minLength(3)
@maxLength(24)
param name string

@description('Azure region.')
param location string

@description('Tags applied to the vault.')
param tags object

@description('Days a deleted vault or secret stays recoverable (soft delete; 7-90). Purge protection is on, so a deleted vault keeps its name for this long.')
@minValue(7)
@maxValue(90)
param softDeleteRetentionDays int = 90

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    // checkov:skip=CKV_AZURE_109:The Flex Consumption app runs without VNet integration, so the platform resolves Key Vault references over the public endpoint (as for the storage account); every request needs an Entra token and the Key Vault Secrets User role on this vault.
    // checkov:skip=CKV_AZURE_189:Same reason as CKV_AZURE_109: without VNet integration and private endpoints the app needs the public endpoint; access is Entra-authenticated and RBAC-authorised. Private endpoints are the documented hardening option.
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    // Azure RBAC only: role assignments on this vault decide who reads secrets; the
    // accessPolicies list stays empty.
    enableRbacAuthorization: true
    accessPolicies: []
    enableSoftDelete: true
    softDeleteRetentionInDays: softDeleteRetentionDays
    enablePurgeProtection: true
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

output id string = vault.id
output name string = vault.name
output uri string = vault.properties.vaultUri
