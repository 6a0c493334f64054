"""What callers are told: error text safe for logs."""

from __future__ import annotations


def test_loggable_keeps_type_and_code_and_drops_emails_and_upns() -> None:
    from connector.errors import BadRequestError
    from connector.sync.summary import loggable

    exc = BadRequestError(
        "userPrincipalName 'jane.doe@contoso.com' conflicts with <j.roe@fabrikam.onmicrosoft.com>",
        status=400,
        code="InvalidRequest",
    )
    text = loggable(exc)
    assert text.startswith("BadRequestError[InvalidRequest]: userPrincipalName")
    assert "@" not in text
    assert text.count("<redacted>") == 2
    assert loggable(RuntimeError("")) == "RuntimeError"
