"""The ``rest`` source: a paged JSON API read into a snapshot.

Each page's records are found with a small JSONPath (:mod:`connector.sources.jsonpath`),
flattened (nested objects to dotted columns ``address.city``; arrays by index,
``emails.0.value``; scalars by :mod:`connector.sources.values`) and spooled to a
temporary JSON-lines file while the union of column names is collected in first-seen
order; then the snapshot CSV is written from the spool. Memory holds one page and the
column names, whatever the number of records.

Paging: a next link (``next: "$['@odata.nextLink']"``), offset/limit, or a cursor.
429 (honouring Retry-After), 5xx and dropped connections are retried with bounded
backoff. Credentials go only to the configured host: a next link to another host is an
error, and redirects are never followed.
"""

from __future__ import annotations

import base64
import email.utils
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Final
from urllib.parse import urljoin, urlsplit

import httpx
import orjson

from connector.errors import (
    EmptySnapshotError,
    SourceAuthError,
    SourceError,
    UnconvertibleValueError,
)
from connector.sources.jsonpath import parse_path
from connector.sources.models import (
    ApiKeyAuth,
    BasicAuth,
    BearerAuth,
    CursorPaging,
    OAuth2ClientCredentials,
    OffsetPaging,
    RestSettings,
)
from connector.sources.snapshot import Snapshot, write_snapshot
from connector.sources.values import to_text

__all__ = ["flatten", "pull_rest", "rest_columns"]

MAX_BACKOFF: Final = 30.0
MAX_RETRY_AFTER: Final = 300.0
Sleep = Callable[[float], None]


def flatten(record: Mapping[str, Any], column: str = "") -> dict[str, str]:
    """One JSON object as ``{dotted column: text}``; empty objects and arrays add nothing."""
    out: dict[str, str] = {}
    _flatten_into(out, record, column)
    return out


def _flatten_into(out: dict[str, str], value: Any, prefix: str) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten_into(out, inner, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            _flatten_into(out, inner, f"{prefix}.{i}" if prefix else str(i))
    else:
        out[prefix] = to_text(value, prefix)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port


def _setting(name: str, settings: Mapping[str, str], key: str, what: str) -> str:
    value = settings.get(key)
    if not value:
        raise SourceError(name, f"app setting {key!r} ({what}) is not set")
    return value


def _retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    if raw.isdigit():
        return min(float(raw), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max(0.0, (when - datetime.now(UTC)).total_seconds()), MAX_RETRY_AFTER)


class _Session:
    """One pull's HTTP conversation: auth headers, retries and the host rule."""

    def __init__(
        self,
        name: str,
        cfg: RestSettings,
        settings: Mapping[str, str],
        transport: httpx.BaseTransport | None,
        sleep: Sleep,
    ) -> None:
        self.name = name
        self.cfg = cfg
        self.settings = settings
        self.sleep = sleep
        self.origin = _origin(cfg.url)
        self.client = httpx.Client(transport=transport, timeout=cfg.timeout, follow_redirects=False)
        self._token: str | None = None

    def close(self) -> None:
        self.client.close()

    # -- auth -------------------------------------------------------------------------------

    def _auth_headers(self) -> dict[str, str]:
        auth = self.cfg.auth
        if auth is None:
            return {}
        if isinstance(auth, OAuth2ClientCredentials):
            if self._token is None:
                self._token = self._fetch_token(auth)
            return {"Authorization": f"Bearer {self._token}"}
        if isinstance(auth, BearerAuth):
            token = _setting(self.name, self.settings, auth.token_setting, "the bearer token")
            return {"Authorization": f"Bearer {token}"}
        if isinstance(auth, ApiKeyAuth):
            key = _setting(self.name, self.settings, auth.key_setting, "the API key")
            return {auth.header: key}
        return {"Authorization": self._basic(auth)}

    def _basic(self, auth: BasicAuth) -> str:
        user = auth.username
        if user is None:
            assert auth.username_setting is not None
            user = _setting(self.name, self.settings, auth.username_setting, "the user name")
        password = _setting(self.name, self.settings, auth.password_setting, "the password")
        pair = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        return f"Basic {pair}"

    def _fetch_token(self, auth: OAuth2ClientCredentials) -> str:
        data = {
            "grant_type": "client_credentials",
            "client_id": _setting(self.name, self.settings, auth.client_id_setting, "client id"),
            "client_secret": _setting(
                self.name, self.settings, auth.client_secret_setting, "client secret"
            ),
        }
        if auth.scope:
            data["scope"] = auth.scope
        response = self._send("POST", auth.token_url, data=data, what="the token endpoint")
        if response.status_code in (400, 401, 403):
            raise SourceAuthError(
                self.name,
                f"the token endpoint refused the client credentials (HTTP {response.status_code})",
            )
        self._check_status(response, "the token endpoint")
        try:
            token = orjson.loads(response.content)["access_token"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            raise SourceAuthError(self.name, "the token endpoint sent no access_token") from None
        return str(token)

    # -- requests ---------------------------------------------------------------------------

    def _send(self, method: str, url: str, *, what: str, **kw: Any) -> httpx.Response:
        """Send with retries of 429, 5xx and transport failures; other answers returned."""
        host = urlsplit(url).hostname or url
        for attempt in range(self.cfg.max_retries + 1):
            last = attempt == self.cfg.max_retries
            try:
                response = self.client.request(method, url, **kw)
            except httpx.TransportError as exc:
                if last:
                    raise SourceError(
                        self.name,
                        f"cannot reach {what} at {host} ({type(exc).__name__}) after"
                        f" {attempt + 1} attempts",
                    ) from None
                self.sleep(min(MAX_BACKOFF, 2.0**attempt))
                continue
            if response.status_code == 429 or response.status_code >= 500:
                if last:
                    return response
                wait = _retry_after(response)
                self.sleep(wait if wait is not None else min(MAX_BACKOFF, 2.0**attempt))
                continue
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    def _check_status(self, response: httpx.Response, what: str) -> None:
        code = response.status_code
        if code < 300:
            return
        if 300 <= code < 400:
            raise SourceError(
                self.name,
                f"{what} answered a redirect (HTTP {code}); redirects are not followed: put the"
                " final URL in the config",
            )
        if code in (401, 403):
            raise SourceAuthError(self.name, f"{what} refused the credentials (HTTP {code})")
        tried = f" after {self.cfg.max_retries} retries" if code == 429 or code >= 500 else ""
        raise SourceError(self.name, f"{what} answered HTTP {code}{tried}")

    def get_page(self, url: str, params: dict[str, str] | None) -> Any:
        """One page as parsed JSON; a 401 with OAuth gets one fresh token and one retry."""
        if _origin(url) != self.origin:
            raise SourceError(
                self.name,
                f"a next link points to {urlsplit(url).hostname}, not the configured host"
                f" {self.origin[1]}; credentials are only sent to the configured host",
            )
        kw: dict[str, Any] = {"params": params}
        if self.cfg.body is not None:
            kw["json"] = self.cfg.body
        for refresh in (False, True):
            headers = {"Accept": "application/json", **self.cfg.headers, **self._auth_headers()}
            response = self._send(self.cfg.method, url, what="the API", headers=headers, **kw)
            if (
                response.status_code == 401
                and not refresh
                and isinstance(self.cfg.auth, OAuth2ClientCredentials)
            ):
                self._token = None
                continue
            break
        self._check_status(response, "the API")
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise SourceError(self.name, "the API's answer is not JSON") from None


def _pages(session: _Session) -> Iterator[tuple[int, Any]]:
    """(page number, parsed page) for every page of the source."""
    cfg = session.cfg
    url = cfg.url
    params: dict[str, str] | None = dict(cfg.params)
    paging = cfg.paging
    next_path = parse_path(cfg.next) if cfg.next else None
    cursor_path = parse_path(paging.cursor) if isinstance(paging, CursorPaging) else None
    records = parse_path(cfg.records)
    offset = paging.start if isinstance(paging, OffsetPaging) else 0
    seen_cursors: set[str] = set()
    for page in range(1, cfg.max_pages + 1):
        if isinstance(paging, OffsetPaging):
            params = {
                **cfg.params,
                paging.offset_param: str(offset),
                paging.limit_param: str(paging.limit),
            }
        doc = session.get_page(url, params)
        yield page, doc
        if next_path is not None:
            link = next_path.first(doc)
            if not link:
                return
            url, params = urljoin(url, str(link)), None
        elif isinstance(paging, OffsetPaging):
            if len(records.find(doc)) < paging.limit:
                return
            offset += paging.limit
        elif isinstance(paging, CursorPaging) and cursor_path is not None:
            cursor = cursor_path.first(doc)
            if cursor is None or cursor == "" or str(cursor) in seen_cursors:
                return
            seen_cursors.add(str(cursor))
            params = {**cfg.params, paging.cursor_param: str(cursor)}
        else:
            return
    raise SourceError(
        session.name, f"more than max_pages ({cfg.max_pages}) pages; raise it if that is right"
    )


def _spool_records(session: _Session, spool: BinaryIO, limit: int | None) -> dict[str, None]:
    """Write flattened records as JSON lines; returns the columns in first-seen order."""
    records = parse_path(session.cfg.records)
    columns: dict[str, None] = {}
    count = 0
    for page, doc in _pages(session):
        for i, record in enumerate(records.find(doc)):
            if not isinstance(record, dict):
                raise SourceError(
                    session.name, f"record {i + 1} on page {page} is not a JSON object"
                )
            try:
                flat = flatten(record)
            except UnconvertibleValueError as exc:
                raise SourceError(session.name, str(exc)) from None
            for key in flat:
                if key not in columns:
                    columns[key] = None
            spool.write(orjson.dumps(flat) + b"\n")
            count += 1
        if limit is not None and count >= limit:
            break
    return columns


@contextmanager
def _spooled(
    name: str,
    cfg: RestSettings,
    settings: Mapping[str, str],
    transport: httpx.BaseTransport | None,
    sleep: Sleep,
    limit: int | None,
    directory: str | Path | None,
) -> Iterator[tuple[BinaryIO, list[str]]]:
    """The source's records spooled (rewound) and their columns; the spool is deleted after."""
    session = _Session(name, cfg, settings, transport, sleep)
    try:
        with tempfile.TemporaryFile(dir=directory) as spool:
            columns = _spool_records(session, spool, limit)
            spool.seek(0)
            yield spool, list(columns)
    finally:
        session.close()


def pull_rest(
    name: str,
    cfg: RestSettings,
    *,
    settings: Mapping[str, str],
    transport: httpx.BaseTransport | None = None,
    sleep: Sleep = time.sleep,
    directory: str | Path | None = None,
) -> Snapshot:
    """Read every page into a canonical CSV snapshot.

    Raises :class:`SourceError` naming the source (unreachable API, HTTP errors after
    retries, a foreign next link, a bad answer), :class:`SourceAuthError` for refused
    credentials and :class:`EmptySnapshotError` when no record came back.
    """
    with _spooled(name, cfg, settings, transport, sleep, None, directory) as (spool, cols):
        if not cols:
            raise EmptySnapshotError(name, "the API returned no records; nothing is applied")

        def rows() -> Iterator[list[str]]:
            for line in spool:
                flat = orjson.loads(line)
                yield [flat.get(c, "") for c in cols]

        return write_snapshot(name, cols, rows(), directory=directory)


def rest_columns(
    name: str,
    cfg: RestSettings,
    *,
    settings: Mapping[str, str],
    transport: httpx.BaseTransport | None = None,
    sleep: Sleep = time.sleep,
) -> list[str]:
    """The columns of the first page's records (for ``connector validate --source``)."""
    with _spooled(name, cfg, settings, transport, sleep, 1, None) as (_spool, cols):
        return cols
