"""Config loading and in-process use of ``create_app`` (no server, no network)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from connector.clock import FakeClock
from connector.emulator import EmulatorConfig, JobConfig, create_app, load_config
from connector.errors import ConfigError

from .helpers import bulk, record


def test_yaml_config_is_loaded(tmp_path: Path) -> None:
    path = tmp_path / "emulator.yaml"
    path.write_text(
        "tokens: [dev]\nlog_delay_seconds: 5\ndaily_quota: null\n"
        "jobs:\n  - service_principal_id: sp-1\n    job_id: API2AAD.abc.def\n",
        encoding="utf-8",
    )
    config = load_config(path)
    assert config.tokens == ["dev"]
    assert config.daily_quota is None
    assert config.default_job.job_id == "API2AAD.abc.def"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("fault_rate: 2\n", "fault_rate"),
        ("tokens: []\n", "at least one accepted token"),
        ("unknown_knob: 1\n", "unknown_knob"),
        ("tokens: [a\n", "not valid YAML/JSON"),
    ],
)
def test_invalid_config_names_file_and_field(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad\.yaml") as info:
        load_config(path)
    assert fragment in str(info.value)


def test_duplicate_job_ids_are_refused() -> None:
    job = JobConfig(job_id="API2AAD.a.b")
    with pytest.raises(ValueError, match="listed twice"):
        EmulatorConfig(jobs=[job, job])


def test_create_app_serves_in_process_with_an_injected_clock() -> None:
    clock = FakeClock()
    config = EmulatorConfig(rate_limit_calls=1)
    app = create_app(config, clock=clock)
    job = config.default_job
    url = (
        f"http://emulator/v1.0/servicePrincipals/{job.service_principal_id}"
        f"/synchronization/jobs/{job.job_id}/bulkUpload"
    )
    headers = {
        "Authorization": f"Bearer {config.tokens[0]}",
        "Content-Type": "application/scim+json",
    }

    async def scenario() -> tuple[list[int], int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport) as client:
            statuses = [
                (await client.post(url, json=bulk(record("1")), headers=headers)).status_code
            ]
            statuses.append(
                (await client.post(url, json=bulk(record("2")), headers=headers)).status_code
            )
            clock.advance(5)
            statuses.append(
                (await client.post(url, json=bulk(record("2")), headers=headers)).status_code
            )
            for _ in range(100):
                users = (await client.get("http://emulator/_emulator/stats")).json()["users"]
                if users == 2:
                    break
                await asyncio.sleep(0.01)
            return statuses, users

    statuses, users = asyncio.run(scenario())
    assert statuses == [202, 429, 202]
    assert users == 2
