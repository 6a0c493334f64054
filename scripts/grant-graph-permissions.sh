#!/usr/bin/env bash
# Grant the connector's managed identity its Microsoft Graph application permissions.
#
# Use this when the deployment ran with GRANT_GRAPH_PERMISSIONS=false (the deployer lacked
# the directory role). Run it as an administrator who may grant app roles (Privileged Role
# Administrator, or Global Administrator), signed in with `az login`. It grants exactly
# the roles infra/modules/graph-permissions.bicep grants, and skips those already granted,
# so running it twice is harmless.
#
# Usage: scripts/grant-graph-permissions.sh [principal-object-id]
#   default principal: MANAGED_IDENTITY_PRINCIPAL_ID (azd output; `azd env get-values`).
set -euo pipefail

GRAPH_APP_ID="00000003-0000-0000-c000-000000000000"
GRAPH="https://graph.microsoft.com/v1.0"
GRAPH_APP_ROLES=(
  "SynchronizationData-User.Upload"
  "ProvisioningLog.Read.All"
  "AuditLog.Read.All"
  "Directory.Read.All"
  "Synchronization.Read.All"
)

principal_id="${1:-${MANAGED_IDENTITY_PRINCIPAL_ID:-}}"
if [ -z "$principal_id" ]; then
  echo "error: give the managed identity's principal (object) id as the first argument or in MANAGED_IDENTITY_PRINCIPAL_ID (azd env get-value MANAGED_IDENTITY_PRINCIPAL_ID)." >&2
  exit 2
fi
if ! [[ "$principal_id" =~ ^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$ ]]; then
  echo "error: '${principal_id}' is not an object id (GUID)." >&2
  exit 2
fi

graph_sp_id="$(az rest --method get \
  --url "${GRAPH}/servicePrincipals(appId='${GRAPH_APP_ID}')?\$select=id" \
  --query id --output tsv)"
if [ -z "$graph_sp_id" ]; then
  echo "error: Microsoft Graph service principal not found in this tenant." >&2
  exit 1
fi

existing="$(az rest --method get \
  --url "${GRAPH}/servicePrincipals/${principal_id}/appRoleAssignments" \
  --query "value[?resourceId=='${graph_sp_id}'].appRoleId" --output tsv)"

for role in "${GRAPH_APP_ROLES[@]}"; do
  role_id="$(az rest --method get \
    --url "${GRAPH}/servicePrincipals/${graph_sp_id}?\$select=appRoles" \
    --query "appRoles[?value=='${role}' && contains(allowedMemberTypes, 'Application')].id | [0]" \
    --output tsv)"
  if [ -z "$role_id" ]; then
    echo "error: Microsoft Graph has no application permission named ${role}." >&2
    exit 1
  fi
  if grep -qixF "$role_id" <<<"$existing"; then
    echo "already granted: ${role}"
    continue
  fi
  az rest --method post \
    --url "${GRAPH}/servicePrincipals/${principal_id}/appRoleAssignments" \
    --headers "Content-Type=application/json" \
    --body "{\"principalId\":\"${principal_id}\",\"resourceId\":\"${graph_sp_id}\",\"appRoleId\":\"${role_id}\"}" \
    --output none
  echo "granted: ${role}"
done

echo "Done. New permissions can take a while to reach the identity's tokens (see docs/deploy.md)."
