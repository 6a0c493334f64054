"""The connector's exceptions: one small tree, each with a message a person can act on.

    ConnectorError
    ├── ConfigError                  bad settings, sources config or endpoint URL
    │   ├── MappingError             mapping file invalid (carries every problem found)
    │   ├── Psd1Error                a CSV2SCIM .psd1 mapping that cannot be read as a data file
    │   │   └── UntranslatableError  one psd1 entry has no equivalent in the mapping language
    │   └── UnsafeEndpointError      a token would leave for a host that is not Graph
    ├── ExtractError                 an HR extract that cannot be read as a whole
    │   ├── TooManyRejectedRowsError the file's rejected-row share is over the cap
    │   │   └── RejectedShareExceededError  the same, listing the rejected rows
    │   └── ReadAgainError           ids counted while reading repeat: read the file again
    ├── TransformError               one row's value cannot be mapped (the row is rejected)
    ├── OperationTooLargeError       one record alone is over the request byte cap
    ├── GraphError                   Microsoft Graph (or the emulator) said no
    │   ├── AuthenticationError      401: token missing, expired or not accepted
    │   ├── PermissionDeniedError    403: the identity lacks an app role
    │   ├── NotFoundError            404: service principal or job does not exist
    │   ├── BadRequestError          400: the payload was refused (not retryable as is)
    │   │   └── SystemicRefusalError 400 about the payload's shape for the job, not records
    │   ├── ThrottledError           429 after every permitted retry
    │   ├── BucketFullError          500 "bucket full": back-pressure from the job queue
    │   ├── QuotaExhaustedError      the daily call budget is spent
    │   ├── ServiceError             other 5xx after every permitted retry
    │   └── TransportError           timeouts and dropped connections after retries
    ├── StateError                   the state store cannot be read or written
    │   ├── DocumentConflictError    a conditional write lost: re-read and try again
    │   └── ConcurrentRunError       another run holds the source's lock
    │       └── LockLostError        this run lost the lock it held; it stops
    ├── RunError                     a run cannot move to the state asked for
    ├── SourceError                  a sql/rest source cannot be pulled (names the source)
    │   ├── SourceAuthError          the database or API refused the credentials
    │   └── EmptySnapshotError       the pull returned no rows: nothing is applied
    ├── UnconvertibleValueError      a pulled value has no text form (bytes, NaN); names the column
    └── EmulatorError                the local emulator refuses a request (it answers 400)
        ├── BulkValidationError      a BulkRequest body breaks a documented rule
        ├── FilterError              a $filter / $top / $skiptoken it cannot evaluate
        └── SchemaError              a synchronizationSchema body it cannot use

Arguments a programmer passes wrongly (a negative window, an unknown transform name while
a mapping is compiled) stay ``ValueError``/``TypeError``: they are bugs or are turned into
mapping problems with a line number, never shown to a user as such.

Row-level problems (a bad line in an extract) are data, not exceptions: they are
reported with their line number and the rest of the file goes on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:  # extract.py imports this module; the types are for annotations only
    from connector.extract import ExtractStats, RejectedRow

__all__ = [
    "AuthenticationError",
    "BadRequestError",
    "BucketFullError",
    "BulkValidationError",
    "ConcurrentRunError",
    "ConfigError",
    "ConnectorError",
    "DocumentConflictError",
    "EmptySnapshotError",
    "EmulatorError",
    "ExtractError",
    "FilterError",
    "GraphError",
    "LockLostError",
    "MappingError",
    "NotFoundError",
    "OperationTooLargeError",
    "PermissionDeniedError",
    "Psd1Error",
    "QuotaExhaustedError",
    "ReadAgainError",
    "RejectedShareExceededError",
    "RunError",
    "SchemaError",
    "ServiceError",
    "SourceAuthError",
    "SourceError",
    "StateError",
    "SystemicRefusalError",
    "ThrottledError",
    "TooManyRejectedRowsError",
    "TransformError",
    "TransportError",
    "UnconvertibleValueError",
    "UnsafeEndpointError",
    "UntranslatableError",
]


class ConnectorError(Exception):
    """Base of every error the connector raises on purpose."""


class ConfigError(ConnectorError):
    """A setting, sources config or endpoint is missing or malformed."""


class MappingError(ConfigError):
    """A mapping file is invalid. ``problems`` lists every problem, each with its location."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        self.problems: list[str] = list(problems or [])
        if self.problems:
            message = message + "\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(message)


class Psd1Error(ConfigError):
    """A PowerShell data file (CSV2SCIM's AttributeMapping.psd1) cannot be read or parsed.

    The message starts with ``file:line:`` so an editor can jump to the spot.
    """

    def __init__(self, message: str, *, path: str, line: int | None = None) -> None:
        self.path = path
        self.line = line
        self.detail = message
        where = path if line is None else f"{path}:{line}"
        super().__init__(f"{where}: {message}")


class UntranslatableError(Psd1Error):
    """One psd1 entry has no equivalent in the mapping language; it is left as a placeholder."""


class UnsafeEndpointError(ConfigError):
    """A request carrying a token would go to a host that is not an allowed Graph host."""


class ExtractError(ConnectorError):
    """An HR extract cannot be processed as a whole (encoding, header, too many bad rows)."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None) -> None:
        self.path = path
        self.line = line
        where = ""
        if path is not None:
            where = f"{path}"
            if line is not None:
                where += f", line {line}"
            where += ": "
        elif line is not None:
            where = f"line {line}: "
        super().__init__(where + message)


class TooManyRejectedRowsError(ExtractError):
    """More rows were rejected than the configured share allows; the file is not applied."""


class ReadAgainError(ExtractError):
    """Ids counted during the one read of an extract repeat; the caller reads it again.

    Raised only to callers that asked to have the ids checked while the rows are read
    (``ids_in_pass``), after the last row: the rows handed out so far include rows whose
    id repeats, so they must be dropped. ``duplicates`` (hashes of the repeated ids, valid
    in this process only) lets the second read reject every such row without reading
    the id column first.
    """

    def __init__(self, message: str, *, path: str | None, duplicates: set[int]) -> None:
        super().__init__(message, path=path)
        self.duplicates = duplicates


class GraphError(ConnectorError):
    """Microsoft Graph refused or failed a call.

    ``status`` is the HTTP status (None for transport errors); ``request_id`` the
    ``request-id`` header when the service sent one, for Microsoft support.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        request_id: str | None = None,
        code: str | None = None,
    ) -> None:
        self.status = status
        self.request_id = request_id
        self.code = code
        super().__init__(message)


class AuthenticationError(GraphError):
    """401: the token was missing, expired or not accepted, even after one refresh."""


class PermissionDeniedError(GraphError):
    """403: the identity lacks the Graph application permission named in the message."""


class NotFoundError(GraphError):
    """404: the service principal or provisioning job does not exist."""


class BadRequestError(GraphError):
    """400: the service refused the payload; resending it unchanged will not help."""


class ThrottledError(GraphError):
    """429 persisted after every permitted retry."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: object) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kw)  # type: ignore[arg-type]


class BucketFullError(GraphError):
    """500 "bucket full": the job's queue is full (failed payloads stay until a restart)."""


class QuotaExhaustedError(GraphError):
    """The daily call budget is spent; the remaining batches wait for the next run."""


class ServiceError(GraphError):
    """A 5xx other than bucket full persisted after every permitted retry."""


class TransportError(GraphError):
    """Timeouts or dropped connections persisted after every permitted retry."""


class StateError(ConnectorError):
    """The state store could not be read or written."""


class ConcurrentRunError(StateError):
    """Another run of the same source holds its lock; try again when it has finished."""


class RunError(ConnectorError):
    """A run cannot move to the requested state (e.g. approving a run that is not held)."""


class LockLostError(ConcurrentRunError):
    """This process lost the source's lock while working (renewal failed or taken over);
    it stops writing at once and leaves the rest to the new holder."""


class RejectedShareExceededError(TooManyRejectedRowsError):
    """The rejected-row cap refused the file; carries the rejected rows found, for error files.

    ``rejected`` holds the first :attr:`MAX_LISTED` rejected rows in file order (line,
    externalId, reason code, message without field values); ``stats`` the counts for the
    whole file as far as it was read (``rows_read``, ``rows_rejected``,
    ``rejected_by_reason``); ``rejected_omitted`` how many rejected rows are counted in
    ``stats`` but not listed. Catching :class:`TooManyRejectedRowsError` still catches it.
    """

    #: how many rejected rows the error lists (the first, in file order); bounds its memory
    MAX_LISTED: ClassVar[int] = 1000

    def __init__(
        self,
        message: str,
        *,
        path: str | None,
        rejected: list[RejectedRow],
        stats: ExtractStats,
    ) -> None:
        super().__init__(message, path=path)
        self.rejected: tuple[RejectedRow, ...] = tuple(rejected[: self.MAX_LISTED])
        self.stats: ExtractStats = type(stats)(stats.rows_accepted, dict(stats.rejected_by_reason))
        self.rejected_omitted = max(0, self.stats.rows_rejected - len(self.rejected))


class TransformError(ConnectorError):
    """A row's value could not be transformed; ``reason_code`` goes to the rejected row."""

    def __init__(self, message: str, reason_code: str = "transform_failed") -> None:
        self.reason_code = reason_code
        super().__init__(message)


class OperationTooLargeError(ConnectorError):
    """One operation alone is bigger than the request byte cap."""

    def __init__(self, bulk_id: str, size: int, cap: int) -> None:
        self.bulk_id = bulk_id
        self.size = size
        self.cap = cap
        super().__init__(
            f"operation {bulk_id} serializes to {size} bytes, over the request cap of {cap} bytes;"
            " shorten its values or raise the cap"
        )


class SystemicRefusalError(BadRequestError):
    """A 400 that is about the payload's shape for this job, not about single records."""


class DocumentConflictError(StateError):
    """A conditional write lost: the document (or record index) changed since it was read.

    Re-read, re-apply the change and try again; never overwrite blindly.
    """


class EmulatorError(ConnectorError):
    """The local emulator refuses a request; it answers 400 with this message."""


class BulkValidationError(EmulatorError):
    """The BulkRequest body breaks a documented rule; the message names the rule and place."""


class FilterError(EmulatorError):
    """The $filter cannot be evaluated; the message says which part and why."""


class SchemaError(EmulatorError):
    """A PUT schema body that cannot be used; the message names the offending part."""


class SourceError(ConnectorError):
    """A ``sql`` or ``rest`` source could not be pulled; nothing from it is applied.

    The message names the source and what failed (host, status, column), never a
    secret or a field value. ``source`` is the source's name.
    """

    def __init__(self, source: str, message: str) -> None:
        self.source = source
        super().__init__(f"source {source!r}: {message}")


class SourceAuthError(SourceError):
    """The database or HR API refused the credentials (wrong secret, expired, no access)."""


class EmptySnapshotError(SourceError):
    """A pull returned no rows; refused so an empty answer never reads as "everyone left"."""


class UnconvertibleValueError(ConnectorError):
    """A database or API value has no faithful text form (binary, NaN, infinity).

    Names the column, never the value; the reader wraps it in a :class:`SourceError`.
    """

    def __init__(self, column: str, kind: str) -> None:
        self.column = column
        super().__init__(
            f"column {column!r} holds {kind} values, which have no text form; leave the column"
            " out of the query or convert it there (e.g. to hex or base64)"
        )
