"""Job APIs: status, start/pause, restart purge semantics, schema GET/PUT."""

from __future__ import annotations

import re

import httpx
import pytest

from connector.emulator import RunningEmulator

from .helpers import auth, bulk, job_status, job_url, post, record, upload


def test_default_job_has_realistic_ids_and_is_listed(emu: RunningEmulator) -> None:
    assert re.fullmatch(
        r"API2AAD\.[0-9a-f]{32}\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        emu.job_id,
    )
    listed = httpx.get(
        f"{emu.graph_url}/servicePrincipals/{emu.service_principal_id}/synchronization/jobs",
        headers=auth(emu),
    ).json()["value"]
    assert [j["id"] for j in listed] == [emu.job_id]
    assert listed[0]["templateId"] == "API2AAD"
    assert job_status(emu)["code"] == "Active"


def test_job_calls_need_a_token_and_an_existing_job(emu: RunningEmulator) -> None:
    assert httpx.get(job_url(emu)).status_code == 401
    missing = job_url(emu).replace(emu.job_id, "API2AAD.nope")
    assert httpx.get(missing, headers=auth(emu)).status_code == 404
    assert httpx.post(missing + "/start", headers=auth(emu)).status_code == 404


def test_paused_job_accepts_but_does_not_process_until_started(emu: RunningEmulator) -> None:
    assert httpx.post(job_url(emu, "/pause"), headers=auth(emu)).status_code == 204
    assert job_status(emu)["code"] == "Paused"
    assert post(emu, bulk(record("1"), record("2"))).status_code == 202
    emu.wait_idle(5)  # nothing runnable: returns at once
    assert emu.queue_length() == 2
    assert emu.users() == {}
    assert emu.logs() == []
    assert httpx.post(job_url(emu, "/start"), headers=auth(emu)).status_code == 204
    emu.wait_idle(5)
    assert set(emu.users()) == {"1", "2"}
    assert job_status(emu)["code"] == "Active"


def test_restart_of_a_stopped_job_purges_the_bucket(emu: RunningEmulator) -> None:
    httpx.post(job_url(emu, "/pause"), headers=auth(emu))
    post(emu, bulk(record("1")))
    assert emu.queue_length() == 1
    body = {"criteria": {"resetScope": "Watermark, Escrows, QuarantineState"}}
    response = httpx.post(job_url(emu, "/restart"), json=body, headers=auth(emu))
    assert response.status_code == 204
    emu.wait_idle(5)
    assert emu.queue_length() == 0
    assert emu.users() == {}
    assert job_status(emu)["code"] == "Active"
    upload(emu, record("2"))
    assert set(emu.users()) == {"2"}


def test_restart_of_a_running_job_keeps_the_bucket(emu: RunningEmulator) -> None:
    post(emu, bulk(record("1")))
    assert httpx.post(job_url(emu, "/restart"), headers=auth(emu)).status_code == 204
    emu.wait_idle(5)
    assert set(emu.users()) == {"1"}


def test_restart_rejects_unknown_reset_scopes(emu: RunningEmulator) -> None:
    body = {"criteria": {"resetScope": "Watermark, Everything"}}
    response = httpx.post(job_url(emu, "/restart"), json=body, headers=auth(emu))
    assert response.status_code == 400
    assert "Everything" in response.json()["error"]["message"]


def test_schema_get_put_is_a_full_replace(emu: RunningEmulator) -> None:
    schema = httpx.get(job_url(emu, "/schema"), headers=auth(emu)).json()
    source = schema["directories"][0]["objects"][0]["attributes"]
    names = {a["name"] for a in source}
    assert {"externalId", "userName", 'emails[type eq "work"].value'} <= names
    assert "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager" in names
    source.append(
        {
            "name": "urn:ietf:params:scim:schemas:extension:contoso:1.0:User:HireDate",
            "type": "String",
            "mutability": "ReadWrite",
            "anchor": False,
            "caseExact": False,
            "flowNullValues": False,
            "multivalued": False,
            "required": False,
            "apiExpressions": [],
            "metadata": [],
            "referencedObjects": [],
        }
    )
    assert httpx.put(job_url(emu, "/schema"), json=schema, headers=auth(emu)).status_code == 204
    again = httpx.get(job_url(emu, "/schema"), headers=auth(emu)).json()
    assert again == schema
    # Full replace: a schema without the title attribute makes title unknown (ignored).
    trimmed = [a for a in source if a["name"] != "title"]
    schema["directories"][0]["objects"][0]["attributes"] = trimmed
    httpx.put(job_url(emu, "/schema"), json=schema, headers=auth(emu))
    upload(emu, record("1", title="Engineer"))
    assert "jobTitle" not in emu.users()["1"]["attributes"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"directories": []}, "directories must be a non-empty array"),
        ({"directories": [{"objects": []}]}, "objects must be a non-empty array"),
        ({"directories": [{"objects": [{"attributes": [{}]}]}]}, "attributes[0].name"),
    ],
)
def test_invalid_schema_put_is_400(emu: RunningEmulator, body: object, fragment: str) -> None:
    response = httpx.put(job_url(emu, "/schema"), json=body, headers=auth(emu))
    assert response.status_code == 400
    assert fragment in response.json()["error"]["message"]


def test_pascal_case_schema_from_powershell_is_understood(emu: RunningEmulator) -> None:
    body = {
        "Directories": [
            {
                "Objects": [
                    {
                        "Attributes": [
                            {"Name": "externalId"},
                            {"Name": "userName"},
                            {"Name": "title", "FlowNullValues": True},
                        ]
                    }
                ]
            }
        ],
        "SynchronizationRules": [
            {
                "ObjectMappings": [
                    {
                        "AttributeMappings": [
                            {
                                "Source": {"Name": "userName"},
                                "TargetAttributeName": "userPrincipalName",
                            }
                        ]
                    }
                ]
            }
        ],
    }
    assert httpx.put(job_url(emu, "/schema"), json=body, headers=auth(emu)).status_code == 204
    upload(emu, record("1", title="Engineer"))
    assert emu.users()["1"]["attributes"]["userPrincipalName"] == "user1@contoso.com"
    # title has no mapping in this schema: a known attribute is kept under its source name.
    assert emu.users()["1"]["attributes"]["title"] == "Engineer"
    upload(emu, record("1", title=None))
    assert "title" not in emu.users()["1"]["attributes"]
