"""Microsoft's documented example requests are accepted and what the emulator logs has
exactly the documented provisioningObjectSummary field names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from connector.emulator import RunningEmulator

from .helpers import get_logs, logs_for, post, register_custom_attributes

FIXTURES = Path(__file__).parent / "fixtures"


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads((FIXTURES / name).read_bytes())
    return data


def _shape(value: Any) -> Any:
    """Field names, recursively (lists by their first element; leaves as None)."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return None


def _register_contoso_namespace(emu: RunningEmulator) -> None:
    register_custom_attributes(
        emu,
        {
            "urn:contoso:employee:HireDate": "employeeHireDate",
            "urn:contoso:employee:JobCode": "jobCode",
        },
    )


def test_graph_example_1_is_accepted_and_applied(emu: RunningEmulator) -> None:
    _register_contoso_namespace(emu)
    response = post(emu, _load("graph_bulkupload_example1.json"))
    assert response.status_code == 202
    emu.wait_idle(5)
    users = emu.users()
    assert set(users) == {"701984", "89607"}
    babs = users["701984"]["attributes"]
    assert babs["userPrincipalName"] == "bjensen@contoso.com"
    assert babs["mail"] == "bjensen@contoso.com"
    assert babs["city"] == "Hollywood"
    assert babs["department"] == "Tour Operations"
    assert babs["employeeHireDate"] == "2021-05-01T00:00:00-05:00"
    # The manager is later in the same request: skipped now, with the documented reason.
    entry = logs_for(emu, "701984")[0]
    assert entry["provisioningStatusInfo"]["status"] == "success"
    export = entry["provisioningSteps"][-1]
    assert export["details"]["SkipReason"] == "UnableToResolveReferenceAttributeValue"
    assert users["701984"]["pendingManager"] == "89607"


def test_update_disable_example_disables_and_moves_department(emu: RunningEmulator) -> None:
    assert post(emu, _load("graph_bulkupload_example1.json")).status_code == 202
    emu.wait_idle(5)
    assert post(emu, _load("graph_bulkupload_update_disable.json")).status_code == 202
    emu.wait_idle(5)
    for ext in ("701984", "89607"):
        user = emu.users()[ext]
        assert user["accountEnabled"] is False
        assert user["attributes"]["department"] == "Sales & Marketing"
        assert user["attributes"]["displayName"]  # untouched by a partial record
        last = logs_for(emu, ext)[-1]
        assert last["provisioningAction"] == "disable"
        changed = {p["displayName"] for p in last["modifiedProperties"]}
        assert changed == {"accountEnabled", "department"}


def test_emitted_entries_have_exactly_the_documented_fields(emu: RunningEmulator) -> None:
    documented = _shape(_load("provisioning_object_summary_example.json"))
    post(emu, _load("graph_bulkupload_example1.json"))
    emu.wait_idle(5)
    post(emu, _load("graph_bulkupload_update_disable.json"))
    emu.wait_idle(5)
    entries = get_logs(emu).json()["value"]
    assert len(entries) == 4
    outcomes = {(e["provisioningAction"], e["provisioningStatusInfo"]["status"]) for e in entries}
    assert outcomes == {("create", "success"), ("disable", "success")}
    for entry in entries:
        shape = _shape(entry)
        if entry["provisioningStatusInfo"]["errorInformation"] is None:
            shape["provisioningStatusInfo"]["errorInformation"] = documented[
                "provisioningStatusInfo"
            ]["errorInformation"]
        assert shape == documented
