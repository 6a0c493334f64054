"""Builders for SCIM records and calls against a running emulator (loopback only)."""

from __future__ import annotations

import atexit
import copy
from typing import Any

import httpx
import orjson

from connector.emulator import RunningEmulator
from connector.scim import (
    BULK_REQUEST_SCHEMA,
    CONTENT_TYPE,
    CORE_USER_SCHEMA,
    ENTERPRISE_USER_SCHEMA,
)

SCHEMAS = [CORE_USER_SCHEMA, ENTERPRISE_USER_SCHEMA]

# One keep-alive client for every helper call: a fresh httpx.Client per call costs an
# SSL context each time, which would dominate these loopback tests.
CLIENT = httpx.Client(timeout=10)
atexit.register(CLIENT.close)


def record(
    ext: str,
    *,
    upn: str | None = "default",
    active: bool | None = True,
    manager: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A SCIM user as the connector sends it; ``extra`` keys are merged into ``data``."""
    data: dict[str, Any] = {"schemas": list(SCHEMAS), "externalId": ext}
    if upn == "default":
        upn = f"user{ext.lower()}@contoso.com"
    if upn is not None:
        data["userName"] = upn
    if active is not None:
        data["active"] = active
    if manager is not None:
        data[ENTERPRISE_USER_SCHEMA] = {"manager": {"value": manager}}
    data.update(extra)
    return data


def bulk(*records: dict[str, Any]) -> dict[str, Any]:
    return {
        "schemas": [BULK_REQUEST_SCHEMA],
        "Operations": [
            {"method": "POST", "bulkId": f"b{i}", "path": "/Users", "data": r}
            for i, r in enumerate(records)
        ],
        "failOnErrors": None,
    }


def headers(emu: RunningEmulator, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {emu.token}", "Content-Type": CONTENT_TYPE, **extra}


def post(
    emu: RunningEmulator,
    body: dict[str, Any] | bytes,
    *,
    client: httpx.Client | None = None,
    url: str | None = None,
    hdrs: dict[str, str] | None = None,
) -> httpx.Response:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    sender = client or CLIENT
    return sender.post(url or emu.endpoint_url, content=content, headers=hdrs or headers(emu))


def upload(emu: RunningEmulator, *records: dict[str, Any]) -> None:
    """POST records, expect 202, wait until processed."""
    response = post(emu, bulk(*records))
    assert response.status_code == 202, response.text
    emu.wait_idle(10)


def get_logs(
    emu: RunningEmulator, params: dict[str, str] | None = None, *, url: str | None = None
) -> httpx.Response:
    return CLIENT.get(
        url or emu.graph_url + "/auditLogs/provisioning",
        params=params,
        headers={"Authorization": f"Bearer {emu.token}"},
    )


def logs_for(emu: RunningEmulator, ext: str) -> list[dict[str, Any]]:
    """Log entries of one externalId, oldest first, through the public filter."""
    response = get_logs(
        emu, {"$filter": f"sourceIdentity/id eq '{ext}'", "$orderby": "activityDateTime asc"}
    )
    assert response.status_code == 200, response.text
    value: list[dict[str, Any]] = response.json()["value"]
    return value


def job_url(emu: RunningEmulator, suffix: str = "", *, job_id: str | None = None) -> str:
    """A job's URL: the default job, or ``job_id`` (a job of the same service principal)."""
    return (
        f"{emu.graph_url}/servicePrincipals/{emu.service_principal_id}"
        f"/synchronization/jobs/{job_id or emu.job_id}{suffix}"
    )


def job_status(emu: RunningEmulator) -> dict[str, object]:
    """The default job's ``status`` (Graph job API)."""
    response = httpx.get(job_url(emu), headers=auth(emu))
    assert response.status_code == 200
    status: dict[str, object] = response.json()["status"]
    return status


def queue_info(emu: RunningEmulator, job_id: str | None = None) -> dict[str, int]:
    """A job's counts from ``/_emulator/queue``: queued, failed and ignored operations."""
    jobs = CLIENT.get(f"{emu.base_url}/_emulator/queue").json()["jobs"]
    info: dict[str, int] = jobs[job_id or emu.job_id]
    return info


def auth(emu: RunningEmulator) -> dict[str, str]:
    return {"Authorization": f"Bearer {emu.token}"}


def register_custom_attributes(
    emu: RunningEmulator, targets: dict[str, str | None], *, job_id: str | None = None
) -> None:
    """Add custom source attributes to the job schema (CSV2SCIM's shape); each with a
    target name also gets an attribute mapping (the way the portal's mapping editor adds
    one), each with None stays unmapped."""
    url = job_url(emu, "/schema", job_id=job_id)
    schema = httpx.get(url, headers=auth(emu)).json()
    attrs = schema["directories"][0]["objects"][0]["attributes"]
    mappings = schema["synchronizationRules"][0]["objectMappings"][0]["attributeMappings"]
    template = copy.deepcopy(attrs[1])
    for name, target in targets.items():
        attrs.append({**template, "name": name, "type": "String", "required": False})
        if target is not None:
            mapping = copy.deepcopy(mappings[-1])
            mapping["source"].update(expression=f"[{name}]", name=name)
            mapping["targetAttributeName"] = target
            mappings.append(mapping)
    assert httpx.put(url, json=schema, headers=auth(emu)).status_code == 204
