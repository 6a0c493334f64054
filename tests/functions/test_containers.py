"""The app creates its containers on its first invocation, so a walkthrough on a fresh
Azurite can drop a file right after calling ``/api/health`` (README, step 4)."""

from __future__ import annotations

from typing import Any

from azure.storage.blob import BlobServiceClient

from connector.functions import runtime as runtime_module
from connector.functions.dropzone import CONTAINERS, INCOMING


def test_the_first_health_call_on_fresh_storage_creates_every_container(
    make_world: Any, blob_service: BlobServiceClient
) -> None:
    with make_world() as world:
        runtime_module.reset_runtime()  # as a freshly started worker: no runtime yet
        for container in list(blob_service.list_containers()):
            blob_service.delete_container(container.name)
        try:
            status, _ = world.health()  # the first invocation builds the runtime
            names = {c.name for c in blob_service.list_containers()}
            assert set(CONTAINERS) <= names
            assert status in (200, 503)
            blob = blob_service.get_blob_client(INCOMING, "employees/hr-extract.csv")
            blob.upload_blob(b"employeeId\n1\n", overwrite=True)  # no ContainerNotFound
        finally:
            runtime_module.get_runtime().store.close()
            runtime_module.reset_runtime()
