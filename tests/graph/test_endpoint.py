"""Parsing and building the provisioning endpoint."""

from __future__ import annotations

import pytest

from connector.errors import ConfigError, UnsafeEndpointError
from connector.graph.endpoint import Cloud, ProvisioningEndpoint

SP = "0b2a9a5c-6c7f-4a5e-9a61-3c1c4a1b2d3e"
JOB = "API2AAD.b16687d38faf42adb29892cdcaf01c6e.1a03de52-b9c3-4e2c-a1e3-9145aaa8e530"
PORTAL = (
    f"https://graph.microsoft.com/beta/servicePrincipals/{SP}/synchronization/jobs/{JOB}/bulkUpload"
)


def test_parse_portal_url() -> None:
    ep = ProvisioningEndpoint.parse(PORTAL)
    assert ep.api_version == "beta"
    assert ep.service_principal_id == SP
    assert ep.job_id == JOB
    assert ep.cloud is Cloud.GLOBAL
    assert ep.bulk_upload_url == PORTAL
    assert ep.logs_url == "https://graph.microsoft.com/beta/auditLogs/provisioning"
    assert ep.scope == "https://graph.microsoft.com/.default"


@pytest.mark.parametrize(
    ("host", "cloud"),
    [
        ("graph.microsoft.us", Cloud.US_GOV),
        ("dod-graph.microsoft.us", Cloud.US_GOV_DOD),
        ("microsoftgraph.chinacloudapi.cn", Cloud.CHINA),
    ],
)
def test_parse_national_clouds(host: str, cloud: Cloud) -> None:
    url = PORTAL.replace("graph.microsoft.com", host).replace("/beta/", "/v1.0/")
    ep = ProvisioningEndpoint.parse(url)
    assert ep.cloud is cloud
    assert ep.api_version == "v1.0"
    assert ep.scope == f"https://{host}/.default"


def test_parse_tolerates_quotes_whitespace_trailing_slash_and_job_url() -> None:
    assert ProvisioningEndpoint.parse(f"  '{PORTAL}/' ").job_id == JOB
    assert ProvisioningEndpoint.parse(PORTAL.removesuffix("/bulkUpload")).job_id == JOB


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("", "empty"),
        ("graph.microsoft.com/beta/x", "absolute"),
        (PORTAL.replace("/beta/", "/v2.0/"), "unknown Graph API version"),
        (PORTAL.replace(SP, "{servicePrincipalId}"), "replace {servicePrincipalId}"),
        (PORTAL.replace(SP, "my-app"), "not a GUID"),
        (PORTAL.replace(JOB, "{jobId}"), "replace {jobId}"),
        (PORTAL.replace(JOB, "job%20id"), "characters"),
        (PORTAL + "?x=1", "query"),
        (PORTAL.replace("/synchronization/jobs", "/jobs"), "is not"),
    ],
)
def test_parse_rejects_malformed(url: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        ProvisioningEndpoint.parse(url)


@pytest.mark.parametrize(
    "url",
    [
        PORTAL.replace("graph.microsoft.com", "graph.microsoft.com.evil.example"),
        PORTAL.replace("https://", "http://"),
        PORTAL.replace("graph.microsoft.com", "graph.microsoft.com:8443"),
        PORTAL.replace("graph.microsoft.com", "10.0.0.1"),
    ],
)
def test_parse_refuses_unsafe_hosts(url: str) -> None:
    with pytest.raises(UnsafeEndpointError):
        ProvisioningEndpoint.parse(url)


def test_loopback_only_when_allowed() -> None:
    url = f"http://127.0.0.1:8089/v1.0/servicePrincipals/{SP}/synchronization/jobs/{JOB}/bulkUpload"
    with pytest.raises(UnsafeEndpointError, match="loopback"):
        ProvisioningEndpoint.parse(url)
    ep = ProvisioningEndpoint.parse(url, allow_loopback=True)
    assert ep.is_loopback
    assert ep.base_url == "http://127.0.0.1:8089/v1.0"
    assert ep.scope == "https://graph.microsoft.com/.default"


def test_build_from_ids() -> None:
    ep = ProvisioningEndpoint.build(SP.upper(), JOB, cloud="usgov")
    assert ep.bulk_upload_url == PORTAL.replace(
        "graph.microsoft.com", "graph.microsoft.us"
    ).replace("/beta/", "/v1.0/")
    with pytest.raises(ConfigError, match="unknown cloud"):
        ProvisioningEndpoint.build(SP, JOB, cloud="mars")
    with pytest.raises(ConfigError, match="not a GUID"):
        ProvisioningEndpoint.build("abc", JOB)
