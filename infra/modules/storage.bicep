// Storage account for the HR drop zone, the Functions host and the Flex deployment package.
// Shared keys are off: every caller (host, trigger, deployment, Event Grid dead-lettering,
// operators) authenticates with Entra ID.

@description('Storage account name (3-24 lowercase letters and digits).')
@minLength(3)
@maxLength(24)
param name string

@description('Azure region.')
param location string

@description('Tags applied to the account.')
param tags object

@description('Replication SKU.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
])
param skuName string = 'Standard_LRS'

@description('Container that holds the Flex Consumption deployment package.')
param deploymentContainerName string

@description('Container Event Grid writes undeliverable events to.')
param deadLetterContainerName string

@description('Days after which blobs under archive/, reports/ and approvals/ (and dead-lettered events) are deleted.')
@minValue(1)
@maxValue(3650)
param retentionDays int = 90

@description('Days after which quarantined files (and their .error.json notes) are deleted.')
@minValue(1)
@maxValue(3650)
param quarantineRetentionDays int = 30

@description('Days a deleted blob or container stays recoverable (soft delete).')
@minValue(1)
@maxValue(365)
param softDeleteDays int = 7

// Containers the connector code uses (names fixed by docs/architecture.md), plus the
// deployment and dead-letter containers.
var dataContainerNames = [
  'incoming'
  'archive'
  'quarantine'
  'state'
  'reports'
  'approvals'
]
var containerNames = concat(dataContainerNames, [
  deploymentContainerName
  deadLetterContainerName
])

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    // checkov:skip=CKV_AZURE_35:The Flex Consumption app runs without VNet integration and reaches storage over its public endpoint; access needs Entra ID (shared keys are disabled). Private endpoints are the documented hardening option.
    // checkov:skip=CKV_AZURE_59:Same reason as CKV_AZURE_35: without VNet integration the app and Event Grid need the public endpoint; every request is Entra-authenticated.
    // checkov:skip=CKV_AZURE_206:Replication is the owner's choice (parameter skuName); the account holds transient HR drops and reproducible reports, and personal data should not be copied to a second region by default.
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: {
          enabled: true
          keyType: 'Account'
        }
        queue: {
          enabled: true
          keyType: 'Account'
        }
        table: {
          enabled: true
          keyType: 'Account'
        }
        file: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: softDeleteDays
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: softDeleteDays
    }
  }
}

resource containers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [
  for containerName in containerNames: {
    parent: blobService
    name: containerName
    properties: {
      publicAccess: 'None'
    }
  }
]

// HR extracts are personal data, so everything that holds HR rows expires:
// - archive/ and reports/ after retentionDays (the owner's decision, default 90), with the
//   operators' approval markers in approvals/ (a run's approval is kept in its journal, so
//   the marker is not needed once processed) and Event Grid's dead letters;
// - quarantine/ after quarantineRetentionDays (default 30): a quarantined file was never
//   applied, so it is not evidence of what was sent (the archive and the reports are); it is
//   kept only long enough for an operator to see why it was set aside and drop a fixed file.
// state/ holds the delta baseline and the run journals and must not expire; incoming/ is
// work in progress and is emptied by the app.
resource lifecycle 'Microsoft.Storage/storageAccounts/managementPolicies@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    policy: {
      rules: [
        {
          name: 'expire-archive-and-reports'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: [
                'blockBlob'
              ]
              prefixMatch: [
                'archive/'
                'reports/'
                'approvals/'
                '${deadLetterContainerName}/'
              ]
            }
            actions: {
              baseBlob: {
                delete: {
                  daysAfterModificationGreaterThan: retentionDays
                }
              }
              snapshot: {
                delete: {
                  daysAfterCreationGreaterThan: retentionDays
                }
              }
            }
          }
        }
        {
          name: 'expire-quarantine'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: [
                'blockBlob'
              ]
              prefixMatch: [
                'quarantine/'
              ]
            }
            actions: {
              baseBlob: {
                delete: {
                  daysAfterModificationGreaterThan: quarantineRetentionDays
                }
              }
              snapshot: {
                delete: {
                  daysAfterCreationGreaterThan: quarantineRetentionDays
                }
              }
            }
          }
        }
      ]
    }
  }
  dependsOn: [
    containers
  ]
}

output id string = storage.id
output name string = storage.name
output blobEndpoint string = storage.properties.primaryEndpoints.blob
output queueEndpoint string = storage.properties.primaryEndpoints.queue
output tableEndpoint string = storage.properties.primaryEndpoints.table
output containerNames array = containerNames
