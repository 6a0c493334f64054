"""Token provider caching/refresh and the host allowlist (including redirects and nextLinks)."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime

import httpx
import pytest
from azure.core.credentials import AccessToken

from connector.clock import FakeClock
from connector.errors import AuthenticationError, ConfigError, UnsafeEndpointError
from connector.graph.auth import (
    CredentialTokenProvider,
    StaticTokenProvider,
    build_credential,
    check_token_destination,
)
from connector.graph.client import GraphClient
from connector.graph.endpoint import ProvisioningEndpoint

from .helpers import ENDPOINT, JOB, SP, accepted, make_client, payloads

START = datetime(2026, 1, 1, tzinfo=UTC)


class SyncCredential:
    def __init__(self, lifetime: float = 3600.0) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.threads: set[int] = set()
        self.lifetime = lifetime
        self.clock_now = START.timestamp()

    def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
        self.calls.append(scopes)
        self.threads.add(threading.get_ident())
        return AccessToken(f"tok-{len(self.calls)}", int(self.clock_now + self.lifetime))


class AsyncCredential(SyncCredential):
    async def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:  # type: ignore[override]
        return SyncCredential.get_token(self, *scopes)

    async def close(self) -> None:
        self.closed = True


def test_credential_tokens_are_cached_and_refreshed_before_expiry() -> None:
    clock = FakeClock(START)
    cred = SyncCredential(lifetime=3600)
    provider = CredentialTokenProvider(cred, "https://graph.microsoft.com/.default", clock=clock)

    async def main() -> list[str]:
        out = [await provider.get_token() for _ in range(5)]
        clock.advance(3600 - 301)  # still more than the 300 s margin left
        out.append(await provider.get_token())
        clock.advance(2)  # inside the margin: refresh before expiry
        out.append(await provider.get_token())
        return out

    tokens = asyncio.run(main())
    assert tokens == ["tok-1"] * 6 + ["tok-2"]
    assert cred.calls == [("https://graph.microsoft.com/.default",)] * 2
    assert threading.get_ident() not in cred.threads  # sync credential ran off the loop


def test_async_credential_and_forced_refresh_share_one_fetch() -> None:
    cred = AsyncCredential()
    provider = CredentialTokenProvider(
        cred, "https://graph.microsoft.us/.default", clock=FakeClock(START)
    )

    async def main() -> list[str]:
        first = await provider.get_token()
        refreshed = await asyncio.gather(*(provider.get_token(rejected=first) for _ in range(5)))
        many = await asyncio.gather(*(provider.get_token() for _ in range(10)))
        await provider.close()
        return [first, *refreshed, *many]

    tokens = asyncio.run(main())
    assert tokens[0] == "tok-1"
    assert set(tokens[1:]) == {"tok-2"}
    assert len(cred.calls) == 2
    assert cred.closed


def test_credential_failure_is_an_authentication_error() -> None:
    class Broken:
        def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
            raise RuntimeError("no managed identity endpoint")

    provider = CredentialTokenProvider(Broken(), "https://graph.microsoft.com/.default")
    with pytest.raises(AuthenticationError, match="no managed identity endpoint"):
        asyncio.run(provider.get_token())


def test_static_token_strips_bearer_prefix() -> None:
    assert asyncio.run(StaticTokenProvider("Bearer abc ").get_token()) == "abc"
    with pytest.raises(ConfigError):
        StaticTokenProvider("  ")


@pytest.mark.parametrize(
    "url",
    [
        "https://graph.microsoft.com/v1.0/x",
        "https://GRAPH.microsoft.com:443/beta/x",
        "https://graph.microsoft.us/v1.0/x",
        "https://dod-graph.microsoft.us/v1.0/x",
        "https://microsoftgraph.chinacloudapi.cn/v1.0/x",
    ],
)
def test_allowlist_accepts_graph_hosts(url: str) -> None:
    check_token_destination(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://graph.microsoft.com/v1.0/x",
        "https://graph.microsoft.com:444/v1.0/x",
        "https://graph.microsoft.com.evil.example/v1.0/x",
        "https://evil.example/?graph.microsoft.com",
        "https://login.microsoftonline.com/token",
        "http://127.0.0.1:8089/v1.0/x",
        "http://localhost/v1.0/x",
        "ftp://graph.microsoft.com/x",
    ],
)
def test_allowlist_refuses_everything_else(url: str) -> None:
    with pytest.raises(UnsafeEndpointError):
        check_token_destination(url)


def test_loopback_needs_explicit_opt_in() -> None:
    check_token_destination("http://127.0.0.1:8089/v1.0/x", allow_loopback=True)
    check_token_destination("http://[::1]:8089/v1.0/x", allow_loopback=True)
    loop = ProvisioningEndpoint.parse(
        f"http://127.0.0.1:1/v1.0/servicePrincipals/{SP}/synchronization/jobs/{JOB}/bulkUpload",
        allow_loopback=True,
    )
    with pytest.raises(UnsafeEndpointError, match="emulator"):
        GraphClient(loop, StaticTokenProvider("t"))


def test_redirect_is_never_followed_with_the_token() -> None:
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(307, headers={"Location": "https://evil.example/collect"})

    client, _ = make_client(handler)

    async def main() -> None:
        async with client:
            await client.post_bulk(payloads(50)[0])

    with pytest.raises(UnsafeEndpointError, match="redirect") as caught:
        asyncio.run(main())
    assert "redirect" in str(caught.value)
    assert [r.url.host for r in requests] == ["graph.microsoft.com"]


def test_next_link_to_foreign_host_is_refused_before_sending() -> None:
    hosts: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        hosts.append(request.url.host)
        return httpx.Response(
            200,
            json={"value": [], "@odata.nextLink": "https://evil.example/auditLogs?$skiptoken=x"},
        )

    client, _ = make_client(handler)

    async def main() -> None:
        async with client:
            await client.provisioning_logs()

    with pytest.raises(UnsafeEndpointError):
        asyncio.run(main())
    assert hosts == ["graph.microsoft.com"]


def test_guard_transport_refuses_direct_requests_with_a_token() -> None:
    client, _ = make_client(accepted)

    async def main() -> None:
        async with client:
            await client._http.get(  # the guard sits under every request of the client
                "https://evil.example/", headers={"Authorization": "Bearer leak"}
            )

    with pytest.raises(UnsafeEndpointError):
        asyncio.run(main())


def test_build_credential_kinds(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "AZURE_TENANT_ID",
        "AZURE_CLIENT_ID",
        "AZURE_CLIENT_SECRET",
        "AZURE_CLIENT_CERTIFICATE_PATH",
        "GRAPH_CLIENT_ID",
    ):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError, match="tenant id, client id, certificate path"):
        build_credential("certificate")
    with pytest.raises(ConfigError, match="AZURE_CLIENT_SECRET"):
        build_credential("secret", tenant_id="t", client_id="c")
    monkeypatch.setenv("GRAPH_CLIENT_ID", "11111111-2222-3333-4444-555555555555")
    mi = build_credential("managed-identity")
    assert type(mi).__name__ == "ManagedIdentityCredential"
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "s3cret")
    secret = build_credential("secret", tenant_id="t", client_id="c")
    assert type(secret).__name__ == "ClientSecretCredential"
    with pytest.raises(ConfigError, match="unknown auth kind"):
        build_credential("password")  # type: ignore[arg-type]
    assert ENDPOINT.scope == "https://graph.microsoft.com/.default"
