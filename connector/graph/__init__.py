"""The connector's door to Microsoft Graph: endpoint, tokens, bulkUpload, logs and job APIs."""

from __future__ import annotations

from connector.graph.auth import (
    CredentialTokenProvider,
    StaticTokenProvider,
    TokenProvider,
    build_credential,
    check_token_destination,
)
from connector.graph.client import (
    BatchOutcome,
    BatchStatus,
    DeferReason,
    Delivery,
    GraphClient,
    LogQuery,
    RejectedRecord,
    RetryPolicy,
    SchemaUpdate,
    UploadMetrics,
    UploadResult,
)
from connector.graph.endpoint import Cloud, ProvisioningEndpoint
from connector.graph.models import ProvisioningObjectSummary, SynchronizationJob

__all__ = [
    "BatchOutcome",
    "BatchStatus",
    "Cloud",
    "CredentialTokenProvider",
    "DeferReason",
    "Delivery",
    "GraphClient",
    "LogQuery",
    "ProvisioningEndpoint",
    "ProvisioningObjectSummary",
    "RejectedRecord",
    "RetryPolicy",
    "SchemaUpdate",
    "StaticTokenProvider",
    "SynchronizationJob",
    "TokenProvider",
    "UploadMetrics",
    "UploadResult",
    "build_credential",
    "check_token_destination",
]
