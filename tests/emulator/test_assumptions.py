"""Behaviours listed under "Assumptions" in docs/emulator.md that other files do not cover:
limits shared by every job, the order of checks, ``externalId`` types, ``failOnErrors``,
several work entries, re-enabling, no automatic quarantine, one directory per tenant."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from connector.emulator import JobConfig, RunningEmulator

from .helpers import auth, bulk, headers, job_url, logs_for, post, record, upload


def _endpoint(sp: str, job: str, emu: RunningEmulator) -> str:
    return f"{emu.graph_url}/servicePrincipals/{sp}/synchronization/jobs/{job}/bulkUpload"


def _two_jobs(make_emulator: Any, **fields: Any) -> tuple[RunningEmulator, str, str]:
    first = JobConfig(service_principal_id="sp-a", job_id="API2AAD.a.1")
    second = JobConfig(service_principal_id="sp-b", job_id="API2AAD.b.2")
    emu = make_emulator(jobs=[first, second], **fields)
    return emu, _endpoint("sp-a", "API2AAD.a.1", emu), _endpoint("sp-b", "API2AAD.b.2", emu)


def test_rate_limit_is_shared_by_every_job(make_emulator: Any) -> None:
    emu, url_a, url_b = _two_jobs(make_emulator, rate_limit_calls=2, daily_quota=None)
    assert post(emu, bulk(record("1")), url=url_a).status_code == 202
    assert post(emu, bulk(record("2")), url=url_b).status_code == 202
    assert post(emu, bulk(record("3")), url=url_a).status_code == 429
    assert post(emu, bulk(record("4")), url=url_b).status_code == 429


def test_daily_quota_is_shared_by_every_job(make_emulator: Any) -> None:
    emu, url_a, url_b = _two_jobs(make_emulator, rate_limit_calls=None, daily_quota=3)
    statuses = [
        post(emu, bulk(record(str(i))), url=(url_a, url_b)[i % 2]).status_code for i in range(4)
    ]
    assert statuses == [202, 202, 202, 429]
    assert "daily quota" in post(emu, bulk(record("9")), url=url_b).json()["error"]["message"]


def test_directory_is_shared_by_every_job(make_emulator: Any) -> None:
    emu, url_a, url_b = _two_jobs(make_emulator)
    assert post(emu, bulk(record("7", title="A")), url=url_a).status_code == 202
    emu.wait_idle(10)
    assert post(emu, bulk(record("7", title="B")), url=url_b).status_code == 202
    emu.wait_idle(10)
    assert emu.users()["7"]["attributes"]["jobTitle"] == "B"
    assert [e["provisioningAction"] for e in logs_for(emu, "7")] == ["create", "update"]


def test_unknown_job_is_404_even_for_a_token_without_the_upload_role(make_emulator: Any) -> None:
    emu = make_emulator(tokens_without_upload_role=["reader"])
    url = emu.endpoint_url.replace(emu.job_id, "API2AAD.00.11")
    response = post(
        emu, bulk(record("1")), url=url, hdrs=headers(emu, Authorization="Bearer reader")
    )
    assert response.status_code == 404


def test_throttling_is_answered_before_the_content_type_check(make_emulator: Any) -> None:
    emu = make_emulator(rate_limit_calls=1)
    assert post(emu, bulk(record("1"))).status_code == 202
    wrong = headers(emu, **{"Content-Type": "application/json"})
    assert post(emu, bulk(record("2")), hdrs=wrong).status_code == 429
    emu.advance(5)
    assert post(emu, bulk(record("2")), hdrs=wrong).status_code == 400


def test_integer_external_id_is_accepted_as_its_decimal_text(emu: RunningEmulator) -> None:
    rec = record("1830")
    rec["externalId"] = 1830
    assert post(emu, bulk(rec)).status_code == 202
    emu.wait_idle(10)
    assert "1830" in emu.users()


@pytest.mark.parametrize("value", [18.5, True, None, ["1"], {"id": "1"}, "   "])
def test_external_id_must_be_a_non_empty_string(emu: RunningEmulator, value: object) -> None:
    rec = record("1")
    rec["externalId"] = value
    response = post(emu, bulk(rec))
    assert response.status_code == 400
    assert "externalId must be a non-empty string" in response.json()["error"]["message"]


@pytest.mark.parametrize("value", ["absent", None, True, False, 0, 5, "anything"])
def test_fail_on_errors_is_ignored(emu: RunningEmulator, value: object) -> None:
    body = bulk(record("1"), record("2", upn="user1@contoso.com"))
    if value == "absent":
        del body["failOnErrors"]
    else:
        body["failOnErrors"] = value
    assert post(emu, body).status_code == 202
    emu.wait_idle(10)
    # The second record fails (UPN taken); the first is applied all the same.
    assert set(emu.users()) == {"1"}
    assert logs_for(emu, "2")[0]["provisioningStatusInfo"]["status"] == "failure"


def test_among_several_work_entries_the_last_primary_wins_else_the_first(
    emu: RunningEmulator,
) -> None:
    upload(
        emu,
        record(
            "1",
            emails=[
                {"value": "a@contoso.com", "type": "work"},
                {"value": "b@contoso.com", "type": "work", "primary": True},
                {"value": "c@contoso.com", "type": "work"},
                {"value": "d@contoso.com", "type": "work", "primary": True},
            ],
        ),
        record(
            "2",
            emails=[
                {"value": "first@contoso.com", "type": "work"},
                {"value": "second@contoso.com", "type": "work"},
                {"value": "untyped@contoso.com", "primary": True},
            ],
        ),
    )
    users = emu.users()
    assert users["1"]["attributes"]["mail"] == "d@contoso.com"
    assert users["2"]["attributes"]["mail"] == "first@contoso.com"


def test_re_enabling_a_user_is_logged_as_update(emu: RunningEmulator) -> None:
    upload(emu, record("1", active=False))
    upload(emu, record("1", active=True))
    assert emu.users()["1"]["accountEnabled"] is True
    entries = logs_for(emu, "1")
    assert [e["provisioningAction"] for e in entries] == ["create", "update"]
    [change] = entries[1]["modifiedProperties"]
    assert (change["displayName"], change["oldValue"], change["newValue"]) == (
        "accountEnabled",
        "False",
        "True",
    )


def test_failures_never_quarantine_the_job(emu: RunningEmulator) -> None:
    bad = [record(str(i), upn=f"u{i}@unverified.example") for i in range(50)]
    for _ in range(4):
        assert post(emu, bulk(*bad)).status_code == 202
    emu.wait_idle(10)
    status = httpx.get(job_url(emu), headers=auth(emu)).json()["status"]
    assert status["code"] == "Active"
    assert status["quarantine"] is None
    assert status["lastExecution"]["state"] == "EntryLevelErrors"
    assert emu.users() == {}
