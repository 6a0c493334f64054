#!/usr/bin/env pwsh
# azd postdeploy hook (Windows): subscribe the ingest_extract function to BlobCreated
# events of the incoming/ container. Same steps as create-eventgrid-subscription.sh.
#
# Why after deployment: Event Grid delivers to the function's blobs_extension webhook,
# whose key exists only once the code is deployed and the host has started, and Event Grid
# validates the endpoint when the subscription is created.
#
# Idempotent: the subscription is written with an ARM PUT (create or update).
# Needs: Azure CLI signed in (az login) and the azd environment values below.
$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest

$required = @(
    'AZURE_RESOURCE_GROUP', 'AZURE_FUNCTION_APP_NAME', 'AZURE_FUNCTION_APP_HOSTNAME',
    'AZURE_STORAGE_ACCOUNT_ID', 'EVENTGRID_SYSTEM_TOPIC_ID', 'INGEST_FUNCTION_NAME',
    'INCOMING_CONTAINER_NAME', 'DEADLETTER_CONTAINER_NAME'
)
foreach ($name in $required) {
    if ([string]::IsNullOrEmpty([Environment]::GetEnvironmentVariable($name))) {
        Write-Error "Environment value $name is not set; run 'azd provision' first or set it (see docs/deploy.md)."
        exit 2
    }
}

$resourceGroup = $env:AZURE_RESOURCE_GROUP
$appName = $env:AZURE_FUNCTION_APP_NAME
$subscriptionName = if ($env:EVENTGRID_SUBSCRIPTION_NAME) { $env:EVENTGRID_SUBSCRIPTION_NAME } else { 'incoming-blob-created' }
$eventType = 'Microsoft.Storage.BlobCreated'
$subjectPrefix = "/blobServices/default/containers/$($env:INCOMING_CONTAINER_NAME)/"
$maxDeliveryAttempts = 30
$eventTtlMinutes = 1440
$apiVersion = '2022-06-15'
$keyWaitAttempts = 30
$keyWaitSeconds = 10
$createAttempts = 3

Write-Host "Waiting for the blobs_extension system key of $appName (the host creates it on first start)..."
$blobsKey = ''
for ($attempt = 1; $attempt -le $keyWaitAttempts; $attempt++) {
    $blobsKey = (az functionapp keys list --resource-group $resourceGroup --name $appName `
            --query 'systemKeys.blobs_extension' --output tsv 2>$null)
    if ($LASTEXITCODE -eq 0 -and -not [string]::IsNullOrWhiteSpace($blobsKey)) { break }
    $blobsKey = ''
    Write-Host "  key not there yet (attempt $attempt/$keyWaitAttempts); retrying in $keyWaitSeconds s"
    Start-Sleep -Seconds $keyWaitSeconds
}
if ([string]::IsNullOrWhiteSpace($blobsKey)) {
    Write-Error "No blobs_extension key on $appName. Check that 'azd deploy' succeeded and that function $($env:INGEST_FUNCTION_NAME) is listed in the portal, then run this script again."
    exit 1
}
$blobsKey = $blobsKey.Trim()

$body = @{
    properties = @{
        destination = @{
            endpointType = 'WebHook'
            properties = @{
                endpointUrl = "https://$($env:AZURE_FUNCTION_APP_HOSTNAME)/runtime/webhooks/blobs?functionName=Host.Functions.$($env:INGEST_FUNCTION_NAME)&code=$blobsKey"
                maxEventsPerBatch = 1
                preferredBatchSizeInKilobytes = 64
            }
        }
        filter = @{
            includedEventTypes = @($eventType)
            subjectBeginsWith = $subjectPrefix
            isSubjectCaseSensitive = $false
        }
        eventDeliverySchema = 'EventGridSchema'
        retryPolicy = @{
            maxDeliveryAttempts = $maxDeliveryAttempts
            eventTimeToLiveInMinutes = $eventTtlMinutes
        }
        deadLetterWithResourceIdentity = @{
            identity = @{ type = 'SystemAssigned' }
            deadLetterDestination = @{
                endpointType = 'StorageBlob'
                properties = @{
                    resourceId = $env:AZURE_STORAGE_ACCOUNT_ID
                    blobContainerName = $env:DEADLETTER_CONTAINER_NAME
                }
            }
        }
    }
}

# The body holds the webhook key: write it to a private temp file, never print it.
$bodyFile = [System.IO.Path]::GetTempFileName()
try {
    $body | ConvertTo-Json -Depth 10 | Set-Content -Path $bodyFile -Encoding utf8NoBOM
    $url = "https://management.azure.com$($env:EVENTGRID_SYSTEM_TOPIC_ID)/eventSubscriptions/$($subscriptionName)?api-version=$apiVersion"
    $done = $false
    for ($attempt = 1; $attempt -le $createAttempts -and -not $done; $attempt++) {
        Write-Host "Writing Event Grid subscription $subscriptionName (attempt $attempt/$createAttempts)..."
        az rest --method put --url $url --body "@$bodyFile" --output none
        if ($LASTEXITCODE -eq 0) {
            $state = ''
            for ($i = 0; $i -lt 36; $i++) {
                $state = (az rest --method get --url $url --query 'properties.provisioningState' --output tsv)
                if ($state -in @('Succeeded', 'Failed', 'Canceled')) { break }
                Start-Sleep -Seconds 5
            }
            if ($state -eq 'Succeeded') {
                Write-Host "Event Grid subscription ${subscriptionName}: $eventType under $subjectPrefix -> $($env:INGEST_FUNCTION_NAME) (dead letters: $($env:DEADLETTER_CONTAINER_NAME)/)."
                $done = $true
                break
            }
            Write-Host "  subscription state: $state (webhook validation can fail while the app is cold)"
        }
        if ($attempt -lt $createAttempts) { Start-Sleep -Seconds 20 }
    }
    if (-not $done) {
        Write-Error 'The Event Grid subscription was not created. See docs/deploy.md, Troubleshooting: Event Grid subscription validation.'
        exit 1
    }
}
finally {
    Remove-Item -Path $bodyFile -Force -ErrorAction SilentlyContinue
}

if ($env:GRAPH_PERMISSIONS_GRANTED -and $env:GRAPH_PERMISSIONS_GRANTED -ne 'true') {
    Write-Host ''
    Write-Host 'Reminder: Microsoft Graph permissions were not granted by the deployment.'
    Write-Host "An administrator must run scripts/grant-graph-permissions.ps1 (or .sh) for principal $($env:MANAGED_IDENTITY_PRINCIPAL_ID)."
}
