"""The connector's door to Microsoft Graph: endpoint, tokens, bulkUpload, logs and job APIs."""

from __future__ import annotations

from connector.graph.auth import (
    CredentialTokenProvider,
    StaticTokenProvider,
    TokenProvider,
    build_credential,
    check_token_destination,
)
from connector.graph.client import CallMetrics, Delivery, GraphClient, RetryPolicy
from connector.graph.endpoint import Cloud, ProvisioningEndpoint
from connector.graph.logs import LogQuery, log_entry
from connector.graph.models import ProvisioningObjectSummary, SynchronizationJob
from connector.graph.responses import error_for
from connector.graph.schema import SchemaUpdate

__all__ = [
    "CallMetrics",
    "Cloud",
    "CredentialTokenProvider",
    "Delivery",
    "GraphClient",
    "LogQuery",
    "ProvisioningEndpoint",
    "ProvisioningObjectSummary",
    "RetryPolicy",
    "SchemaUpdate",
    "StaticTokenProvider",
    "SynchronizationJob",
    "TokenProvider",
    "build_credential",
    "check_token_destination",
    "error_for",
    "log_entry",
]
