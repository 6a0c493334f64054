"""The ``sql:`` and ``rest:`` blocks of a pulled source in the sources config.

Secrets never appear here: every credential is named by the app setting (environment
variable; in Azure possibly a Key Vault reference) that holds it. A URL carrying a
password is refused with the key to use instead.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from connector.graph.endpoint import is_loopback_host
from connector.sources.jsonpath import parse_path

__all__ = [
    "ApiKeyAuth",
    "BasicAuth",
    "BearerAuth",
    "CursorPaging",
    "OAuth2ClientCredentials",
    "OffsetPaging",
    "RestAuth",
    "RestSettings",
    "SqlSettings",
]

SettingName = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$",
        description="Name of the app setting / environment variable holding the value.",
    ),
]
_IDENT = r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def check_http_url(value: str, what: str) -> str:
    """HTTPS, or plain HTTP to a loopback host only (local tests and tools)."""
    try:
        parts = urlsplit(value)
    except ValueError:
        raise ValueError(f"{what} is not a URL") from None
    host = parts.hostname or ""
    if not host or parts.scheme not in ("https", "http"):
        raise ValueError(f"{what} must be an https:// URL")
    if parts.scheme == "http" and not is_loopback_host(host):
        raise ValueError(f"{what} must use https:// (plain http only to a loopback host)")
    if parts.username or parts.password:
        raise ValueError(f"{what} must not carry credentials; use the auth block")
    return value


class SqlSettings(_Model):
    """Where and how to read a ``sql`` source."""

    url: str = Field(
        description="SQLAlchemy URL without a password, e.g."
        " postgresql+psycopg://hr-reader@db.example.com/hr or sqlite:///hr.db."
    )
    query: str | None = Field(None, description="A SELECT whose rows are the records.")
    table: str | None = Field(
        None, pattern=_IDENT, description="Instead of query: a table or view, [schema.]name."
    )
    auth: Literal["none", "password", "entra"] = Field(
        "none",
        description="none (SQLite, trust), password (from password_setting) or entra"
        " (managed-identity token; Azure SQL or Azure Database for PostgreSQL).",
    )
    password_setting: SettingName | None = None
    entra_scope: str | None = Field(
        None, description="Token scope; default by dialect (Azure SQL or Azure PostgreSQL)."
    )
    watermark: str | None = Field(
        None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_$]*$",
        description="Delta sources: a column that grows on every change; only rows at or"
        " above the last pull's highest value are read.",
    )
    fetch_size: int = Field(1000, ge=1, le=100_000, description="Rows per fetch.")
    connect_timeout: float = Field(30.0, gt=0, le=600, description="Seconds.")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        # SQLAlchemy is imported here, not at module level: loading a sources config
        # (every Functions invocation) should not pay for it unless a sql source exists.
        from sqlalchemy import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError(
                "url is not a SQLAlchemy URL (dialect+driver://user@host/database)"
            ) from None
        if url.password is not None:
            raise ValueError(
                "url must not contain a password; name the app setting holding it with"
                " password_setting (auth: password), or use auth: entra"
            )
        return value

    @model_validator(mode="after")
    def _check(self) -> SqlSettings:
        if (self.query is None) == (self.table is None):
            raise ValueError("give exactly one of query or table")
        if self.auth == "password" and self.password_setting is None:
            raise ValueError("auth: password needs password_setting (the app setting's name)")
        if self.auth != "password" and self.password_setting is not None:
            raise ValueError("password_setting is used only with auth: password")
        from sqlalchemy import make_url

        backend = make_url(self.url).get_backend_name()
        if self.auth == "entra" and backend not in ("postgresql", "mssql"):
            raise ValueError("auth: entra works with postgresql or mssql URLs")
        return self


class OAuth2ClientCredentials(_Model):
    """OAuth 2.0 client credentials: a token from ``token_url``, sent as a bearer token."""

    type: Literal["oauth2_client_credentials"]
    token_url: str
    client_id_setting: SettingName
    client_secret_setting: SettingName
    scope: str | None = None

    @field_validator("token_url")
    @classmethod
    def _token_url(cls, value: str) -> str:
        return check_http_url(value, "token_url")


class BearerAuth(_Model):
    """A static bearer token read from an app setting."""

    type: Literal["bearer"]
    token_setting: SettingName


class ApiKeyAuth(_Model):
    """An API key sent in a header."""

    type: Literal["api_key"]
    header: str = Field("X-API-Key", pattern=r"^[A-Za-z0-9-]{1,64}$")
    key_setting: SettingName


class BasicAuth(_Model):
    """HTTP basic: user name given or read from a setting; password always from a setting."""

    type: Literal["basic"]
    username: str | None = None
    username_setting: SettingName | None = None
    password_setting: SettingName

    @model_validator(mode="after")
    def _user(self) -> BasicAuth:
        if (self.username is None) == (self.username_setting is None):
            raise ValueError("give exactly one of username or username_setting")
        return self


RestAuth = Annotated[
    OAuth2ClientCredentials | BearerAuth | ApiKeyAuth | BasicAuth, Field(discriminator="type")
]


class OffsetPaging(_Model):
    """Pages by offset and limit query parameters; stops at a short page."""

    type: Literal["offset"]
    offset_param: str = "offset"
    limit_param: str = "limit"
    limit: int = Field(100, ge=1, le=100_000)
    start: int = Field(0, ge=0)


class CursorPaging(_Model):
    """Pages by a cursor read from each answer and sent as a query parameter."""

    type: Literal["cursor"]
    cursor: str = Field(description="Path of the next cursor in the answer, e.g. $.next_cursor.")
    cursor_param: str = "cursor"

    @field_validator("cursor")
    @classmethod
    def _path(cls, value: str) -> str:
        parse_path(value)
        return value


class RestSettings(_Model):
    """Where and how to read a ``rest`` source."""

    url: str
    method: Literal["GET", "POST"] = "GET"
    body: dict[str, Any] | list[Any] | None = Field(None, description="JSON body for POST.")
    params: dict[str, str] = Field(default_factory=dict, description="Query parameters.")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra request headers.")
    records: str = Field("$[*]", description="Where the records are in each page.")
    next: str | None = Field(None, description="Path of the next page's link, if paged so.")
    paging: Annotated[OffsetPaging | CursorPaging, Field(discriminator="type")] | None = None
    auth: RestAuth | None = None
    timeout: float = Field(60.0, gt=0, le=600, description="Seconds per request.")
    max_retries: int = Field(5, ge=0, le=20, description="Retries of 429, 5xx, dropped links.")
    max_pages: int = Field(10_000, ge=1)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_http_url(value, "url")

    @field_validator("records", "next")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        if value is not None:
            parse_path(value)
        return value

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if name.lower() in ("authorization", "cookie", "proxy-authorization"):
                raise ValueError(
                    f"header {name!r} carries credentials; configure them in the auth block"
                )
        return value

    @model_validator(mode="after")
    def _check(self) -> RestSettings:
        if self.next is not None and self.paging is not None:
            raise ValueError("give next (link paging) or paging, not both")
        if self.body is not None and self.method != "POST":
            raise ValueError("body needs method: POST")
        return self
