"""Provisioning logs (query building, paging, tolerant models) and job/schema APIs."""

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson
import pytest

from connector.errors import ConfigError, GraphError
from connector.graph.logs import LOG_PAGE_SIZE, LogQuery, odata_datetime, odata_string
from connector.graph.models import JobStatusCode, ProvisioningObjectSummary, ProvisioningStatus

from .helpers import JOB, make_client


def entry(n: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"act-{n}",
        "activityDateTime": "2026-01-01T10:00:00Z",
        "jobId": JOB,
        "cycleId": "cycle-1",
        "changeId": f"change-{n}",
        "provisioningAction": "create",
        "provisioningStatusInfo": {"status": "success", "errorInformation": None},
        "sourceIdentity": {"id": f"E{n:05d}", "displayName": "x", "identityType": "User"},
        **extra,
    }


def test_odata_quoting() -> None:
    assert odata_string("O'Brien") == "'O''Brien'"
    assert odata_string("''") == "''''''"
    assert odata_datetime(datetime(2026, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))) == (
        "2026-01-01T10:00:00Z"
    )
    assert odata_datetime(datetime(2026, 1, 1, 0, 0, 0, 5000, tzinfo=UTC)).endswith(".005000Z")
    with pytest.raises(ValueError, match="aware"):
        odata_datetime(datetime(2026, 1, 1))


def test_log_query_filter_sends_only_documented_operators() -> None:
    query = LogQuery(
        since=datetime(2026, 1, 1, tzinfo=UTC),
        status="failure",
        external_id="E'1 and 1 eq 1",
        top=50,
    )
    params = query.params(JOB)  # v1.0: gt one second earlier, no status clause
    assert params["$filter"] == (
        f"jobId eq '{JOB}' and activityDateTime gt 2025-12-31T23:59:59Z"
        " and sourceIdentity/id eq 'E''1 and 1 eq 1'"
    )
    assert " ge " not in params["$filter"]
    beta = query.params(JOB, "beta")["$filter"]
    assert "provisioningStatusInfo/status eq 'failure'" in beta  # documented on beta
    assert params["$top"] == "50"
    assert params["$orderby"] == "activityDateTime desc"
    assert LogQuery(job_id="other", order_by=None, top=None).params(JOB) == {
        "$filter": "jobId eq 'other'"
    }
    assert LogQuery().params()["$top"] == str(LOG_PAGE_SIZE)
    with pytest.raises(ValueError, match="top"):
        LogQuery(top=0).params()


def test_log_query_keeps_what_the_server_could_not_filter() -> None:
    since = datetime(2026, 1, 1, 10, 0, 0, tzinfo=UTC)
    query = LogQuery(since=since, status="Failure")

    def summary(when: str, status: str) -> ProvisioningObjectSummary:
        raw = entry(1, activityDateTime=when)
        raw["provisioningStatusInfo"] = {"status": status}
        return ProvisioningObjectSummary.model_validate(raw)

    assert query.keeps(summary("2026-01-01T10:00:00Z", "failure"))  # case-insensitive
    assert not query.keeps(summary("2026-01-01T10:00:00Z", "success"))
    assert not query.keeps(summary("2026-01-01T09:59:59.500Z", "failure"))  # the margin


def test_logs_follow_next_link_to_the_end_and_tolerate_unknown_values() -> None:
    seen: list[httpx.URL] = []
    base = "https://graph.microsoft.com/beta/auditLogs/provisioning"

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        token = parse_qs(urlsplit(str(request.url)).query).get("$skiptoken", ["0"])[0]
        page = int(token)
        value = [entry(page * 2 + i) for i in range(2)]
        if page == 1:
            value[0]["provisioningAction"] = "someNewAction"
            value[0]["provisioningStatusInfo"]["status"] = "unknownFutureValue"
            value[1]["brandNewProperty"] = {"nested": True}
        body: dict[str, Any] = {"value": value}
        if page < 2:
            body["@odata.nextLink"] = f"{base}?$skiptoken={page + 1}"
        return httpx.Response(200, json=body)

    client, _ = make_client(handler)

    async def main() -> list[ProvisioningObjectSummary]:
        async with client:
            return await client.provisioning_logs(LogQuery(top=2))

    entries = asyncio.run(main())
    assert [e.external_id for e in entries] == [f"E{i:05d}" for i in range(6)]
    assert entries[2].action == "someNewAction"
    assert entries[2].status == ProvisioningStatus.UNKNOWN_FUTURE_VALUE
    assert entries[3].model_extra == {"brandNewProperty": {"nested": True}}
    first = parse_qs(urlsplit(str(seen[0])).query)
    assert first["$filter"] == [f"jobId eq '{JOB}'"]
    assert len(seen) == 3
    assert "$filter" not in str(seen[1])  # the nextLink is followed as given


def test_deprecated_status_fields_are_read() -> None:
    legacy = ProvisioningObjectSummary.model_validate(
        {"id": "a", "action": "Update", "statusInfo": {"status": "failure"}}
    )
    assert legacy.action == "Update"
    assert legacy.status == "failure"
    assert legacy.error is None


JOB_BODY = {
    "id": JOB,
    "templateId": "API2AAD",
    "status": {
        "code": "Quarantine",
        "countSuccessiveCompleteFailures": 2,
        "quarantine": {
            "reason": "SomethingNew",
            "seriesCount": 3,
            "error": {"code": "X", "message": "no notification email", "tenantActionable": True},
        },
        "lastExecution": {"state": "EntryLevelErrors", "countExported": 10, "newCounter": 1},
        "futureField": 1,
    },
}


def test_job_status_tolerates_unknown_values() -> None:
    calls: list[tuple[str, str, bytes]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append((request.method, request.url.path, request.content))
        if request.method == "GET":
            return httpx.Response(200, json=JOB_BODY)
        return httpx.Response(204)

    client, _ = make_client(handler)

    async def main() -> Any:
        async with client:
            job = await client.get_job()
            await client.start_job()
            await client.pause_job()
            with pytest.raises(ConfigError, match="purges"):
                await client.restart_job(confirm=False)
            await client.restart_job(confirm=True)
            return job

    job = asyncio.run(main())
    assert job.code == JobStatusCode.QUARANTINE
    assert job.status is not None
    assert job.status.quarantine is not None
    assert job.status.quarantine.reason == "SomethingNew"
    assert job.status.last_execution is not None
    assert job.status.last_execution.count_exported == 10
    methods = [(m, p.rsplit("/", 1)[-1]) for m, p, _ in calls]
    assert methods == [("GET", JOB), ("POST", "start"), ("POST", "pause"), ("POST", "restart")]
    assert orjson.loads(calls[-1][2]) == {
        "criteria": {"resetScope": "Watermark, Escrows, QuarantineState"}
    }


SCHEMA = {
    "id": "schema",
    "directories": [
        {
            "name": "API",
            "objects": [
                {"name": "User", "attributes": [{"name": "externalId", "type": "String"}]},
            ],
        },
        {"name": "Azure Active Directory", "objects": [{"name": "User", "attributes": []}]},
    ],
    "synchronizationRules": [{"id": "rule", "objectMappings": []}],
}
NS = "urn:ietf:params:scim:schemas:extension:contoso:1.0:User"


def test_schema_add_is_idempotent_and_keeps_everything_else() -> None:
    state = {"schema": copy.deepcopy(SCHEMA)}
    puts: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json=state["schema"])
        assert request.method == "PUT"
        state["schema"] = orjson.loads(request.content)
        puts.append(state["schema"])
        return httpx.Response(204)

    client, _ = make_client(handler)
    names = [f"{NS}:HireDate", f"{NS}:CostCode", f"{NS}:HireDate"]

    async def main() -> Any:
        async with client:
            dry = await client.add_custom_attributes(names, dry_run=True)
            first = await client.add_custom_attributes(names)
            second = await client.add_custom_attributes(names)
            return dry, first, second

    dry, first, second = asyncio.run(main())
    assert dry.added == (f"{NS}:HireDate", f"{NS}:CostCode")
    assert not dry.written
    assert first.written
    assert first.added == dry.added
    assert second.added == ()
    assert second.present == dry.added
    assert not second.written
    assert len(puts) == 1
    attrs = puts[0]["directories"][0]["objects"][0]["attributes"]
    assert [a["name"] for a in attrs] == ["externalId", f"{NS}:HireDate", f"{NS}:CostCode"]
    assert attrs[1]["mutability"] == "ReadWrite"
    assert attrs[1]["type"] == "String"
    assert puts[0]["synchronizationRules"] == SCHEMA["synchronizationRules"]
    assert puts[0]["directories"][1] == SCHEMA["directories"][1]


@pytest.mark.parametrize("name", [f'"{NS}:HireDate"', f"{NS}:Hire Date", "HireDate", f"{NS}:"])
def test_schema_add_refuses_bad_names_before_any_call(name: str) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(200, json=SCHEMA)

    client, _ = make_client(handler)

    async def main() -> None:
        async with client:
            await client.add_custom_attributes([name])

    with pytest.raises(ConfigError, match="custom attribute name"):
        asyncio.run(main())
    assert calls == 0


def test_schema_without_directories_is_a_clear_error() -> None:
    client, _ = make_client(lambda r: httpx.Response(200, json={"id": "s"}))

    async def main() -> None:
        async with client:
            await client.add_custom_attributes([f"{NS}:A"])

    with pytest.raises(GraphError, match="no directories"):
        asyncio.run(main())


def test_logs_are_throttle_tolerant() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            return httpx.Response(429, headers={"Retry-After": "3"})
        return httpx.Response(200, json={"value": [entry(1)]})

    client, clock = make_client(handler)

    async def main() -> int:
        async with client:
            return len(await client.provisioning_logs())

    assert asyncio.run(main()) == 1
    assert 3.0 in clock.slept
