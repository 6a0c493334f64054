"""The provisioning target: parse the portal's "Provisioning API Endpoint" URL, or build one.

Documented (Graph ``synchronizationJob: bulkUpload``): ``POST
https://graph.microsoft.com/{v1.0|beta}/servicePrincipals/{servicePrincipalId}/synchronization/
jobs/{jobId}/bulkUpload`` where ``servicePrincipalId`` is the service principal's *object id*
(a GUID) and job ids look like ``API2AAD.<32 hex>.<guid>`` (Entra) or ``API2AD.…`` (AD).
The portal shows the beta URL. National clouds use their own Graph hosts.

Our choices: the job URL without ``/bulkUpload`` is accepted too (it names the same target);
job ids are checked for shape (letters, digits, ``.``, ``-``, ``_``) but not for the
``API2AAD`` prefix, so a future job type is not refused. A loopback origin (the local
emulator) is accepted only when the caller explicitly allows it, and may use ``http``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import SplitResult, quote, unquote, urlsplit

from connector.errors import ConfigError, UnsafeEndpointError

__all__ = [
    "API_VERSIONS",
    "GRAPH_HOSTS",
    "Cloud",
    "ProvisioningEndpoint",
    "cloud_for_host",
    "is_loopback_host",
]

API_VERSIONS = ("v1.0", "beta")


class Cloud(StrEnum):
    """Microsoft Graph national clouds and their hosts."""

    GLOBAL = "global"
    US_GOV = "usgov"
    US_GOV_DOD = "dod"
    CHINA = "china"

    @property
    def host(self) -> str:
        return _CLOUD_HOSTS[self]

    @property
    def scope(self) -> str:
        """The OAuth scope for app-only Graph tokens in this cloud."""
        return f"https://{self.host}/.default"


_CLOUD_HOSTS: dict[Cloud, str] = {
    Cloud.GLOBAL: "graph.microsoft.com",
    Cloud.US_GOV: "graph.microsoft.us",
    Cloud.US_GOV_DOD: "dod-graph.microsoft.us",
    Cloud.CHINA: "microsoftgraph.chinacloudapi.cn",
}

GRAPH_HOSTS: frozenset[str] = frozenset(_CLOUD_HOSTS.values())

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_PATH = re.compile(
    r"^(?P<prefix>(?:/[^/]+)*?)/(?P<version>[^/]+)/servicePrincipals/(?P<sp>[^/]+)"
    r"/synchronization/jobs/(?P<job>[^/]+)(?:/bulkUpload)?/?$",
    re.IGNORECASE,
)


def cloud_for_host(host: str) -> Cloud | None:
    """The national cloud a Graph host belongs to, or None for any other host."""
    host = host.lower().rstrip(".")
    for cloud, cloud_host in _CLOUD_HOSTS.items():
        if host == cloud_host:
            return cloud
    return None


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback IP literals (127.0.0.0/8, ::1)."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_ids(service_principal_id: str, job_id: str) -> None:
    if not service_principal_id or "{" in service_principal_id:
        raise ConfigError(
            "the endpoint has no service principal id: replace {servicePrincipalId} with the"
            " provisioning app's service principal object id (a GUID)"
        )
    if not _GUID.match(service_principal_id):
        raise ConfigError(
            f"service principal id {service_principal_id!r} is not a GUID: use the service"
            " principal's object id (Enterprise applications > the provisioning app > Object ID),"
            " not its name or application id URI"
        )
    if not job_id or "{" in job_id:
        raise ConfigError(
            "the endpoint has no job id: replace {jobId} with the provisioning job id"
            " (e.g. API2AAD.<32 hex>.<guid>, shown under Provisioning > View technical information)"
        )
    if not _JOB_ID.match(job_id):
        raise ConfigError(
            f"job id {job_id!r} has characters a provisioning job id never has; expected something"
            " like API2AAD.<32 hex>.<guid>"
        )


def _absolute_url(url: str) -> tuple[str, SplitResult]:
    """The pasted URL (quotes and spaces trimmed) and its parts: absolute http(s), no
    credentials, nothing after the path."""
    text = (url or "").strip().strip("'\"")
    if not text:
        raise ConfigError("the provisioning endpoint URL is empty")
    parts = urlsplit(text)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigError(
            f"provisioning endpoint {text!r} is not an absolute http(s) URL; paste the"
            " Provisioning API Endpoint exactly as the Entra portal shows it"
        )
    if parts.username or parts.password:
        raise ConfigError("the provisioning endpoint URL must not contain user credentials")
    if parts.query or parts.fragment:
        raise ConfigError(
            f"provisioning endpoint {text!r} has a query or fragment; remove everything"
            " after 'bulkUpload'"
        )
    return text, parts


def _token_safe_cloud(text: str, parts: SplitResult, *, allow_loopback: bool) -> Cloud | None:
    """The endpoint's national cloud (None for an allowed loopback emulator); any other
    host, or Graph reached other than over https on the default port, is refused."""
    host = (parts.hostname or "").lower()
    cloud = cloud_for_host(host)
    loopback = is_loopback_host(host)
    if cloud is None and not loopback:
        allowed = ", ".join(sorted(GRAPH_HOSTS))
        raise UnsafeEndpointError(
            f"provisioning endpoint host {host!r} is not a Microsoft Graph host ({allowed});"
            " tokens are only ever sent to Graph"
        )
    if loopback and not allow_loopback:
        raise UnsafeEndpointError(
            f"provisioning endpoint {text!r} is on loopback; enable the local emulator"
            " explicitly (allow_loopback / --allow-loopback) to send tokens there"
        )
    if cloud is not None and parts.scheme != "https":
        raise UnsafeEndpointError(f"Graph endpoints must use https, got {text!r}")
    if cloud is not None and parts.port not in (None, 443):
        raise UnsafeEndpointError(f"Graph endpoints use the default https port, got {text!r}")
    return cloud


def _job_path(text: str, path: str, cloud: Cloud | None) -> tuple[str, str, str, str]:
    """The API version (lower case), path prefix, service principal id and job id of the
    bulkUpload path, each checked."""
    match = _PATH.match(path)
    if match is None:
        raise ConfigError(
            f"provisioning endpoint path {path!r} is not"
            " /{v1.0|beta}/servicePrincipals/{id}/synchronization/jobs/{jobId}/bulkUpload"
        )
    version = match["version"]
    if version.lower() not in API_VERSIONS:
        raise ConfigError(
            f"unknown Graph API version {version!r} in the provisioning endpoint;"
            " use 'v1.0' or 'beta'"
        )
    prefix = match["prefix"]
    if prefix and cloud is not None:
        raise ConfigError(f"unexpected path prefix {prefix!r} before the API version in {text!r}")
    sp = unquote(match["sp"])
    job = unquote(match["job"])
    _check_ids(sp, job)
    return version.lower(), prefix, sp, job


@dataclass(frozen=True, slots=True)
class ProvisioningEndpoint:
    """One provisioning job's API root: where bulkUpload, job, schema and logs calls go.

    ``origin`` is ``scheme://host[:port]`` plus any path prefix (only a loopback
    emulator may have one); ``api_version`` is ``v1.0`` or ``beta``.
    """

    origin: str
    api_version: str
    service_principal_id: str
    job_id: str
    cloud: Cloud | None = None

    @classmethod
    def parse(cls, url: str, *, allow_loopback: bool = False) -> ProvisioningEndpoint:
        """Parse the portal's Provisioning API Endpoint URL; raise ConfigError naming the fault."""
        text, parts = _absolute_url(url)
        cloud = _token_safe_cloud(text, parts, allow_loopback=allow_loopback)
        version, prefix, sp, job = _job_path(text, parts.path, cloud)
        return cls(
            origin=f"{parts.scheme}://{parts.netloc.lower()}{prefix}",
            api_version=version,
            service_principal_id=sp.lower(),
            job_id=job,
            cloud=cloud,
        )

    @classmethod
    def build(
        cls,
        service_principal_id: str,
        job_id: str,
        *,
        cloud: Cloud | str = Cloud.GLOBAL,
        api_version: str = "v1.0",
    ) -> ProvisioningEndpoint:
        """Build the endpoint from ids (+ national cloud); ConfigError when one is malformed."""
        try:
            cloud = Cloud(cloud)
        except ValueError:
            names = ", ".join(c.value for c in Cloud)
            raise ConfigError(f"unknown cloud {cloud!r}; use one of {names}") from None
        if api_version not in API_VERSIONS:
            raise ConfigError(f"unknown Graph API version {api_version!r}; use 'v1.0' or 'beta'")
        sp = service_principal_id.strip()
        job = job_id.strip()
        _check_ids(sp, job)
        return cls(
            origin=f"https://{cloud.host}",
            api_version=api_version,
            service_principal_id=sp.lower(),
            job_id=job,
            cloud=cloud,
        )

    @property
    def host(self) -> str:
        return urlsplit(self.origin).hostname or ""

    @property
    def is_loopback(self) -> bool:
        return is_loopback_host(self.host)

    @property
    def base_url(self) -> str:
        """``origin/version``: the root every Graph call of this target hangs off."""
        return f"{self.origin}/{self.api_version}"

    @property
    def job_url(self) -> str:
        sp = quote(self.service_principal_id, safe="")
        job = quote(self.job_id, safe="")
        return f"{self.base_url}/servicePrincipals/{sp}/synchronization/jobs/{job}"

    @property
    def bulk_upload_url(self) -> str:
        return f"{self.job_url}/bulkUpload"

    @property
    def schema_url(self) -> str:
        return f"{self.job_url}/schema"

    @property
    def logs_url(self) -> str:
        return f"{self.base_url}/auditLogs/provisioning"

    @property
    def scope(self) -> str:
        """The token scope: the endpoint's cloud, or global Graph for the emulator."""
        return (self.cloud or Cloud.GLOBAL).scope

    def __str__(self) -> str:
        return self.bulk_upload_url
