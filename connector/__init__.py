"""HR-to-Entra ID provisioning connector.

The public API is what ``__all__`` lists; everything else may change.
"""

from __future__ import annotations

from connector.errors import (
    ConfigError,
    ConnectorError,
    ExtractError,
    GraphError,
    MappingError,
)
from connector.scim import BulkOperation, BulkPayload, build_bulk_requests

__all__ = [
    "BulkOperation",
    "BulkPayload",
    "ConfigError",
    "ConnectorError",
    "ExtractError",
    "GraphError",
    "MappingError",
    "build_bulk_requests",
]

__version__ = "0.1.0"
