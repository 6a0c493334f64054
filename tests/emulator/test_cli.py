"""``connector emulator``: prints what a client needs, serves it, stays on loopback."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest

from connector.emulator import run_emulator
from connector.errors import ConfigError

from .helpers import bulk, record

LAUNCH = "import sys; from connector.cli import main; sys.exit(main(sys.argv[1:]))"


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", LAUNCH, "emulator", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_cli_prints_urls_and_token_then_serves_them() -> None:
    proc = _start("--port", "0", "--token", "cli-token", "--no-limits", "--log-delay", "0")
    try:
        assert proc.stdout is not None
        lines: dict[str, str] = {}
        deadline = time.monotonic() + 20
        while "job" not in lines and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            key, _, value = line.partition(":")
            lines[key.strip()] = value.strip()
        assert lines["token"] == "cli-token"
        assert lines["base URL"].startswith("http://127.0.0.1:")
        endpoint = lines["bulkUpload URL"]
        assert endpoint == (
            f"{lines['base URL']}/v1.0/servicePrincipals/{lines['servicePrincipal']}"
            f"/synchronization/jobs/{lines['job']}/bulkUpload"
        )
        response = httpx.post(
            endpoint,
            json=bulk(record("1")),
            headers={
                "Authorization": "Bearer cli-token",
                "Content-Type": "application/scim+json",
            },
        )
        assert response.status_code == 202
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_cli_rejects_invalid_options_with_exit_code_2() -> None:
    proc = _start("--port", "0", "--fault-rate", "3")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert "fault_rate" in err


def test_non_loopback_host_is_refused_unless_explicitly_allowed() -> None:
    with pytest.raises(ConfigError, match="loopback"), run_emulator(host="0.0.0.0"):
        pass
