"""Provisioning cycles: the job's lastExecution counts the cycle, and the optional retry
of skipped managers at a cycle's end."""

from __future__ import annotations

from typing import Any

import httpx

from connector.emulator import RunningEmulator

from .helpers import auth, job_url, logs_for, record, upload


def test_auto_resolve_references_option(make_emulator: Any) -> None:
    emu = make_emulator(auto_resolve_references=True)
    upload(emu, record("20", manager="10"))
    upload(emu, record("10"))
    assert emu.users()["20"]["manager"] == "10"
    entries = logs_for(emu, "20")
    assert [e["provisioningAction"] for e in entries] == ["create", "update"]
    assert entries[1]["cycleId"] != entries[0]["cycleId"]


def test_job_status_reports_the_last_cycle(emu: RunningEmulator) -> None:
    upload(emu, record("1"), record("2", upn="bad@fabrikam.com"))
    status = httpx.get(job_url(emu), headers=auth(emu)).json()["status"]
    last = status["lastExecution"]
    assert last["countImported"] == 2
    assert last["countExported"] == 1
    assert last["countEscrowed"] == 1
    assert last["state"] == "EntryLevelErrors"
    cycle_ids = {e["cycleId"] for e in logs_for(emu, "1") + logs_for(emu, "2")}
    assert cycle_ids == {last["activityIdentifier"]}
