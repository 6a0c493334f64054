"""`connector status`, `connector logs` and `connector schema add` against the emulator."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from connector.cli import graph as graph_cli
from connector.emulator.config import EmulatorConfig
from connector.emulator.server import RunningEmulator, run_emulator
from connector.errors import ConfigError
from connector.graph.auth import StaticTokenProvider
from connector.graph.client import GraphClient
from connector.graph.endpoint import ProvisioningEndpoint

from .helpers import payloads

ROOT = Path(__file__).resolve().parents[2]
MAPPING = ROOT / "samples" / "mappings" / "default.yaml"
NS = "urn:ietf:params:scim:schemas:extension:contoso:1.0:User"


@pytest.fixture(scope="module")
def emu() -> Iterator[RunningEmulator]:
    with run_emulator(EmulatorConfig()) as running:
        yield running


def cli(*args: str) -> tuple[int, str]:
    app = typer.Typer()
    app.command("noop")(lambda: None)  # keep sub-commands addressable by name
    graph_cli.register(app)
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def common(emu: RunningEmulator) -> list[str]:
    return ["--endpoint", emu.endpoint_url, "--token", emu.token, "--allow-loopback"]


def test_status(emu: RunningEmulator) -> None:
    code, out = cli("status", *common(emu))
    assert code == 0, out
    assert f"job:     {emu.job_id}" in out
    assert "status:  Active" in out
    code, out = cli("status", *common(emu), "--json")
    assert code == 0, out
    assert json.loads(out)["status"]["code"] == "Active"


def test_loopback_refused_without_opt_in(emu: RunningEmulator) -> None:
    code, out = cli("status", "--endpoint", emu.endpoint_url, "--token", emu.token)
    assert code == 1
    assert "loopback" in out


def test_logs_table_and_entries(emu: RunningEmulator) -> None:
    client = GraphClient(
        ProvisioningEndpoint.parse(emu.endpoint_url, allow_loopback=True),
        StaticTokenProvider(emu.token),
        allow_loopback=True,
    )

    async def send() -> None:
        async with client:
            await client.upload(payloads(12, prefix="L"))

    asyncio.run(send())
    emu.wait_idle()
    code, out = cli("logs", *common(emu), "--since", "1d")
    assert code == 0, out
    total = next(line for line in out.splitlines() if line.startswith("total"))
    assert total.split()[-1] == "12"
    assert out.count(" create ") >= 12
    code, out = cli("logs", *common(emu), "--external-id", "L00003", "--json")
    assert code == 0, out
    entries = json.loads(out)
    assert [e["sourceIdentity"]["id"] for e in entries] == ["L00003"]
    code, out = cli("logs", *common(emu), "--status", "failure")
    assert code == 0
    assert "no provisioning log entries" in out


def test_schema_add_dry_run_then_idempotent(emu: RunningEmulator) -> None:
    code, out = cli("schema", "add", *common(emu), "--mapping", str(MAPPING), "--dry-run")
    assert code == 0, out
    assert f"would add {NS}:HireDate" in out
    assert "schema not changed" in out
    code, out = cli("schema", "add", *common(emu), "--mapping", str(MAPPING))
    assert code == 0, out
    assert f"added     {NS}:HireDate" in out
    code, out = cli("schema", "add", *common(emu), "--mapping", str(MAPPING))
    assert code == 0, out
    assert f"present   {NS}:LeaveDate" in out
    assert "nothing written" in out


def test_bad_auth_kind_is_reported(emu: RunningEmulator) -> None:
    code, out = cli("status", "--endpoint", emu.endpoint_url, "--allow-loopback", "--auth", "x")
    assert code == 1
    assert "--auth 'x'" in out


def test_parse_since() -> None:
    now = datetime(2026, 1, 2, tzinfo=UTC)
    assert graph_cli.parse_since("2h", now) == datetime(2026, 1, 1, 22, tzinfo=UTC)
    assert graph_cli.parse_since("1d", now) == datetime(2026, 1, 1, tzinfo=UTC)
    assert graph_cli.parse_since("2026-01-01T05:00:00", now) == datetime(2026, 1, 1, 5, tzinfo=UTC)
    with pytest.raises(ConfigError, match="duration"):
        graph_cli.parse_since("yesterday", now)
