"""HR-to-Entra ID provisioning connector.

The public API is what ``__all__`` lists; everything else may change. Names are loaded
on first use, so ``import connector`` stays cheap for an Azure Functions cold start.

    from connector import build_bulk_requests, iter_records, load_mapping

    mapping = load_mapping("samples/mappings/default.yaml")
    records = iter_records("samples/hr-extract.csv", mapping)
    for payload in build_bulk_requests(records.operations()):
        ...  # payload.body: the exact BulkRequest bytes
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from connector.config import SourcesConfig, load_sources
    from connector.errors import (
        ConfigError,
        ConnectorError,
        ExtractError,
        GraphError,
        MappingError,
        RunError,
        StateError,
        TooManyRejectedRowsError,
    )
    from connector.extract import ExtractProfile, RejectedRow, Row, read_extract
    from connector.graph import GraphClient, LogQuery, ProvisioningEndpoint
    from connector.mapping import Mapping, load_mapping
    from connector.records import MappedRecord, RecordStream, iter_records
    from connector.sample import churn_extract, generate_extract
    from connector.scim import BulkOperation, BulkPayload, build_bulk_requests, make_bulk_id
    from connector.state.local import LocalStateStore
    from connector.sync.engine import Engine
    from connector.sync.summary import RunSummary

_EXPORTS: dict[str, str] = {
    # extract → mapping → payloads
    "ExtractProfile": "connector.extract",
    "RejectedRow": "connector.extract",
    "Row": "connector.extract",
    "read_extract": "connector.extract",
    "Mapping": "connector.mapping",
    "load_mapping": "connector.mapping",
    "MappedRecord": "connector.records",
    "RecordStream": "connector.records",
    "iter_records": "connector.records",
    "BulkOperation": "connector.scim",
    "BulkPayload": "connector.scim",
    "build_bulk_requests": "connector.scim",
    "make_bulk_id": "connector.scim",
    "generate_extract": "connector.sample",
    "churn_extract": "connector.sample",
    # talking to Entra
    "GraphClient": "connector.graph",
    "LogQuery": "connector.graph",
    "ProvisioningEndpoint": "connector.graph",
    # the sync engine
    "SourcesConfig": "connector.config",
    "load_sources": "connector.config",
    "LocalStateStore": "connector.state.local",
    "Engine": "connector.sync.engine",
    "RunSummary": "connector.sync.summary",
    # errors
    "ConfigError": "connector.errors",
    "ConnectorError": "connector.errors",
    "ExtractError": "connector.errors",
    "GraphError": "connector.errors",
    "MappingError": "connector.errors",
    "RunError": "connector.errors",
    "StateError": "connector.errors",
    "TooManyRejectedRowsError": "connector.errors",
}

__all__ = [
    "BulkOperation",
    "BulkPayload",
    "ConfigError",
    "ConnectorError",
    "Engine",
    "ExtractError",
    "ExtractProfile",
    "GraphClient",
    "GraphError",
    "LocalStateStore",
    "LogQuery",
    "MappedRecord",
    "Mapping",
    "MappingError",
    "ProvisioningEndpoint",
    "RecordStream",
    "RejectedRow",
    "Row",
    "RunError",
    "RunSummary",
    "SourcesConfig",
    "StateError",
    "TooManyRejectedRowsError",
    "build_bulk_requests",
    "churn_extract",
    "generate_extract",
    "iter_records",
    "load_mapping",
    "load_sources",
    "make_bulk_id",
    "read_extract",
]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'connector' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
