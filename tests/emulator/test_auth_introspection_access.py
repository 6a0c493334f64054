"""``/_emulator/*`` answers loopback clients, or others only with the emulator's token.

Non-loopback clients are simulated through the ASGI scope's ``client`` address
(``httpx.ASGITransport(client=...)``): no traffic leaves the process.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from connector.clock import FakeClock
from connector.emulator import EmulatorConfig, create_app
from connector.emulator.auth import is_loopback

REMOTE = ("203.0.113.7", 50123)  # TEST-NET-3: documentation-only address
ROUTES = [
    ("GET", "/_emulator/users", None),
    ("GET", "/_emulator/users/1", None),
    ("GET", "/_emulator/queue", None),
    ("GET", "/_emulator/stats", None),
    ("GET", "/_emulator/jobs", None),
    ("GET", "/_emulator/calls", None),
    ("GET", "/_emulator/time", None),
    ("POST", "/_emulator/time", {"advanceSeconds": 1}),
    ("POST", "/_emulator/reset", None),
    ("POST", "/_emulator/jobs/{job}/state", {"code": "Paused"}),
]


def _statuses(
    config: EmulatorConfig, client: tuple[str, int], headers: dict[str, str] | None = None
) -> list[int]:
    app = create_app(config, clock=FakeClock())
    job = config.default_job.job_id

    async def scenario() -> list[int]:
        transport = httpx.ASGITransport(app=app, client=client)
        async with httpx.AsyncClient(transport=transport, base_url="http://emulator") as http:
            out = []
            for method, path, body in ROUTES:
                response = await http.request(
                    method, path.format(job=job), json=body, headers=headers
                )
                out.append(response.status_code)
            return out

    return asyncio.run(scenario())


def test_remote_client_without_token_is_refused_on_every_route() -> None:
    assert _statuses(EmulatorConfig(), REMOTE) == [403] * len(ROUTES)


def test_remote_client_with_wrong_or_read_only_token_is_refused() -> None:
    config = EmulatorConfig(tokens=["full"], tokens_without_upload_role=["reader"])
    for token in ("nope", "reader"):
        assert _statuses(config, REMOTE, {"Authorization": f"Bearer {token}"}) == [403] * len(
            ROUTES
        )


def test_remote_client_with_the_emulators_token_is_served() -> None:
    config = EmulatorConfig(tokens=["full"])
    statuses = _statuses(config, REMOTE, {"Authorization": "Bearer full"})
    assert 403 not in statuses
    assert statuses[1] == 404  # no such user yet: the handler itself answered


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"])
def test_loopback_client_needs_no_token(host: str) -> None:
    statuses = _statuses(EmulatorConfig(), (host, 40000))
    assert 403 not in statuses
    assert statuses[0] == 200


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("localhost", True),
        ("::ffff:127.0.0.1", True),
        ("0.0.0.0", False),
        ("10.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("testclient", False),
    ],
)
def test_is_loopback(host: str, expected: bool) -> None:
    assert is_loopback(host) is expected


def test_connection_without_a_client_address_needs_the_token() -> None:
    """E.g. a Unix socket: no address to vouch for the caller, so the token decides."""
    config = EmulatorConfig(tokens=["full"])
    app = create_app(config, clock=FakeClock())

    async def status(headers: list[tuple[bytes, bytes]]) -> int:
        sent: list[dict[str, object]] = []
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": "/_emulator/stats",
            "raw_path": b"/_emulator/stats",
            "root_path": "",
            "query_string": b"",
            "headers": [(b"host", b"emulator"), *headers],
            "client": None,
            "server": ("emulator", 80),
        }

        async def receive() -> dict[str, object]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, object]) -> None:
            sent.append(message)

        await app(scope, receive, send)
        start = next(m for m in sent if m["type"] == "http.response.start")
        return int(str(start["status"]))

    assert asyncio.run(status([])) == 403
    assert asyncio.run(status([(b"authorization", b"Bearer full")])) == 200
