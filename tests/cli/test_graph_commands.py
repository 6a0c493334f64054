"""`connector status`, `connector logs` and `connector schema add` against the emulator."""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import os
import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import typer
from click.testing import Result
from typer.testing import CliRunner

from connector.cli import graph as graph_cli
from connector.emulator.config import EmulatorConfig
from connector.emulator.server import RunningEmulator, run_emulator
from connector.errors import ConfigError
from connector.graph.auth import StaticTokenProvider
from connector.graph.client import DEFAULT_RESET_SCOPE, GraphClient
from connector.graph.endpoint import ProvisioningEndpoint
from connector.graph.models import SynchronizationJob
from tests.emulator.helpers import bulk, record
from tests.emulator.helpers import post as emu_post
from tests.graph.helpers import JOB, SP, payloads
from tests.graph.job_cases import CASES, JobCase

ROOT = Path(__file__).resolve().parents[2]
MAPPING = ROOT / "samples" / "mappings" / "default.yaml"
NS = "urn:ietf:params:scim:schemas:extension:contoso:1.0:User"


@pytest.fixture(scope="module")
def emu() -> Iterator[RunningEmulator]:
    with run_emulator(EmulatorConfig()) as running:
        yield running


def cli(*args: str) -> tuple[int, str]:
    result = invoke(*args)
    return result.exit_code, result.output


def invoke(*args: str) -> Result:
    app = typer.Typer(rich_markup_mode=None)  # as connector.cli.app builds it
    app.command("noop")(lambda: None)  # keep sub-commands addressable by name
    graph_cli.register(app)
    return CliRunner().invoke(app, list(args), prog_name="connector")


def common(emu: RunningEmulator) -> list[str]:
    return ["--endpoint", emu.endpoint_url, "--token", emu.token, "--allow-loopback"]


def test_status(emu: RunningEmulator) -> None:
    code, out = cli("status", *common(emu))
    assert code == 0, out
    lines = out.splitlines()
    assert re.fullmatch(rf"job: +{re.escape(emu.job_id)}", lines[0])
    assert re.fullmatch(r"status: +Active", lines[1])
    assert re.fullmatch(r"uploads: +processed", lines[2])
    # every value starts in the same column, continuation lines included
    columns = {len(line) - len(line.split(maxsplit=1)[-1]) for line in lines if ":" in line[:12]}
    assert len(columns) == 1, out
    code, out = cli("status", *common(emu), "--json")
    assert code == 0, out
    assert json.loads(out)["job"]["status"]["code"] == "Active"


def test_loopback_refused_without_opt_in(emu: RunningEmulator) -> None:
    code, out = cli("status", "--endpoint", emu.endpoint_url, "--token", emu.token)
    assert code == 2
    assert "loopback" in out


def test_logs_table_and_entries(emu: RunningEmulator) -> None:
    client = GraphClient(
        ProvisioningEndpoint.parse(emu.endpoint_url, allow_loopback=True),
        StaticTokenProvider(emu.token),
        allow_loopback=True,
    )

    async def send() -> None:
        async with client:
            for payload in payloads(12, prefix="L"):
                await client.post_bulk(payload)

    asyncio.run(send())
    emu.wait_idle()
    code, out = cli("logs", *common(emu), "--since", "1d")
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].split() == ["action", "success", "failure", "skipped", "warning", "total"]
    assert set(lines[1]) == {"─"}  # a rich table rule, not ASCII dashes
    total = next(line for line in lines if line.startswith("total"))
    assert total.split() == ["total", "12", "0", "0", "0", "12"]
    rows = [line.split() for line in lines if re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ", line)]
    assert sorted(r[1] for r in rows) == [f"L{i:05d}" for i in range(12)]
    assert {(r[2], r[3]) for r in rows} == {("create", "success")}
    code, out = cli("logs", *common(emu), "--status", "SUCCESS", "--action", "Create")
    assert code == 0, out  # case-insensitive input, sent as Graph spells it (filters are exact)
    assert next(line for line in out.splitlines() if line.startswith("total")).split()[-1] == "12"
    code, out = cli("logs", *common(emu), "--external-id", "L00003", "--json")
    assert code == 0, out
    entries = json.loads(out)["entries"]
    assert [e["sourceIdentity"]["id"] for e in entries] == ["L00003"]
    code, out = cli("logs", *common(emu), "--status", "failure")
    assert code == 0
    assert "no provisioning log entries" in out


def test_schema_add_dry_run_then_idempotent(emu: RunningEmulator) -> None:
    code, out = cli("schema", "add", *common(emu), "--mapping", str(MAPPING), "--dry-run")
    assert code == 0, out
    assert "directory 'API' (the synchronization rule's sourceDirectoryName)" in out
    assert f"would add {NS}:HireDate" in out
    assert "schema not changed" in out
    code, out = cli("schema", "add", *common(emu), "--mapping", str(MAPPING))
    assert code == 0, out
    assert f"added     {NS}:HireDate" in out
    code, out = cli("schema", "add", *common(emu), "--mapping", str(MAPPING))
    assert code == 0, out
    assert f"present   {NS}:LeaveDate" in out
    assert "nothing written" in out


@pytest.mark.parametrize(
    ("option", "value", "choices"),
    [
        ("--status", "failed", "'success', 'failure', 'skipped', 'warning'"),
        ("--action", "created", "'create', 'update', 'delete', 'stageddelete', 'disable', 'other'"),
    ],
)
def test_logs_rejects_unknown_filter_values(option: str, value: str, choices: str) -> None:
    result = invoke("logs", "--endpoint", "http://127.0.0.1:1/x", option, value)
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{option}'" in result.output
    assert f"'{value}' is not one of {choices}" in result.output
    assert "no provisioning log entries" not in result.output


def test_logs_sends_documented_spelling(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str | None] = []

    async def no_entries(self: GraphClient, query: Any) -> AsyncIterator[Any]:
        seen.append(query.filter_expression("job", "beta"))
        for entry in ():
            yield entry

    monkeypatch.setattr(GraphClient, "iter_provisioning_logs", no_entries)
    endpoint = f"https://graph.microsoft.com/beta/servicePrincipals/{SP}/synchronization/jobs/{JOB}/bulkUpload"
    result = invoke(
        "logs",
        "--endpoint",
        endpoint,
        "--token",
        "t",
        "--action",
        "STAGEDDELETE",
        "--status",
        "Warning",
    )
    assert result.exit_code == 0, result.output
    assert len(seen) == 1
    assert "provisioningAction eq 'stagedDelete'" in str(seen[0])
    assert "provisioningStatusInfo/status eq 'warning'" in str(seen[0])


def test_credential_failure_is_one_line_and_a_hint(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A real DefaultAzureCredential with nothing to sign in with (no network credential)."""
    from azure.identity import DefaultAzureCredential

    for name in list(os.environ):
        if name.startswith(("AZURE_", "IDENTITY_", "MSI_")):
            monkeypatch.delenv(name)

    def offline_default(*_: Any, **__: Any) -> DefaultAzureCredential:
        return DefaultAzureCredential(
            exclude_managed_identity_credential=True,  # would probe IMDS
            exclude_shared_token_cache_credential=True,
            exclude_cli_credential=True,
            exclude_developer_cli_credential=True,
            exclude_powershell_credential=True,
            exclude_interactive_browser_credential=True,
        )

    monkeypatch.setattr("connector.graph.auth.build_credential", offline_default)
    endpoint = f"https://graph.microsoft.com/beta/servicePrincipals/{SP}/synchronization/jobs/{JOB}/bulkUpload"
    for command in (["status"], ["logs"], ["schema", "add", "--mapping", str(MAPPING)]):
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            result = invoke(*command, "--endpoint", endpoint)
        assert result.exit_code == 1, result.output
        assert result.stdout == ""
        err = result.stderr.splitlines()
        assert len(err) == 2, result.stderr
        assert err[0].startswith("error: could not get a Graph token with --auth default:")
        assert "DefaultAzureCredential" in err[0]
        name = " ".join(c for c in command if not c.startswith("--") and c != str(MAPPING))
        assert err[1] == (
            "pass --token TOKEN, or --auth managed-identity|certificate|secret"
            f" (see connector {name} --help)"
        )
        assert not [r for r in caplog.records if r.name.startswith("azure.identity")]


def test_rejected_static_token_keeps_its_message(emu: RunningEmulator) -> None:
    result = invoke(
        "status", "--endpoint", emu.endpoint_url, "--token", "wrong", "--allow-loopback"
    )
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ")
    assert "pass --token TOKEN" not in result.stderr


def test_bad_auth_kind_is_reported(emu: RunningEmulator) -> None:
    code, out = cli("status", "--endpoint", emu.endpoint_url, "--allow-loopback", "--auth", "x")
    assert code == 2
    assert "--auth 'x'" in out


def test_parse_since() -> None:
    now = datetime(2026, 1, 2, tzinfo=UTC)
    assert graph_cli.parse_since("2h", now) == datetime(2026, 1, 1, 22, tzinfo=UTC)
    assert graph_cli.parse_since("1d", now) == datetime(2026, 1, 1, tzinfo=UTC)
    assert graph_cli.parse_since("2026-01-01T05:00:00", now) == datetime(2026, 1, 1, 5, tzinfo=UTC)
    with pytest.raises(ConfigError, match="duration"):
        graph_cli.parse_since("yesterday", now)


def test_status_lines_align_and_use_iso_seconds() -> None:
    job = SynchronizationJob.model_validate(
        {
            "id": JOB,
            "status": {
                "code": "Quarantine",
                "quarantine": {
                    "reason": "EncounteredEscrowProportionThreshold",
                    "currentBegan": "2026-11-26T22:00:01.5+01:00",
                    "error": {"code": "EscrowThreshold", "message": "too many escrows"},
                },
                "lastExecution": {
                    "state": "Failed",
                    "timeBegan": "2026-11-26T23:57:07.877Z",
                    "timeEnded": "2026-11-26T23:58:00.001Z",
                    "countImported": 3,
                    "countExported": 2,
                    "countEscrowed": 1,
                    "error": {"code": "E1", "message": "boom"},
                },
                "troubleshootingUrl": "https://example.invalid/help",
            },
        }
    )
    lines = graph_cli._status_lines(job)
    labels = [line.split(":", 1)[0] for line in lines if not line.startswith(" ")]
    assert labels == [
        "job",
        "status",
        "uploads",
        "quarantine",
        "error",
        "last run",
        "last error",
        "help",
    ]
    uploads = next(line for line in lines if line.startswith("uploads:"))
    assert "not processed: the provisioning job is in quarantine" in uploads
    assert any("to fix: " in line and "restart" in line for line in lines)
    values = {line.index(v) for line, v in zip(lines, [JOB, "Quarantine"], strict=False)}
    assert len(values) == 1
    column = values.pop()
    assert all(line[column - 1] == " " and line[column] != " " for line in lines), lines
    text = "\n".join(lines)
    assert "since 2026-11-26T21:00:01Z" in text
    assert "Failed 2026-11-26T23:57:07Z → 2026-11-26T23:58:00Z" in text
    assert "imported 3, exported 2, escrowed 1" in text
    assert ".877" not in text
    assert "+00:00" not in text


def test_schema_add_into_a_named_directory_that_does_not_exist(emu: RunningEmulator) -> None:
    code, out = cli(
        "schema", "add", *common(emu), "--mapping", str(MAPPING), "--directory", "Nowhere"
    )
    assert code == 2
    assert "--directory 'Nowhere'" in out


def _queued(emu: RunningEmulator) -> int:
    async def count() -> int:
        return emu.state.jobs[emu.job_id].queued_operations

    return emu.call(count())


def test_job_restart_without_yes_and_without_a_terminal_is_a_usage_error(
    emu: RunningEmulator,
) -> None:
    code, out = cli("job", "restart", *common(emu))
    assert code == 2
    assert "--yes" in out


def test_job_restart_asks_and_no_keeps_the_queue(
    emu: RunningEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu.set_job_state("Paused")
    _upload_one(emu)
    monkeypatch.setattr(graph_cli, "_interactive", lambda: True)
    result = CliRunner().invoke(_app(), ["job", "restart", *common(emu)], input="n\n")
    assert result.exit_code == 1
    assert "purges every upload" in result.output
    assert _queued(emu) == 1
    emu.set_job_state("Active")
    emu.wait_idle(5)


def test_job_restart_with_yes_purges_a_paused_jobs_queue(emu: RunningEmulator) -> None:
    emu.set_job_state("Paused")
    _upload_one(emu)
    assert _queued(emu) == 1
    code, out = cli("job", "restart", *common(emu), "--yes")
    assert code == 0, out
    assert "40 minutes" in out
    assert _queued(emu) == 0
    code, out = cli("status", *common(emu))
    assert re.search(r"status: +Active", out)


def test_job_start_resumes_a_paused_job(emu: RunningEmulator) -> None:
    emu.set_job_state("Paused")
    code, out = cli("job", "start", *common(emu))
    assert code == 0, out
    assert emu.state.jobs[emu.job_id].state == "Active"


def _app() -> typer.Typer:
    app = typer.Typer(rich_markup_mode=None)
    app.command("noop")(lambda: None)
    graph_cli.register(app)
    return app


def _upload_one(emu: RunningEmulator) -> None:
    assert emu_post(emu, bulk(record("Q1"))).status_code == 202


def test_status_says_a_paused_job_will_not_process_uploads(emu: RunningEmulator) -> None:
    emu.set_job_state("Paused")
    try:
        code, out = cli("status", *common(emu))
    finally:
        emu.set_job_state("Active")
    assert code == 0, out
    assert re.search(r"uploads: +not processed: the provisioning job is paused", out)
    assert "to fix: start provisioning" in out


def test_status_403_names_the_failed_request_and_its_permission() -> None:
    config = EmulatorConfig(tokens=["full"], tokens_without_job_roles=["no-job-roles"])
    with run_emulator(config) as emu:
        code, out = cli(
            "status", "--endpoint", emu.endpoint_url, "--token", "no-job-roles", "--allow-loopback"
        )
    assert code == 1
    assert f"GET /v1.0/servicePrincipals/{emu.service_principal_id}" in out
    assert "Synchronization.Read.All" in out


def test_job_restart_default_reset_scope_is_the_clients() -> None:
    default = inspect.signature(graph_cli.job_restart_command).parameters["reset_scope"].default
    assert default == DEFAULT_RESET_SCOPE


def test_status_lines_of_the_documented_paused_job_example() -> None:
    example = ROOT / "tests" / "emulator" / "fixtures" / "synchronization_job_paused_example.json"
    job = SynchronizationJob.model_validate(json.loads(example.read_text()))
    lines = graph_cli._status_lines(job)
    assert any(re.fullmatch(r"status: +Paused", line) for line in lines)
    assert any("not processed: the provisioning job is paused" in line for line in lines)
    assert any("quarantine: unknown reason since" in line for line in lines)


# -- every job state, as the engine reads it --------------------------------------------------


@pytest.mark.parametrize("case", [c for c in CASES if c.body is not None], ids=lambda c: c.name)
def test_status_says_whether_uploads_are_processed_for_every_job_state(case: JobCase) -> None:
    lines = graph_cli._status_lines(SynchronizationJob.model_validate(case.body))
    text = "\n".join(lines)
    uploads = next(line for line in lines if line.startswith("uploads:"))
    if case.ready:
        assert re.fullmatch(r"uploads: +processed.*", uploads)
        for phrase in case.says:
            assert phrase in uploads
        assert "to fix:" not in text
        return
    assert re.fullmatch(r"uploads: +not processed: .+", uploads)
    for phrase in case.says:
        assert phrase in uploads, (phrase, uploads)
    assert case.remedy
    assert re.search(rf"to fix: .*{re.escape(case.remedy)}", text)
    if case.until is not None:
        assert f"the service's next attempt: {case.until:%Y-%m-%dT%H:%M:%SZ}" in text
    else:
        assert "next attempt" not in text


def test_status_of_a_job_that_does_not_exist_says_so(emu: RunningEmulator) -> None:
    url = emu.endpoint_url.replace(emu.job_id, "API2AAD.0000.missing")
    code, out = cli("status", "--endpoint", url, "--token", emu.token, "--allow-loopback")
    assert code == 1
    assert "does not exist" in out, out
