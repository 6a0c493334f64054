"""Per-record outcomes: create, update, disable, skip, UPN rules, manager references,
work-only multi-values, null handling and schema-unknown attributes."""

from __future__ import annotations

from typing import Any

import httpx

from connector.emulator import EmulatorConfig, EmulatorState, RunningEmulator
from connector.emulator.job import JobRuntime
from connector.emulator.operation import UPN_CONFLICT_CODE, process_operation
from connector.scim import ENTERPRISE_USER_SCHEMA

from .helpers import auth, job_url, logs_for, record, register_custom_attributes, upload


def _status(entry: dict[str, Any]) -> str:
    status: str = entry["provisioningStatusInfo"]["status"]
    return status


def _error_code(entry: dict[str, Any]) -> str | None:
    err = entry["provisioningStatusInfo"]["errorInformation"]
    return None if err is None else str(err["errorCode"])


def test_create_then_update_then_skip_then_disable(emu: RunningEmulator) -> None:
    upload(emu, record("100", displayName="Ada Lovelace", title="Engineer"))
    user = emu.users()["100"]
    assert user["accountEnabled"] is True
    assert user["attributes"]["userPrincipalName"] == "user100@contoso.com"
    assert user["attributes"]["jobTitle"] == "Engineer"
    assert user["attributes"]["employeeId"] == "100"

    upload(emu, record("100", displayName="Ada Lovelace", title="Principal Engineer"))
    assert emu.users()["100"]["attributes"]["jobTitle"] == "Principal Engineer"

    upload(emu, record("100", displayName="Ada Lovelace", title="Principal Engineer"))
    upload(emu, {"schemas": record("x")["schemas"], "externalId": "100", "active": False})
    assert emu.users()["100"]["accountEnabled"] is False

    entries = logs_for(emu, "100")
    assert [(e["provisioningAction"], _status(e)) for e in entries] == [
        ("create", "success"),
        ("update", "success"),
        ("other", "skipped"),
        ("disable", "success"),
    ]
    update = entries[1]["modifiedProperties"]
    assert update == [
        {"displayName": "jobTitle", "oldValue": "Engineer", "newValue": "Principal Engineer"}
    ]
    assert entries[3]["modifiedProperties"] == [
        {"displayName": "accountEnabled", "oldValue": "True", "newValue": "False"}
    ]
    assert {e["sourceIdentity"]["id"] for e in entries} == {"100"}
    assert {e["targetIdentity"]["id"] for e in entries} == {user["id"]}


def test_update_without_active_disables_the_user_and_logs_it(emu: RunningEmulator) -> None:
    # Issue #16 (a user's report, not a Microsoft doc): omitting active on an update
    # disables the account; the other omitted attributes are left as they are.
    upload(emu, record("7", active=True, title="Clerk"))
    upload(emu, record("7", active=None, displayName="Kim"))
    user = emu.users()["7"]
    assert user["accountEnabled"] is False
    assert user["attributes"]["jobTitle"] == "Clerk"
    entry = logs_for(emu, "7")[-1]
    assert (entry["provisioningAction"], _status(entry)) == ("disable", "success")
    assert {"displayName": "accountEnabled", "oldValue": "True", "newValue": "False"} in entry[
        "modifiedProperties"
    ]
    # Sending active again re-enables the account.
    upload(emu, record("7", active=True, displayName="Kim"))
    assert emu.users()["7"]["accountEnabled"] is True


def test_update_without_active_on_a_disabled_user_changes_nothing_more(
    emu: RunningEmulator,
) -> None:
    upload(emu, record("8", active=False, title="Clerk"))
    upload(emu, record("8", active=None, title="Clerk"))
    assert emu.users()["8"]["accountEnabled"] is False
    entry = logs_for(emu, "8")[-1]
    assert (entry["provisioningAction"], _status(entry)) == ("other", "skipped")


def test_update_without_active_keeps_the_account_state_when_switched_off(
    make_emulator: Any,
) -> None:
    emu = make_emulator(disable_on_update_without_active=False)
    upload(emu, record("7", active=False))
    upload(emu, record("7", active=None, title="Clerk"))
    assert emu.users()["7"]["accountEnabled"] is False
    upload(emu, record("7", active=True, title="Clerk"))
    upload(emu, record("7", active=None, title="Senior Clerk"))
    assert emu.users()["7"]["accountEnabled"] is True
    actions = [e["provisioningAction"] for e in logs_for(emu, "7")]
    assert actions == ["create", "update", "update", "update"]


def test_new_user_without_active_follows_the_configured_default(make_emulator: Any) -> None:
    strict = make_emulator()
    upload(strict, record("1", active=None))
    assert strict.users()["1"]["accountEnabled"] is False
    lenient = make_emulator(new_user_enabled_without_active=True)
    upload(lenient, record("1", active=None))
    assert lenient.users()["1"]["accountEnabled"] is True


def test_upn_already_used_by_another_user_fails_the_record(emu: RunningEmulator) -> None:
    upload(emu, record("1", upn="jdoe@contoso.com"))
    upload(emu, record("2", upn="JDoe@contoso.com"))
    assert "2" not in emu.users()
    [entry] = logs_for(emu, "2")
    assert (entry["provisioningAction"], _status(entry)) == ("create", "failure")
    assert _error_code(entry) == "AzureActiveDirectoryConflictEntryPrimaryAttributes"
    assert entry["provisioningStatusInfo"]["errorInformation"]["errorCategory"]
    # A rename into a taken UPN fails too and leaves the user as it was.
    upload(emu, record("3", upn="other@contoso.com"))
    upload(emu, record("3", upn="jdoe@contoso.com", title="x"))
    assert emu.users()["3"]["attributes"]["userPrincipalName"] == "other@contoso.com"
    assert "jobTitle" not in emu.users()["3"]["attributes"]
    # Once the holder moves away, the UPN is free.
    upload(emu, record("1", upn="john.doe@contoso.com"))
    upload(emu, record("2", upn="jdoe@contoso.com"))
    assert emu.users()["2"]["attributes"]["userPrincipalName"] == "jdoe@contoso.com"


def test_upn_in_an_unverified_domain_fails(emu: RunningEmulator) -> None:
    upload(emu, record("9", upn="someone@fabrikam.com"))
    upload(emu, record("10", upn="no-at-sign"))
    assert emu.users() == {}
    for ext in ("9", "10"):
        [entry] = logs_for(emu, ext)
        assert _status(entry) == "failure"
        assert _error_code(entry) == "AzureActiveDirectoryInvalidUserPrincipalName"


def test_verified_domains_are_configurable(make_emulator: Any) -> None:
    emu = make_emulator(verified_domains=["fabrikam.com", "Contoso.COM"])
    upload(emu, record("1", upn="a@FABRIKAM.com"), record("2", upn="b@contoso.com"))
    assert set(emu.users()) == {"1", "2"}


def test_create_without_user_name_fails(emu: RunningEmulator) -> None:
    upload(emu, record("1", upn=None))
    [entry] = logs_for(emu, "1")
    assert _status(entry) == "failure"
    assert _error_code(entry) == "AzureActiveDirectoryRequiredAttributeMissing"


def test_unresolved_manager_is_skipped_then_resolved_when_resent(emu: RunningEmulator) -> None:
    upload(emu, record("20", manager="10"))
    user = emu.users()["20"]
    assert user["manager"] is None
    assert user["pendingManager"] == "10"
    [first] = logs_for(emu, "20")
    # Documented as a step detail (entra-docs log analytics, Q&A 5830481); the entry
    # itself is otherwise a success (its overall status is not documented).
    assert (first["provisioningAction"], _status(first)) == ("create", "success")
    assert first["provisioningStatusInfo"]["errorInformation"] is None
    steps = {s["provisioningStepType"]: s for s in first["provisioningSteps"]}
    assert steps["export"]["details"]["SkipReason"] == "UnableToResolveReferenceAttributeValue"
    assert steps["export"]["details"]["PropertyName"] == "manager"
    assert "unable to assign 10 as the manager of 20" in steps["export"]["description"]

    upload(emu, record("10"))
    assert emu.users()["20"]["manager"] is None  # the service does not retry on its own
    upload(emu, record("20", manager="10"))
    users = emu.users()
    assert users["20"]["manager"] == "10"
    assert users["20"]["pendingManager"] is None
    last = logs_for(emu, "20")[-1]
    assert (last["provisioningAction"], _status(last)) == ("update", "success")
    assert last["modifiedProperties"] == [
        {"displayName": "manager", "oldValue": None, "newValue": users["10"]["id"]}
    ]


def test_manager_earlier_in_the_same_upload_resolves(emu: RunningEmulator) -> None:
    upload(emu, record("1"), record("2", manager="1"))
    assert emu.users()["2"]["manager"] == "1"
    assert _status(logs_for(emu, "2")[0]) == "success"


def test_non_work_emails_phones_addresses_are_ignored(emu: RunningEmulator) -> None:
    rec = record(
        "5",
        emails=[
            {"value": "home@example.org", "type": "home", "primary": True},
            {"value": "ada@contoso.com", "type": "work"},
        ],
        phoneNumbers=[{"value": "555-1", "type": "mobile"}],
        addresses=[
            {"type": "home", "locality": "Homeville"},
            {"type": "work", "locality": "Chicago", "postalCode": "60601"},
        ],
    )
    upload(emu, rec)
    attrs = emu.users()["5"]["attributes"]
    assert attrs["mail"] == "ada@contoso.com"
    assert attrs["city"] == "Chicago"
    assert attrs["postalCode"] == "60601"
    assert "businessPhones" not in attrs
    # An email without a type is not processed either (CSV2SCIM's contractor sample).
    upload(emu, record("6", emails=[{"value": "x@contoso.com"}]))
    assert "mail" not in emu.users()["6"]["attributes"]


def test_null_is_skipped_unless_the_attribute_flows_nulls(emu: RunningEmulator) -> None:
    upload(emu, record("1", title="Engineer", displayName="Ada"))
    upload(emu, record("1", title=None, displayName=""))
    attrs = emu.users()["1"]["attributes"]
    assert attrs["jobTitle"] == "Engineer"
    assert attrs["displayName"] == "Ada"
    assert logs_for(emu, "1")[-1]["provisioningAction"] == "other"

    schema = httpx.get(job_url(emu, "/schema"), headers=auth(emu)).json()
    for attr in schema["directories"][0]["objects"][0]["attributes"]:
        if attr["name"] == "title":
            attr["flowNullValues"] = True
    put = httpx.put(job_url(emu, "/schema"), json=schema, headers=auth(emu))
    assert put.status_code == 204
    upload(emu, record("1", title=None, displayName=""))
    attrs = emu.users()["1"]["attributes"]
    assert "jobTitle" not in attrs
    assert attrs["displayName"] == "Ada"
    assert logs_for(emu, "1")[-1]["modifiedProperties"] == [
        {"displayName": "jobTitle", "oldValue": "Engineer", "newValue": None}
    ]
    # Documented for "Clear attribute values": an omitted flow-null attribute is cleared too.
    upload(emu, record("1", title="Lead"))
    upload(emu, record("1"))
    assert "jobTitle" not in emu.users()["1"]["attributes"]


def test_attributes_unknown_to_the_schema_are_ignored(emu: RunningEmulator) -> None:
    rec = record("1", favouriteColour="blue", **{"urn:contoso:employee": {"HireDate": "2021"}})
    rec["schemas"].append("urn:contoso:employee")
    upload(emu, rec)
    attrs = emu.users()["1"]["attributes"]
    assert "favouriteColour" not in attrs
    assert "urn:contoso:employee:HireDate" not in attrs
    assert _status(logs_for(emu, "1")[0]) == "success"


def test_registered_and_mapped_custom_attribute_flows(emu: RunningEmulator) -> None:
    # Graph bulkUpload Example 2: processed "if you include [them] in your provisioning
    # job attribute mapping".
    register_custom_attributes(emu, {"urn:contoso:employee:HireDate": "employeeHireDate"})
    rec = record("1", **{"urn:contoso:employee": {"HireDate": "2021-05-01T00:00:00-05:00"}})
    rec["schemas"].append("urn:contoso:employee")
    upload(emu, rec)
    attrs_after = emu.users()["1"]["attributes"]
    assert attrs_after["employeeHireDate"] == "2021-05-01T00:00:00-05:00"


def test_registered_but_unmapped_custom_attribute_is_not_applied(emu: RunningEmulator) -> None:
    register_custom_attributes(
        emu,
        {"urn:contoso:employee:HireDate": None, "urn:contoso:employee:JobCode": "jobCode"},
    )
    rec = record("1", **{"urn:contoso:employee": {"HireDate": "2021-05-01", "JobCode": "X1"}})
    rec["schemas"].append("urn:contoso:employee")
    upload(emu, rec)
    attrs = emu.users()["1"]["attributes"]
    assert attrs["jobCode"] == "X1"
    assert not any("HireDate" in key for key in attrs)
    assert _status(logs_for(emu, "1")[0]) == "success"


def test_enterprise_attributes_map_to_entra_names(emu: RunningEmulator) -> None:
    rec = record(
        "1",
        name={"givenName": "Ada", "familyName": "Lovelace"},
        **{
            ENTERPRISE_USER_SCHEMA: {
                "department": "R&D",
                "organization": "Contoso",
                "costCenter": "CC1",
                "division": "Engines",
                "employeeNumber": "E-1",
            }
        },
    )
    upload(emu, rec)
    attrs = emu.users()["1"]["attributes"]
    assert attrs["givenName"] == "Ada"
    assert attrs["surname"] == "Lovelace"
    assert attrs["department"] == "R&D"
    assert attrs["companyName"] == "Contoso"
    assert attrs["employeeOrgData.costCenter"] == "CC1"
    assert attrs[f"{ENTERPRISE_USER_SCHEMA}:employeeNumber"] == "E-1"


def _tenant() -> tuple[EmulatorState, JobRuntime]:
    state = EmulatorState(EmulatorConfig())
    return state, state.jobs[state.config.default_job.job_id]


def test_a_record_refused_for_its_upn_leaves_the_directory_as_it_was() -> None:
    state, job = _tenant()
    process_operation(state, job, record("1"), "cycle")
    entry = process_operation(state, job, record("2", upn="USER1@contoso.com"), "cycle")
    assert (entry.action, entry.status) == ("create", "failure")
    assert entry.error is not None
    assert entry.error.code == UPN_CONFLICT_CODE
    assert set(state.users) == {"1"}
    assert state.upn_index == {"user1@contoso.com": "1"}


def test_an_update_that_omits_the_manager_keeps_it() -> None:
    state, job = _tenant()
    process_operation(state, job, record("1"), "cycle")
    process_operation(state, job, record("2", manager="1"), "cycle")
    entry = process_operation(state, job, record("2", manager="1", title="Lead"), "cycle")
    assert [name for name, _old, _new in entry.modified] == ["jobTitle"]
    rec = record("2", title="Lead")
    assert process_operation(state, job, rec, "cycle").status == "skipped"
    assert state.users["2"].manager == "1"
