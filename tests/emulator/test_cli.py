"""``connector emulator``: prints what a client needs, serves it, stays on loopback."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import uvicorn

from connector.cli.emulator import banner, build_config
from connector.emulator import EmulatorConfig, RunningEmulator, create_app, run_emulator
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


def _unstarted(host: str, port: int = 8089) -> RunningEmulator:
    """A RunningEmulator description without a server: nothing is bound or sent."""
    config = EmulatorConfig(tokens=["t"])
    server = uvicorn.Server(uvicorn.Config(create_app(config)))
    return RunningEmulator(
        config, create_app(config), host, port, server, threading.Thread(target=lambda: None)
    )


@pytest.mark.parametrize(
    ("host", "base"),
    [
        ("0.0.0.0", "http://127.0.0.1:8089"),
        ("::", "http://[::1]:8089"),
        ("127.0.0.1", "http://127.0.0.1:8089"),
        ("::1", "http://[::1]:8089"),
        ("192.0.2.10", "http://192.0.2.10:8089"),
    ],
)
def test_base_url_is_connectable(host: str, base: str) -> None:
    emu = _unstarted(host)
    assert emu.base_url == base
    assert emu.endpoint_url.startswith(base + "/v1.0/servicePrincipals/")


def test_banner_for_all_interfaces_prints_loopback_urls_and_says_where_it_listens() -> None:
    lines, warnings = banner(_unstarted("0.0.0.0"))
    assert not any("0.0.0.0" in line for line in lines)
    assert lines[0] == "base URL:         http://127.0.0.1:8089"
    assert len(warnings) == 1
    assert "all interfaces (0.0.0.0)" in warnings[0]
    assert "127.0.0.1" in warnings[0]


def test_banner_on_loopback_has_no_warning() -> None:
    lines, warnings = banner(_unstarted("127.0.0.1"))
    assert warnings == []
    assert "token:            t" in lines


def test_cli_config_turns_gc_freeze_on_unless_the_file_sets_it(tmp_path: Path) -> None:
    assert build_config(None, token="x").gc_freeze is True
    path = tmp_path / "emulator.yaml"
    path.write_text("gc_freeze: false\n", encoding="utf-8")
    assert build_config(path).gc_freeze is False
    path.write_text("seed: 3\n", encoding="utf-8")
    cfg = build_config(path, quota=0, no_limits=False)
    assert (cfg.gc_freeze, cfg.seed, cfg.daily_quota) == (True, 3, None)
    assert EmulatorConfig().gc_freeze is False
