// Event Grid system topic on the storage account. The subscription that delivers
// BlobCreated events to the function's blobs_extension webhook is created after code
// deployment by scripts/create-eventgrid-subscription.{sh,ps1} (azd postdeploy hook): the
// webhook key only exists once the host has started, and Event Grid validates the
// endpoint when the subscription is created.

@description('System topic name.')
param name string

@description('Azure region (must be the storage account\'s region).')
param location string

@description('Tags applied to the topic.')
param tags object

@description('Resource id of the storage account whose events the topic publishes.')
param storageAccountId string

resource systemTopic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: name
  location: location
  tags: tags
  // Own identity, used only to write dead-lettered events (Storage Blob Data Contributor
  // on the dead-letter container); the app's identity is not shared with Event Grid.
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    source: storageAccountId
    topicType: 'Microsoft.Storage.StorageAccounts'
  }
}

output id string = systemTopic.id
output name string = systemTopic.name
output principalId string = systemTopic.identity.principalId
