#!/usr/bin/env pwsh
# Grant the connector's managed identity its Microsoft Graph application permissions.
#
# Use this when the deployment ran with GRANT_GRAPH_PERMISSIONS=false (the deployer lacked
# the directory role). Run it as an administrator who may grant app roles (Privileged Role
# Administrator, or Global Administrator). It grants exactly the roles
# infra/modules/graph-permissions.bicep grants and skips those already granted.
#
# Needs the Microsoft Graph PowerShell SDK: Install-Module Microsoft.Graph -Scope CurrentUser
#
# Usage: ./scripts/grant-graph-permissions.ps1 [-PrincipalId <object id>]
#   default: $env:MANAGED_IDENTITY_PRINCIPAL_ID (azd output; `azd env get-values`).
param(
    [string] $PrincipalId = $env:MANAGED_IDENTITY_PRINCIPAL_ID
)
$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest

$GraphAppId = '00000003-0000-0000-c000-000000000000'
$GraphAppRoles = @(
    'SynchronizationData-User.Upload'
    'ProvisioningLog.Read.All'
    'AuditLog.Read.All'
    'Directory.Read.All'
    'Synchronization.Read.All'
)

if ([string]::IsNullOrWhiteSpace($PrincipalId)) {
    Write-Error "Give the managed identity's principal (object) id with -PrincipalId or MANAGED_IDENTITY_PRINCIPAL_ID (azd env get-value MANAGED_IDENTITY_PRINCIPAL_ID)."
    exit 2
}
if ($PrincipalId -notmatch '^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$') {
    Write-Error "'$PrincipalId' is not an object id (GUID)."
    exit 2
}

Connect-MgGraph -Scopes 'Application.Read.All', 'AppRoleAssignment.ReadWrite.All' -NoWelcome

$graphSp = Get-MgServicePrincipal -Filter "appId eq '$GraphAppId'"
if (-not $graphSp) {
    Write-Error 'Microsoft Graph service principal not found in this tenant.'
    exit 1
}
$existing = @(Get-MgServicePrincipalAppRoleAssignment -ServicePrincipalId $PrincipalId -All |
        Where-Object { $_.ResourceId -eq $graphSp.Id } |
        ForEach-Object { $_.AppRoleId })

foreach ($roleName in $GraphAppRoles) {
    $role = $graphSp.AppRoles |
        Where-Object { $_.Value -eq $roleName -and $_.AllowedMemberTypes -contains 'Application' } |
        Select-Object -First 1
    if (-not $role) {
        Write-Error "Microsoft Graph has no application permission named $roleName."
        exit 1
    }
    if ($existing -contains $role.Id) {
        Write-Host "already granted: $roleName"
        continue
    }
    New-MgServicePrincipalAppRoleAssignment -ServicePrincipalId $PrincipalId `
        -PrincipalId $PrincipalId -ResourceId $graphSp.Id -AppRoleId $role.Id | Out-Null
    Write-Host "granted: $roleName"
}

Write-Host 'Done. New permissions can take a while to reach the identity''s tokens (see docs/deploy.md).'
