"""Graph tokens: cached, refreshed before expiry, and only ever sent to Graph hosts.

A :class:`TokenProvider` hands the client a bearer token. :class:`CredentialTokenProvider`
wraps any ``azure.core`` credential, sync (``TokenCredential``) or async
(``AsyncTokenCredential``): in Azure a ``ManagedIdentityCredential`` for the user-assigned
identity named by ``GRAPH_CLIENT_ID`` (deliberately not ``AZURE_CLIENT_ID``, which other
SDKs would pick up for other resources); on an admin's machine ``DefaultAzureCredential``,
a certificate or a client secret. :class:`StaticTokenProvider` is for the emulator's token
or one pasted from Graph Explorer.

:func:`check_token_destination` is the allowlist: https to a Graph host of any national
cloud, or a loopback address when the emulator is explicitly enabled. The client calls
it before every request and never follows redirects with a token.
"""

from __future__ import annotations

import asyncio
import inspect
import os
from dataclasses import dataclass
from typing import Literal, NamedTuple, Protocol, cast
from urllib.parse import urlsplit

from azure.core.credentials import AccessToken, TokenCredential
from azure.core.credentials_async import AsyncTokenCredential

from connector.clock import Clock, SystemClock
from connector.errors import AuthenticationError, ConfigError, UnsafeEndpointError
from connector.graph.endpoint import GRAPH_HOSTS, Cloud, cloud_for_host, is_loopback_host

__all__ = [
    "GRAPH_CLIENT_ID_SETTING",
    "AuthKind",
    "CredentialTokenProvider",
    "StaticTokenProvider",
    "TokenProvider",
    "build_credential",
    "check_token_destination",
]

GRAPH_CLIENT_ID_SETTING = "GRAPH_CLIENT_ID"

AuthKind = Literal["default", "managed-identity", "certificate", "secret"]

_AUTHORITY_HOSTS: dict[Cloud, str] = {
    Cloud.GLOBAL: "login.microsoftonline.com",
    Cloud.US_GOV: "login.microsoftonline.us",
    Cloud.US_GOV_DOD: "login.microsoftonline.us",
    Cloud.CHINA: "login.chinacloudapi.cn",
}


def check_token_destination(url: str, *, allow_loopback: bool = False) -> None:
    """Raise UnsafeEndpointError unless a bearer token may be sent to ``url``."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if cloud_for_host(host) is not None:
        if parts.scheme != "https" or parts.port not in (None, 443):
            raise UnsafeEndpointError(
                f"refusing to send a Graph token to {parts.scheme}://{parts.netloc}:"
                " Graph is only reached over https on the default port"
            )
        return
    if is_loopback_host(host) and parts.scheme in ("http", "https"):
        if allow_loopback:
            return
        raise UnsafeEndpointError(
            f"refusing to send a token to loopback host {host!r}: the local emulator is not"
            " enabled (allow_loopback / --allow-loopback)"
        )
    allowed = ", ".join(sorted(GRAPH_HOSTS))
    raise UnsafeEndpointError(
        f"refusing to send a Graph token to {host or url!r}: tokens only go to {allowed}"
    )


class TokenProvider(Protocol):
    """A source of bearer tokens for one scope.

    ``rejected`` is a token Graph answered 401 to: a provider fetches a new one unless
    it already holds a different token (another request refreshed first), so a burst
    of concurrent 401s costs one refresh.
    """

    async def get_token(self, *, rejected: str | None = None) -> str: ...


class StaticTokenProvider:
    """A fixed bearer token (the emulator's, or one pasted from Graph Explorer)."""

    def __init__(self, token: str) -> None:
        token = token.strip()
        if token.lower().startswith("bearer "):
            token = token[7:].strip()
        if not token:
            raise ConfigError("the static token is empty")
        self._token = token

    async def get_token(self, *, rejected: str | None = None) -> str:
        # A static token cannot be refreshed; the client turns the second 401 into an error.
        return self._token


class CredentialTokenProvider:
    """Cache an azure.core credential's token; fetch a new one ``refresh_margin`` s before expiry.

    Sync credentials are called in a worker thread so the event loop never blocks on
    the token endpoint. Concurrent callers share one fetch.
    """

    def __init__(
        self,
        credential: TokenCredential | AsyncTokenCredential,
        scope: str,
        *,
        clock: Clock | None = None,
        refresh_margin: float = 300.0,
    ) -> None:
        self._credential = as_async_credential(credential)
        self._owner = credential
        self.scope = scope
        self._clock: Clock = clock or SystemClock()
        self._margin = refresh_margin
        self._cached: AccessToken | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0

    def _fresh(self, token: AccessToken) -> bool:
        return token.expires_on - self._margin > self._clock.now().timestamp()

    async def get_token(self, *, rejected: str | None = None) -> str:
        cached = self._cached
        if cached is not None and cached.token != rejected and self._fresh(cached):
            return cached.token
        async with self._lock:
            current = self._cached
            if current is not None and current.token != rejected and self._fresh(current):
                return current.token  # another task fetched while we waited for the lock
            token = await self._fetch()
            self._cached = token
            return token.token

    async def _fetch(self) -> AccessToken:
        self.fetches += 1
        try:
            result = self._credential.get_token(self.scope)
            token = await result if inspect.isawaitable(result) else result
        except Exception as exc:  # azure.identity raises many types; keep the cause
            raise AuthenticationError(
                f"could not get a Graph token for scope {self.scope}: {exc}."
                " Check the identity's configuration (client id, tenant, certificate or secret)"
            ) from exc
        return token

    async def close(self) -> None:
        """Close an async credential (sync ones are left to their owner)."""
        close = getattr(self._owner, "close", None)
        if close is not None and inspect.iscoroutinefunction(close):
            await close()


@dataclass(frozen=True, slots=True)
class _ThreadedCredential:
    """Runs a sync credential's ``get_token`` in a worker thread."""

    inner: TokenCredential

    async def get_token(self, *scopes: str) -> AccessToken:
        return await asyncio.to_thread(self.inner.get_token, *scopes)


def as_async_credential(
    credential: TokenCredential | AsyncTokenCredential,
) -> TokenCredential | AsyncTokenCredential:
    """Wrap a sync credential so its token fetches happen off the event loop."""
    get = credential.get_token
    if inspect.iscoroutinefunction(get):
        return credential
    return cast(AsyncTokenCredential, _ThreadedCredential(cast(TokenCredential, credential)))


def build_credential(
    kind: AuthKind,
    *,
    cloud: Cloud = Cloud.GLOBAL,
    client_id: str | None = None,
    tenant_id: str | None = None,
    certificate_path: str | None = None,
    certificate_password: str | None = None,
    client_secret: str | None = None,
) -> TokenCredential:
    """The azure.identity credential for ``--auth KIND``; missing inputs come from the environment.

    ``managed-identity`` uses ``GRAPH_CLIENT_ID`` (a user-assigned identity) or, when unset,
    the system-assigned identity. ``certificate`` needs tenant id, client id and a PEM/PFX
    path (``AZURE_TENANT_ID``, ``AZURE_CLIENT_ID``, ``AZURE_CLIENT_CERTIFICATE_PATH``);
    ``secret`` needs tenant id, client id and ``AZURE_CLIENT_SECRET``.
    """
    from azure import identity

    authority = _AUTHORITY_HOSTS[cloud]
    if kind == "default":
        return identity.DefaultAzureCredential(authority=authority)
    if kind == "managed-identity":
        return _managed_identity(client_id)
    app = _AppIdentity.from_env(tenant_id, client_id)
    if kind == "certificate":
        return _certificate_credential(app, authority, certificate_path, certificate_password)
    if kind == "secret":
        return _secret_credential(app, authority, client_secret)
    raise ConfigError(
        f"unknown auth kind {kind!r}; use default, managed-identity, certificate or secret"
    )


def _managed_identity(client_id: str | None) -> TokenCredential:
    """The user-assigned identity ``client_id`` or ``GRAPH_CLIENT_ID``, else the system one."""
    from azure import identity

    mi_client = client_id or os.environ.get(GRAPH_CLIENT_ID_SETTING) or None
    if mi_client:
        return identity.ManagedIdentityCredential(client_id=mi_client)
    return identity.ManagedIdentityCredential()


class _AppIdentity(NamedTuple):
    """An app registration's tenant and client ids, and the names of those missing."""

    tenant: str
    app: str
    missing: tuple[str, ...]

    @classmethod
    def from_env(cls, tenant_id: str | None, client_id: str | None) -> _AppIdentity:
        """The ids given, else ``AZURE_TENANT_ID``/``AZURE_CLIENT_ID``."""
        tenant = tenant_id or os.environ.get("AZURE_TENANT_ID") or ""
        app = client_id or os.environ.get("AZURE_CLIENT_ID") or ""
        missing = [name for name, value in (("tenant id", tenant), ("client id", app)) if not value]
        return cls(tenant, app, tuple(missing))


def _certificate_credential(
    ids: _AppIdentity, authority: str, path: str | None, password: str | None
) -> TokenCredential:
    """``--auth certificate``: the app's certificate (``AZURE_CLIENT_CERTIFICATE_*``)."""
    from azure import identity

    env = os.environ
    path = path or env.get("AZURE_CLIENT_CERTIFICATE_PATH")
    missing = [*ids.missing, *([] if path else ["certificate path"])]
    if missing:
        raise ConfigError(
            "certificate auth needs " + ", ".join(missing) + ": pass --tenant-id,"
            " --client-id, --certificate or set AZURE_TENANT_ID, AZURE_CLIENT_ID,"
            " AZURE_CLIENT_CERTIFICATE_PATH"
        )
    return identity.CertificateCredential(
        ids.tenant,
        ids.app,
        certificate_path=path,
        password=password or env.get("AZURE_CLIENT_CERTIFICATE_PASSWORD"),
        authority=authority,
    )


def _secret_credential(ids: _AppIdentity, authority: str, secret: str | None) -> TokenCredential:
    """``--auth secret``: the app's client secret (``AZURE_CLIENT_SECRET``)."""
    from azure import identity

    secret = secret or os.environ.get("AZURE_CLIENT_SECRET")
    missing = [*ids.missing, *([] if secret else ["client secret (AZURE_CLIENT_SECRET)"])]
    if missing or not secret:
        raise ConfigError(
            "secret auth needs " + ", ".join(missing) + ": set AZURE_TENANT_ID,"
            " AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (never put the secret in a file"
            " or on the command line)"
        )
    return identity.ClientSecretCredential(ids.tenant, ids.app, secret, authority=authority)
