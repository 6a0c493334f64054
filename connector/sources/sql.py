"""The ``sql`` source: a query or table streamed out of a database into a snapshot.

SQLAlchemy 2 opens the database named by the config's URL (PostgreSQL through psycopg 3,
SQLite built in, SQL Server / Azure SQL through a driver installed beside the connector).
Rows are fetched with a server-side cursor in batches of ``fetch_size`` and written one at
a time into the snapshot CSV, so memory stays flat whatever the table size. Values become
text by :mod:`connector.sources.values`.

Credentials never sit in the URL (:mod:`connector.config` refuses a password there):
``auth: password`` reads the password from the app setting the config names, and
``auth: entra`` asks a :class:`~azure.core.credentials.TokenCredential` (the managed
identity in Azure) for a token: PostgreSQL takes it as the password, SQL Server through
pyodbc as the ``SQL_COPT_SS_ACCESS_TOKEN`` (1256) pre-connect attribute.

With ``watermark`` (delta sources) only rows whose watermark column is at or above the
last pull's highest value are read (at-or-above, so rows written in the same instant as
the last pull are not missed; a row read twice is unchanged and sends nothing), and the
snapshot carries the new highest value for the engine to store.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, Protocol

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from connector.errors import (
    EmptySnapshotError,
    SourceAuthError,
    SourceError,
    UnconvertibleValueError,
)
from connector.sources.models import SqlSettings
from connector.sources.snapshot import Snapshot, Watermark, write_snapshot
from connector.sources.values import to_text

__all__ = [
    "AZURE_POSTGRES_SCOPE",
    "AZURE_SQL_SCOPE",
    "SQL_COPT_SS_ACCESS_TOKEN",
    "TokenSource",
    "entra_connect_params",
    "pull_sql",
    "sql_columns",
    "token_hook",
]

#: token scope of Azure SQL Database / Managed Instance (Entra authentication)
AZURE_SQL_SCOPE: Final = "https://database.windows.net/.default"
#: token scope of Azure Database for PostgreSQL (Entra authentication)
AZURE_POSTGRES_SCOPE: Final = "https://ossrdbms-aad.database.windows.net/.default"
#: msodbcsql pre-connect attribute carrying an access token
SQL_COPT_SS_ACCESS_TOKEN: Final = 1256


#: SQLSTATE classes whose messages quote row values: data exception, integrity violation
_DATA_ERROR_CLASSES: Final = frozenset({"22", "23"})


class TokenSource(Protocol):
    """The part of ``azure.core.credentials.TokenCredential`` this module uses."""

    def get_token(self, *scopes: str) -> Any: ...


def _scope_for(dialect: str, configured: str | None) -> str:
    if configured:
        return configured
    return AZURE_SQL_SCOPE if dialect == "mssql" else AZURE_POSTGRES_SCOPE


def entra_connect_params(dialect: str, token: str, cparams: dict[str, Any]) -> None:
    """Put an Entra access token where the dialect's driver expects it.

    PostgreSQL: as the password. SQL Server (pyodbc): UTF-16-LE bytes prefixed with their
    length, as the 1256 attribute in ``attrs_before``. Other dialects cannot take one.
    """
    if dialect == "postgresql":
        cparams["password"] = token
    elif dialect == "mssql":
        raw = token.encode("utf-16-le")
        attrs = dict(cparams.get("attrs_before") or {})
        attrs[SQL_COPT_SS_ACCESS_TOKEN] = struct.pack(f"<I{len(raw)}s", len(raw), raw)
        cparams["attrs_before"] = attrs
    else:
        raise ValueError(f"Entra tokens are for PostgreSQL or SQL Server, not {dialect}")


def token_hook(
    name: str, dialect: str, scope: str, credential: TokenSource
) -> Callable[[Any, Any, Any, dict[str, Any]], None]:
    """The ``do_connect`` listener that fetches a fresh token for every new connection."""

    def _token(_d: Any, _ca: Any, _cargs: Any, cparams: dict[str, Any]) -> None:
        try:
            token = credential.get_token(scope).token
        except Exception as exc:
            raise SourceAuthError(
                name, f"no Entra token for {scope} ({type(exc).__name__})"
            ) from None
        entra_connect_params(dialect, str(token), cparams)

    return _token


def _engine(
    name: str, cfg: SqlSettings, settings: Mapping[str, str], credential: TokenSource | None
) -> sa.Engine:
    url = sa.make_url(cfg.url)
    if cfg.auth == "password":
        assert cfg.password_setting is not None  # the config model requires it
        secret = settings.get(cfg.password_setting)
        if not secret:
            raise SourceError(
                name, f"app setting {cfg.password_setting!r} (the database password) is not set"
            )
        url = url.set(password=secret)
    connect_args: dict[str, Any] = {}
    if url.get_backend_name() == "postgresql":
        connect_args["connect_timeout"] = max(1, int(cfg.connect_timeout))
    engine = sa.create_engine(url, connect_args=connect_args, poolclass=sa.pool.NullPool)
    if cfg.auth == "entra":
        if credential is None:
            raise SourceError(name, "auth: entra needs a managed identity (no credential given)")
        dialect = url.get_backend_name()
        if dialect not in ("postgresql", "mssql"):
            raise SourceError(
                name, f"auth: entra works with PostgreSQL or SQL Server, not {dialect}"
            )
        scope = _scope_for(dialect, cfg.entra_scope)

        sa.event.listen(engine, "do_connect", token_hook(name, dialect, scope, credential))

    return engine


@contextmanager
def _connected(
    name: str, cfg: SqlSettings, settings: Mapping[str, str], credential: TokenSource | None
) -> Iterator[sa.Connection]:
    """A connection whose driver errors come out as :class:`SourceError` naming the source."""
    engine = _engine(name, cfg, settings, credential)
    try:
        with engine.connect() as conn:
            yield conn
    except (sa_exc.DBAPIError, sa_exc.OperationalError) as exc:
        raise _db_error(name, exc) from None
    except sa_exc.SQLAlchemyError as exc:
        raise SourceError(name, f"cannot read the database: {type(exc).__name__}") from None
    finally:
        engine.dispose()


def _select(cfg: SqlSettings, last: Watermark | None) -> sa.Executable:
    """The statement to stream. A query without a watermark runs exactly as written (SQL
    Server refuses an ORDER BY inside a subquery); with one it is wrapped to filter and
    order by the watermark column."""
    if cfg.query is not None and cfg.watermark is None:
        return sa.text(cfg.query)
    if cfg.table is not None:
        schema, _, table = cfg.table.rpartition(".")
        tbl = sa.table(table, schema=schema or None)
        base: sa.Subquery | sa.TableClause = tbl
        stmt = sa.select(sa.text("*")).select_from(tbl)
    else:
        assert cfg.query is not None
        text = sa.text(cfg.query)
        cols: list[sa.ColumnClause[Any]] = [sa.column(cfg.watermark)] if cfg.watermark else []
        base = text.columns(*cols).subquery("src")
        stmt = sa.select(sa.text("*")).select_from(base)
    if cfg.watermark is not None:
        col: sa.ColumnClause[Any] = sa.column(cfg.watermark, _selectable=base)
        if last is not None:
            stmt = stmt.where(col >= _typed(last))
        stmt = stmt.order_by(col)
    return stmt


def _typed(mark: Watermark) -> object:
    kinds: dict[str, Any] = {
        "datetime": datetime.fromisoformat,
        "date": date.fromisoformat,
        "int": int,
        "decimal": Decimal,
        "text": str,
    }
    return kinds.get(mark.kind, str)(mark.text)


def _mark_of(value: object) -> Watermark | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return Watermark("datetime", value.isoformat())
    if isinstance(value, date):
        return Watermark("date", value.isoformat())
    if isinstance(value, bool):
        return Watermark("text", to_text(value, ""))
    if isinstance(value, int):
        return Watermark("int", str(value))
    if isinstance(value, Decimal | float):
        return Watermark("decimal", to_text(value, ""))
    return Watermark("text", str(value))


def _db_error(name: str, exc: sa_exc.DBAPIError | sa_exc.OperationalError) -> SourceError:
    """A driver error as a SourceError naming the source.

    The driver's first message line names hosts, roles, tables and columns and is kept;
    data errors (SQLSTATE classes 22 and 23: a cast or constraint failing on a row) quote
    the offending value, so for them only the SQLSTATE is shown.
    """
    orig = getattr(exc, "orig", exc)
    state = getattr(orig, "sqlstate", None)
    if isinstance(state, str) and state[:2] in _DATA_ERROR_CLASSES:
        return SourceError(
            name,
            f"database error SQLSTATE {state}: a value in the result could not be read or"
            " converted (the value is not shown); check the query's casts",
        )
    text = str(orig).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    low = first.lower()
    auth_state = isinstance(state, str) and state.startswith("28")
    if auth_state or "password" in low or "authentication" in low or "login failed" in low:
        return SourceAuthError(name, f"the database refused the credentials: {first}")
    return SourceError(name, f"database error: {first}")


def pull_sql(
    name: str,
    cfg: SqlSettings,
    *,
    settings: Mapping[str, str],
    credential: TokenSource | None = None,
    last_watermark: Watermark | None = None,
    directory: str | Path | None = None,
) -> Snapshot:
    """Read the source's rows into a canonical CSV snapshot.

    ``settings`` holds app settings / environment variables (secrets are looked up by
    the names the config gives). Raises :class:`SourceError` naming the source when the
    database cannot be reached or read, :class:`SourceAuthError` when it refuses the
    credentials, and :class:`EmptySnapshotError` when a full pull has no rows (a
    watermark pull with no new rows returns an empty snapshot: nothing changed).
    """
    with _connected(name, cfg, settings, credential) as conn:
        result = conn.execution_options(stream_results=True, yield_per=cfg.fetch_size).execute(
            _select(cfg, last_watermark)
        )
        columns = list(map(str, result.keys()))
        wm_index = _watermark_index(name, cfg, columns)
        highest: list[object] = [None]
        rows = _text_rows(name, result, columns, wm_index, highest)
        snap = write_snapshot(name, columns, rows, directory=directory)
    mark = _mark_of(highest[0]) if cfg.watermark else None
    if snap.rows == 0:
        if cfg.watermark and last_watermark is not None:
            return _with_mark(snap, last_watermark)
        snap.discard()
        raise EmptySnapshotError(name, "the query returned no rows; nothing is applied")
    return _with_mark(snap, mark)


def _with_mark(snap: Snapshot, mark: Watermark | None) -> Snapshot:
    return Snapshot(snap.source, snap.path, snap.sha256, snap.rows, snap.columns, mark)


def _watermark_index(name: str, cfg: SqlSettings, columns: Sequence[str]) -> int | None:
    if cfg.watermark is None:
        return None
    if cfg.watermark not in columns:
        raise SourceError(
            name, f"watermark column {cfg.watermark!r} is not among the query's columns"
        )
    return columns.index(cfg.watermark)


def _text_rows(
    name: str,
    result: sa.CursorResult[Any],
    columns: Sequence[str],
    wm_index: int | None,
    highest: list[object],
) -> Iterator[list[str]]:
    pairs = list(enumerate(columns))
    try:
        for row in result:
            if wm_index is not None:
                value = row[wm_index]
                if value is not None and (highest[0] is None or value > highest[0]):
                    highest[0] = value
            yield [to_text(row[i], col) for i, col in pairs]
    except UnconvertibleValueError as exc:
        raise SourceError(name, str(exc)) from None


def sql_columns(
    name: str,
    cfg: SqlSettings,
    *,
    settings: Mapping[str, str],
    credential: TokenSource | None = None,
) -> list[str]:
    """The source's column names (for ``connector validate --source``): the statement is
    opened with a server-side cursor and closed before any row is fetched."""
    with _connected(name, cfg, settings, credential) as conn:
        result = conn.execution_options(stream_results=True, yield_per=1).execute(
            _select(cfg, None)
        )
        try:
            return list(map(str, result.keys()))
        finally:
            result.close()
