"""What the Functions Python worker hands ``ingest_extract`` for a dropped blob.

With the SDK-type blob binding the host sends model binding data (the connection, the
container and blob names, no bytes), and the worker has the blob extension's converter
turn it into an ``azure.storage.blob.BlobClient`` built from the connection's app
settings. Tests, benchmarks and the fault campaign build the argument the same way, so
they exercise the function body exactly as the host calls it.
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any


def trigger_blob(name: str, connection: str = "HrDropStorage") -> Any:
    """The ``BlobClient`` the worker passes for ``incoming/<name>``."""
    from azurefunctions.extensions.base import Datum
    from azurefunctions.extensions.bindings.blob import BlobClient, BlobClientConverter

    content = {"Connection": connection, "ContainerName": "incoming", "BlobName": name}
    binding_data = SimpleNamespace(
        version="1.0",
        source="AzureStorageBlobs",
        content_type="application/json",
        content=json.dumps(content),
    )
    datum = Datum(value=binding_data, type="model_binding_data")
    return BlobClientConverter.decode(datum, trigger_metadata=None, pytype=BlobClient)
