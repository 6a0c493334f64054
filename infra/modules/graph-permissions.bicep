// Microsoft Graph application permissions (app role assignments) for the function app's
// managed identity, through the Microsoft Graph Bicep extension (alias in bicepconfig.json).
// The deployer needs AppRoleAssignment.ReadWrite.All + Application.Read.All, in practice
// the Privileged Role Administrator directory role. Deployers without it set
// grantGraphPermissions=false in main.bicep and have an administrator run
// scripts/grant-graph-permissions.{sh,ps1}, which grant the same list.
//
// Schema changes (connector schema add) are an administrator action from the CLI; the
// function holds no permission to write the provisioning schema.

extension microsoftGraphV1

@description('Object id of the managed identity\'s service principal (principalId of the user-assigned identity).')
param principalId string

var graphAppId = '00000003-0000-0000-c000-000000000000'

// SynchronizationData-User.Upload: POST .../bulkUpload.
// AuditLog.Read.All and Directory.Read.All: GET /auditLogs/provisioning. Graph's
// "List provisioningObjectSummary" page: least privileged "AuditLog.Read.All and
// Directory.Read.All" (higher: "Not available").
// ProvisioningLog.Read.All: the same call per Microsoft's inbound provisioning setup guide
// ("grant-access": "ProvisioningLog.Read.All and SynchronizationData-User.Upload"); the two
// pages disagree, so both sets are granted (docs/deploy.md, "Microsoft Graph permissions").
// Synchronization.Read.All: read the provisioning job's status (quarantine, schedule).
var appRoleNames = [
  'SynchronizationData-User.Upload'
  'ProvisioningLog.Read.All'
  'AuditLog.Read.All'
  'Directory.Read.All'
  'Synchronization.Read.All'
]

resource graphServicePrincipal 'Microsoft.Graph/servicePrincipals@v1.0' existing = {
  appId: graphAppId
}

resource appRoleAssignments 'Microsoft.Graph/appRoleAssignedTo@v1.0' = [
  for roleName in appRoleNames: {
    principalId: principalId
    resourceId: graphServicePrincipal.id
    appRoleId: filter(graphServicePrincipal.appRoles, role => (role.value == roleName))[0].id
  }
]

output grantedAppRoles array = appRoleNames
