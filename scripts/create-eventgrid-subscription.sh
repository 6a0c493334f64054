#!/bin/sh
# azd postdeploy hook: subscribe the ingest_extract function to BlobCreated events of the
# incoming/ container.
#
# Why after deployment: Event Grid delivers to the function's blobs_extension webhook,
# whose key exists only once the code is deployed and the host has started, and Event Grid
# validates the endpoint when the subscription is created.
#
# Idempotent: the subscription is written with an ARM PUT (create or update), so running
# the script again (or after a key rotation) brings it back to the state below.
#
# Needs: Azure CLI signed in (az login) with rights on the resource group, and the azd
# environment values below (azd passes them to hooks; otherwise `azd env get-values`).
# POSIX sh on purpose: azd runs posix hooks with `shell: sh`.
set -eu

require() {
  eval "value=\${$1:-}"
  if [ -z "$value" ]; then
    echo "error: environment value $1 is not set; run 'azd provision' first or export it (see docs/deploy.md)." >&2
    exit 2
  fi
}

for v in AZURE_RESOURCE_GROUP AZURE_FUNCTION_APP_NAME AZURE_FUNCTION_APP_HOSTNAME \
  AZURE_STORAGE_ACCOUNT_ID EVENTGRID_SYSTEM_TOPIC_ID INGEST_FUNCTION_NAME \
  INCOMING_CONTAINER_NAME DEADLETTER_CONTAINER_NAME; do
  require "$v"
done

SUBSCRIPTION_NAME="${EVENTGRID_SUBSCRIPTION_NAME:-incoming-blob-created}"
EVENT_TYPE="Microsoft.Storage.BlobCreated"
SUBJECT_PREFIX="/blobServices/default/containers/${INCOMING_CONTAINER_NAME}/"
MAX_DELIVERY_ATTEMPTS=30
EVENT_TTL_MINUTES=1440
API_VERSION="2022-06-15"
KEY_WAIT_ATTEMPTS="${KEY_WAIT_ATTEMPTS:-30}"
KEY_WAIT_SECONDS="${KEY_WAIT_SECONDS:-10}"
CREATE_ATTEMPTS="${CREATE_ATTEMPTS:-3}"
CREATE_RETRY_SECONDS="${CREATE_RETRY_SECONDS:-20}"
POLL_SECONDS="${POLL_SECONDS:-5}"

echo "Waiting for the blobs_extension system key of ${AZURE_FUNCTION_APP_NAME} (the host creates it on first start)..."
blobs_key=""
for attempt in $(seq 1 "$KEY_WAIT_ATTEMPTS"); do
  blobs_key="$(az functionapp keys list \
    --resource-group "$AZURE_RESOURCE_GROUP" \
    --name "$AZURE_FUNCTION_APP_NAME" \
    --query "systemKeys.blobs_extension" --output tsv 2>/dev/null || true)"
  if [ -n "$blobs_key" ]; then
    break
  fi
  echo "  key not there yet (attempt ${attempt}/${KEY_WAIT_ATTEMPTS}); retrying in ${KEY_WAIT_SECONDS}s"
  sleep "$KEY_WAIT_SECONDS"
done
if [ -z "$blobs_key" ]; then
  echo "error: no blobs_extension key on ${AZURE_FUNCTION_APP_NAME}. Check that 'azd deploy' succeeded and that function ${INGEST_FUNCTION_NAME} is listed in the portal, then run this script again." >&2
  exit 1
fi

# The request body holds the webhook key: keep it in a private temp file, never on the
# command line or in the output.
umask 077
body_file="$(mktemp)"
trap 'rm -f "$body_file"' EXIT
cat >"$body_file" <<JSON
{
  "properties": {
    "destination": {
      "endpointType": "WebHook",
      "properties": {
        "endpointUrl": "https://${AZURE_FUNCTION_APP_HOSTNAME}/runtime/webhooks/blobs?functionName=Host.Functions.${INGEST_FUNCTION_NAME}&code=${blobs_key}",
        "maxEventsPerBatch": 1,
        "preferredBatchSizeInKilobytes": 64
      }
    },
    "filter": {
      "includedEventTypes": ["${EVENT_TYPE}"],
      "subjectBeginsWith": "${SUBJECT_PREFIX}",
      "isSubjectCaseSensitive": false
    },
    "eventDeliverySchema": "EventGridSchema",
    "retryPolicy": {
      "maxDeliveryAttempts": ${MAX_DELIVERY_ATTEMPTS},
      "eventTimeToLiveInMinutes": ${EVENT_TTL_MINUTES}
    },
    "deadLetterWithResourceIdentity": {
      "identity": { "type": "SystemAssigned" },
      "deadLetterDestination": {
        "endpointType": "StorageBlob",
        "properties": {
          "resourceId": "${AZURE_STORAGE_ACCOUNT_ID}",
          "blobContainerName": "${DEADLETTER_CONTAINER_NAME}"
        }
      }
    }
  }
}
JSON

url="https://management.azure.com${EVENTGRID_SYSTEM_TOPIC_ID}/eventSubscriptions/${SUBSCRIPTION_NAME}?api-version=${API_VERSION}"

for attempt in $(seq 1 "$CREATE_ATTEMPTS"); do
  echo "Writing Event Grid subscription ${SUBSCRIPTION_NAME} (attempt ${attempt}/${CREATE_ATTEMPTS})..."
  if az rest --method put --url "$url" --body "@${body_file}" --output none; then
    state=""
    for _ in $(seq 1 36); do
      state="$(az rest --method get --url "$url" --query "properties.provisioningState" --output tsv || true)"
      case "$state" in
        Succeeded | Failed | Canceled) break ;;
      esac
      sleep "$POLL_SECONDS"
    done
    if [ "$state" = "Succeeded" ]; then
      echo "Event Grid subscription ${SUBSCRIPTION_NAME}: ${EVENT_TYPE} under ${SUBJECT_PREFIX} -> ${INGEST_FUNCTION_NAME} (dead letters: ${DEADLETTER_CONTAINER_NAME}/)."
      break
    fi
    echo "  subscription state: ${state:-unknown} (webhook validation can fail while the app is cold)"
  fi
  if [ "$attempt" -eq "$CREATE_ATTEMPTS" ]; then
    echo "error: the Event Grid subscription was not created. See docs/deploy.md, Troubleshooting: Event Grid subscription validation." >&2
    exit 1
  fi
  sleep "$CREATE_RETRY_SECONDS"
done

if [ "${GRAPH_PERMISSIONS_GRANTED:-true}" != "true" ]; then
  echo
  echo "Reminder: Microsoft Graph permissions were not granted by the deployment."
  echo "An administrator must run scripts/grant-graph-permissions.sh (or .ps1) for principal ${MANAGED_IDENTITY_PRINCIPAL_ID:-<MANAGED_IDENTITY_PRINCIPAL_ID>}."
fi
