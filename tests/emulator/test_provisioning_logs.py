"""Provisioning logs: delay, every supported filter per version, quoting, ordering, $top
and paging. Reads that would pass the documented 5 per 10 s are spaced with ``_paced``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connector.emulator import RunningEmulator

from .helpers import get_logs, record, upload


def _values(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    value: list[dict[str, Any]] = response.json()["value"]
    return value


def _ids(entries: list[dict[str, Any]]) -> list[str]:
    return [e["sourceIdentity"]["id"] for e in entries]


def _paced(
    emu: RunningEmulator, params: dict[str, str] | None = None, *, url: str | None = None
) -> Any:
    """A log read two seconds after the previous one, as a paced client sends them."""
    emu.advance(2)
    return get_logs(emu, params, url=url)


def _beta(emu: RunningEmulator, text: str) -> Any:
    return _paced(emu, {"$filter": text}, url=emu.base_url + "/beta/auditLogs/provisioning")


def test_entries_appear_only_after_the_log_delay(make_emulator: Any) -> None:
    emu = make_emulator(log_delay_seconds=300)
    upload(emu, record("1"))
    assert _values(get_logs(emu)) == []
    assert len(emu.logs()) == 1  # processed, just not written yet
    emu.advance(299)
    assert _values(get_logs(emu)) == []
    emu.advance(1)
    [entry] = _values(get_logs(emu))
    processed = datetime.fromisoformat(entry["activityDateTime"].replace("Z", "+00:00"))
    # activityDateTime is the processing time, not the time the entry became visible.
    assert emu.clock.now() - processed == timedelta(seconds=300)


def test_location_header_url_lists_the_jobs_entries(emu: RunningEmulator) -> None:
    from .helpers import bulk, post

    location = post(emu, bulk(record("1"), record("2"))).headers["location"]
    emu.wait_idle(5)
    assert sorted(_ids(_values(get_logs(emu, url=location)))) == ["1", "2"]


def test_filters_by_each_documented_field(emu: RunningEmulator) -> None:
    upload(emu, record("1"), record("2", upn="x@fabrikam.com"))
    emu.advance(10)
    upload(emu, record("1", title="Boss"))
    every = _values(get_logs(emu))
    assert len(every) == 3
    first = next(e for e in every if e["provisioningAction"] == "create")

    def query(text: str) -> list[str]:
        return sorted(_ids(_values(_paced(emu, {"$filter": text}))))

    assert query(f"jobId eq '{emu.job_id}'") == ["1", "1", "2"]
    assert query(f"jobid eq '{emu.job_id}'") == ["1", "1", "2"]  # Microsoft's own spelling
    assert query("jobId eq 'API2AAD.other'") == []
    assert query(f"cycleId eq '{first['cycleId']}'") == ["1", "2"]
    assert query(f"changeId eq '{first['changeId']}'") == [first["sourceIdentity"]["id"]]
    assert query(f"id eq '{first['id']}'") == [first["sourceIdentity"]["id"]]
    assert query("sourceIdentity/id eq '1'") == ["1", "1"]
    assert query("sourceIdentity/identityType eq 'User'") == ["1", "1", "2"]
    assert query("targetSystem/displayName eq 'Microsoft Entra ID'") == ["1", "1", "2"]
    assert query("provisioningAction eq 'update'") == ["1"]
    assert query("contains(sourceIdentity/id,'2')") == ["2"]
    assert query(
        f"jobId eq '{emu.job_id}' and provisioningAction eq 'create' and contains(jobId,'API2AAD.')"
    ) == ["1", "2"]


def test_status_filters_work_on_beta_only(emu: RunningEmulator) -> None:
    upload(emu, record("1"), record("2", upn="x@fabrikam.com"))

    def beta(text: str) -> list[str]:
        return sorted(_ids(_values(_beta(emu, text))))

    # beta provisioningStatusInfo: "Supports $filter (eq, contains)"; the deprecated
    # statusInfo/status is what Microsoft's Graph Explorer tutorial sends.
    assert beta("provisioningStatusInfo/status eq 'failure'") == ["2"]
    assert beta("statusInfo/status eq 'failure'") == ["2"]
    assert beta(f"jobid eq '{emu.job_id}' and provisioningStatusInfo/status eq 'success'") == ["1"]
    for text in ("provisioningStatusInfo/status eq 'failure'", "statusInfo/status eq 'failure'"):
        response = _paced(emu, {"$filter": text})  # v1.0 documents no status filter
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["code"] == "BadRequest"
        assert error["message"].startswith("Invalid filter clause")
        assert {"request-id", "date"} <= set(error["innerError"])


def test_activity_date_time_comparisons(emu: RunningEmulator) -> None:
    upload(emu, record("1"))
    t1 = emu.clock.now()
    emu.advance(60)
    upload(emu, record("2"))
    stamp = (t1 + timedelta(seconds=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    exact = t1.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"

    def query(text: str) -> list[str]:
        return sorted(_ids(_values(_paced(emu, {"$filter": text}))))

    assert query(f"activityDateTime gt {stamp}") == ["2"]
    assert query(f"activityDateTime lt {stamp}") == ["1"]
    assert query(f"activityDateTime gt {exact}") == ["2"]
    assert query(f"activityDateTime eq {exact}") == ["1"]
    # ge is not documented: v1.0 refuses it, beta accepts it (Microsoft's beta samples).
    assert sorted(_ids(_values(_beta(emu, f"activityDateTime ge {exact}")))) == ["1", "2"]


@pytest.mark.parametrize(
    "text",
    [
        "activityDateTime ge 2026-01-01T00:00:00Z",
        "activityDateTime le 2026-01-01T00:00:00Z",
        "activityDateTime ne 2026-01-01T00:00:00Z",
        "jobId ne 'a'",
        "durationInMilliseconds gt 5",
    ],
)
def test_undocumented_operators_are_400_on_v1(emu: RunningEmulator, text: str) -> None:
    response = get_logs(emu, {"$filter": text})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["message"].startswith("Invalid filter clause")


@pytest.mark.parametrize(
    "text", ["activityDateTime le 2026-01-01T00:00:00Z", "provisioningAction ne 'create'"]
)
def test_beta_is_not_more_lenient_than_its_samples(emu: RunningEmulator, text: str) -> None:
    assert _beta(emu, text).status_code == 400


def test_string_quoting_with_doubled_quotes(emu: RunningEmulator) -> None:
    upload(emu, record("O'Brien", upn="obrien@contoso.com"), record("OBrien", upn="o2@contoso.com"))
    response = get_logs(emu, {"$filter": "sourceIdentity/id eq 'O''Brien'"})
    assert _ids(_values(response)) == ["O'Brien"]
    # Values are case sensitive (documented: "The filters are all case sensitive").
    assert _values(get_logs(emu, {"$filter": "sourceIdentity/id eq 'o''brien'"})) == []


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("jobId eq 'a' or jobId eq 'b'", "'or' is not supported"),
        ("(jobId eq 'a')", "parentheses"),
        ("userPrincipalName eq 'x'", "cannot be filtered"),
        ("jobId gt 'a'", "operator 'gt' is not supported"),
        ("jobId eq a", "must be a quoted string"),
        ("jobId eq 'unterminated", "cannot read $filter"),
        ("activityDateTime gt yesterday", "not an ISO 8601 date-time"),
        ("jobId eq", "incomplete comparison"),
        ("jobId eq 'a' and", "incomplete comparison"),
        ("jobId eq 'a' jobId eq 'b'", "expected 'and'"),
        ("startswith(jobId,'a')", "function 'startswith' is not supported"),
    ],
)
def test_unsupported_filters_are_400(emu: RunningEmulator, text: str, fragment: str) -> None:
    response = get_logs(emu, {"$filter": text})
    assert response.status_code == 400, response.text
    assert fragment in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"$top": "0"}, "$top must be a positive integer"),
        ({"$top": "ten"}, "$top must be a positive integer"),
        ({"$orderby": "jobId desc"}, "$orderby"),
        ({"$orderby": "activityDateTime sideways"}, "asc or desc"),
        ({"$select": "id"}, "$select"),
        ({"$skiptoken": "garbage!!"}, "$skiptoken"),
    ],
)
def test_unsupported_query_options_are_400(
    emu: RunningEmulator, params: dict[str, str], fragment: str
) -> None:
    response = get_logs(emu, params)
    assert response.status_code == 400
    assert fragment in response.json()["error"]["message"]


def _seed_many(emu: RunningEmulator, count: int) -> None:
    for start in range(0, count, 50):
        upload(emu, *(record(f"{i:04d}") for i in range(start, min(start + 50, count))))
        emu.advance(1)


def _walk(emu: RunningEmulator, params: dict[str, str]) -> list[list[str]]:
    pages = []
    response = _paced(emu, params)
    while True:
        body = response.json()
        pages.append(_ids(body["value"]))
        link = body.get("@odata.nextLink")
        if link is None:
            return pages
        assert "$skiptoken=" in link
        assert link.startswith(emu.graph_url + "/auditLogs/provisioning?")
        response = _paced(emu, url=link)
        assert response.status_code == 200


def test_paging_with_top_covers_every_entry_once_in_order(emu: RunningEmulator) -> None:
    _seed_many(emu, 120)
    pages = _walk(emu, {"$top": "25", "$orderby": "activityDateTime asc"})
    assert [len(p) for p in pages] == [25, 25, 25, 25, 20]
    flat = [i for p in pages for i in p]
    assert flat == [f"{i:04d}" for i in range(120)]
    desc = [i for p in _walk(emu, {"$top": "50"}) for i in p]
    assert desc == list(reversed(flat))  # newest first by default


def test_page_boundary_exact_multiple_has_no_empty_last_page(emu: RunningEmulator) -> None:
    _seed_many(emu, 100)
    pages = _walk(emu, {"$top": "50", "$orderby": "activityDateTime asc"})
    assert [len(p) for p in pages] == [50, 50]
    single = _walk(emu, {"$top": "100"})
    assert [len(p) for p in single] == [100]


def test_default_page_size_and_top_clamp(make_emulator: Any) -> None:
    emu = make_emulator(logs_page_size=30, logs_max_top=40)
    _seed_many(emu, 90)
    assert [len(p) for p in _walk(emu, {})] == [30, 30, 30]
    assert [len(p) for p in _walk(emu, {"$top": "1000"})] == [40, 40, 10]


def test_paging_keeps_the_filter_and_is_stable_when_new_entries_arrive(
    emu: RunningEmulator,
) -> None:
    _seed_many(emu, 60)
    first = _paced(emu, {"$top": "20", "$filter": "provisioningAction eq 'create'"}).json()
    upload(emu, record("new"))  # newer than everything: does not shift older pages
    rest = _walk(emu, {"$skiptoken": first["@odata.nextLink"].split("$skiptoken=")[1]})
    seen = _ids(first["value"]) + [i for p in rest for i in p]
    assert len(seen) == 60
    assert len(set(seen)) == 60
    assert "new" not in seen


def test_entry_fields_are_the_documented_ones(emu: RunningEmulator) -> None:
    upload(emu, record("1"))
    [entry] = _values(get_logs(emu))
    assert entry["jobId"] == emu.job_id
    assert entry["servicePrincipal"]["id"] == emu.service_principal_id
    assert entry["tenantId"] == emu.config.tenant_id
    assert entry["sourceIdentity"]["identityType"] == "User"
    assert isinstance(entry["durationInMilliseconds"], int)
    assert [s["name"] for s in entry["provisioningSteps"]] == [
        "EntryImportAdd",
        "EntrySynchronizationAdd",
        "EntryExportAdd",
    ]
    assert [s["provisioningStepType"] for s in entry["provisioningSteps"]] == [
        "import",
        "matching",
        "export",
    ]
    assert entry["initiatedBy"] == {
        "id": "",
        "displayName": "Azure AD Provisioning Service",
        "initiatorType": "system",
    }
    assert entry["targetSystem"]["displayName"] == "Microsoft Entra ID"
    assert set(entry["targetSystem"]["details"]) == {
        "ApplicationId",
        "ServicePrincipalId",
        "ServicePrincipalDisplayName",
    }


def test_update_and_no_change_entries_use_documented_step_names(emu: RunningEmulator) -> None:
    upload(emu, record("1"))
    upload(emu, record("1", title="Boss"))
    upload(emu, record("1", title="Boss"))
    entries = _values(_paced(emu, {"$orderby": "activityDateTime asc"}))
    names = [[s["name"] for s in e["provisioningSteps"]] for e in entries]
    assert names[1] == ["EntryImport", "EntryExportUpdate"]  # list Example 1
    assert names[2] == ["EntryImport", "EntrySynchronizationSkipped"]
    assert entries[1]["provisioningSteps"][1]["details"] == {"ReportableIdentifier": "1"}
