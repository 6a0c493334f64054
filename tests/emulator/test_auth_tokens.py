"""Tokens: a missing, unknown or expired token is 401 (documented messages); a token
without the upload role is 403 on bulkUpload."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from connector.emulator import RunningEmulator

from .helpers import bulk, headers, post, record


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        (None, "Access token is empty."),
        ("Basic abc", "Access token is empty."),
        ("Bearer not-a-known-token", "Access token validation failure."),
    ],
)
def test_missing_or_unknown_token_is_401(
    emu: RunningEmulator, auth: str | None, message: str
) -> None:
    hdrs = headers(emu)
    hdrs.pop("Authorization")
    if auth:
        hdrs["Authorization"] = auth
    response = post(emu, bulk(record("1")), hdrs=hdrs)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert response.json()["error"]["message"] == message
    assert emu.queue_length() == 0


def test_expired_token_is_401_and_role_less_token_is_403(make_emulator: Any) -> None:
    emu = make_emulator(expired_tokens=["old"], tokens_without_upload_role=["reader"])
    expired = post(emu, bulk(record("1")), hdrs=headers(emu, Authorization="Bearer old"))
    assert expired.status_code == 401
    assert "expired" in expired.json()["error"]["message"]
    denied = post(emu, bulk(record("1")), hdrs=headers(emu, Authorization="Bearer reader"))
    assert denied.status_code == 403
    assert "SynchronizationData-User.Upload" in denied.json()["error"]["message"]
    # The role-less token may still read the logs (AuditLog/ProvisioningLog permission).
    logs = httpx.get(
        emu.graph_url + "/auditLogs/provisioning", headers={"Authorization": "Bearer reader"}
    )
    assert logs.status_code == 200
    assert emu.queue_length() == 0
