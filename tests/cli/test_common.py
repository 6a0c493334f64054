"""Shared CLI helpers: ISO timestamps and the one-line form of credential failures."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta, timezone

import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import CredentialUnavailableError

from connector.cli.common import (
    credential_failure_line,
    error_lines,
    iso_utc,
    quiet_credential_logs,
)
from connector.errors import AuthenticationError, ConfigError

CHAIN = (
    "DefaultAzureCredential failed to retrieve a token from the included credentials.\n"
    "Attempted credentials:\n"
    "\tEnvironmentCredential: EnvironmentCredential authentication unavailable.\n"
    "\tAzureCliCredential: Azure CLI not found on path\n"
    "To mitigate this issue, please refer to the troubleshooting guidelines here at"
    " https://aka.ms/azsdk/python/identity/defaultazurecredential/troubleshoot."
)


def wrapped(cause: BaseException) -> AuthenticationError:
    """An AuthenticationError the way the token provider raises it: azure cause chained."""
    try:
        raise AuthenticationError(f"could not get a Graph token: {cause}. Check…") from cause
    except AuthenticationError as exc:
        return exc


def test_iso_utc_is_to_the_second_with_z() -> None:
    moment = datetime(2026, 11, 26, 23, 57, 7, 877000, tzinfo=UTC)
    assert iso_utc(moment) == "2026-11-26T23:57:07Z"
    plus_two = moment.astimezone(timezone(timedelta(hours=2)))
    assert iso_utc(plus_two) == "2026-11-26T23:57:07Z"
    assert iso_utc(datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02T03:04:05Z"
    assert iso_utc(None) == "?"


def test_default_credential_chain_becomes_one_line_and_a_hint() -> None:
    lines = error_lines(wrapped(ClientAuthenticationError(CHAIN)), command="logs", auth="default")
    assert len(lines) == 2
    assert lines[0].startswith("error: could not get a Graph token with --auth default:")
    assert "DefaultAzureCredential found no signed-in identity" in lines[0]
    assert "\n" not in lines[0]
    assert "troubleshoot" not in lines[0]
    assert lines[1] == (
        "pass --token TOKEN, or --auth managed-identity|certificate|secret"
        " (see connector logs --help)"
    )


def test_other_credential_keeps_its_first_line_without_the_links() -> None:
    cause = CredentialUnavailableError(
        "ManagedIdentityCredential authentication unavailable, no response from the IMDS"
        " endpoint. Visit https://aka.ms/azsdk/python/identity/managedidentitycredential/x\n"
        "second line"
    )
    line = credential_failure_line(wrapped(cause), auth="managed-identity")
    assert line == (
        "could not get a Graph token with --auth managed-identity: ManagedIdentityCredential"
        " authentication unavailable, no response from the IMDS endpoint"
    )
    long = credential_failure_line(wrapped(ClientAuthenticationError("x" * 500)))
    assert long is not None
    assert len(long) < 260
    assert long.endswith("…")


def test_other_errors_keep_their_message() -> None:
    graph_401 = AuthenticationError("Graph answered 401 twice: the token was rejected")
    assert credential_failure_line(graph_401) is None
    assert error_lines(graph_401, command="status") == [f"error: {graph_401}"]
    assert error_lines(ConfigError("bad endpoint"), command="status") == ["error: bad endpoint"]


def test_quiet_credential_logs_mutes_the_chain_report_then_restores(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("azure.identity._credentials.chained")
    before = logging.getLogger("azure.identity").level
    with caplog.at_level(logging.WARNING), quiet_credential_logs():
        logger.warning("chain report")
        logger.error("real error")
    assert [r.getMessage() for r in caplog.records] == ["real error"]
    assert logging.getLogger("azure.identity").level == before
