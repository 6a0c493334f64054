"""Provisioning logs: the OData query the client sends and the entry reconciliation reads.

:class:`LogQuery` builds the ``$filter``/``$top``/``$orderby`` parameters (pure); the
client pages through the answers as :class:`~connector.graph.models.ProvisioningObjectSummary`
and :func:`log_entry` turns one into the :class:`~connector.reconcile.LogEntry` that
reconciliation matches, in one typed step (it reads exactly what
``LogEntry.from_graph`` reads from Graph's JSON).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from connector.errors import StateError
from connector.graph.models import ProvisioningObjectSummary
from connector.reconcile import LogEntry, entry_reason

__all__ = [
    "FALLBACK_PAGE_SIZE",
    "LOG_PAGE_SIZE",
    "SINCE_MARGIN",
    "LogCursor",
    "LogQuery",
    "log_entry",
    "odata_datetime",
    "odata_string",
]


def odata_string(value: str) -> str:
    """An OData string literal: single-quoted, embedded quotes doubled."""
    return "'" + value.replace("'", "''") + "'"


def odata_datetime(moment: datetime) -> str:
    """An OData DateTimeOffset literal in UTC (unquoted)."""
    if moment.tzinfo is None:
        raise ValueError("OData datetimes need an aware datetime (UTC assumed nowhere)")
    utc = moment.astimezone(UTC)
    if utc.microsecond:
        return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return utc.strftime("%Y-%m-%dT%H:%M:%SZ")


LOG_PAGE_SIZE = 999
"""``$top`` the client asks for. Not documented for provisioning logs (assumption): 999 is
what third-party clients send and at most the emulator's clamp (1,000); if the service
answers a first page with 400, the read is retried once with :data:`FALLBACK_PAGE_SIZE`."""
FALLBACK_PAGE_SIZE = 100
"""``$top=100``: what Microsoft's own web client sends to the (beta) endpoint."""
SINCE_MARGIN = timedelta(seconds=1)
"""``since`` is sent as ``activityDateTime gt since - 1 s``: ``ge`` is not documented."""


@dataclass(frozen=True, slots=True)
class LogQuery:
    """A provisioning-logs query. ``job_id`` None means the client's own job.

    Only documented operators are sent (v1.0 list page: ``eq``, ``contains``, ``gt``,
    ``lt``): ``since`` becomes ``gt`` one second earlier (never ``ge``). Filtering on
    ``provisioningStatusInfo/status`` is documented on beta only, so on v1.0 ``status``
    is applied to the entries after they are read (:meth:`keeps`). Property names are
    the current ones (``jobId``), values case sensitive as documented.
    """

    job_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    status: str | None = None
    action: str | None = None
    external_id: str | None = None
    cycle_id: str | None = None
    change_id: str | None = None
    top: int | None = LOG_PAGE_SIZE
    order_by: str | None = "activityDateTime desc"

    def filter_expression(
        self, default_job_id: str | None = None, version: str = "v1.0"
    ) -> str | None:
        clauses: list[str] = []
        job = self.job_id or default_job_id
        if job:
            clauses.append(f"jobId eq {odata_string(job)}")
        if self.since is not None:
            clauses.append(f"activityDateTime gt {odata_datetime(self.since - SINCE_MARGIN)}")
        if self.until is not None:
            clauses.append(f"activityDateTime lt {odata_datetime(self.until)}")
        status = self.status if version == "beta" else None
        for prop, value in (
            ("provisioningStatusInfo/status", status),
            ("provisioningAction", self.action),
            ("sourceIdentity/id", self.external_id),
            ("cycleId", self.cycle_id),
            ("changeId", self.change_id),
        ):
            if value is not None:
                clauses.append(f"{prop} eq {odata_string(value)}")
        return " and ".join(clauses) or None

    def params(self, default_job_id: str | None = None, version: str = "v1.0") -> dict[str, str]:
        params: dict[str, str] = {}
        expression = self.filter_expression(default_job_id, version)
        if expression:
            params["$filter"] = expression
        if self.top is not None:
            if self.top < 1:
                raise ValueError("top must be positive")
            params["$top"] = str(self.top)
        if self.order_by:
            params["$orderby"] = self.order_by
        return params

    def keeps(self, summary: ProvisioningObjectSummary) -> bool:
        """Whether an entry the service returned matches what was not filtered server-side.

        The status is compared case-insensitively (the documented example mixes cases);
        ``since`` drops what the one-second margin let in.
        """
        if self.status is not None and summary.status.lower() != self.status.lower():
            return False
        when = summary.activity_date_time
        if self.since is not None and when is not None:
            aware = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
            if aware < self.since:
                return False
        return True


@dataclass(frozen=True, slots=True)
class LogCursor:
    """How far one job's provisioning logs were read, for incremental reads (pure).

    Entries appear minutes after the activity they describe, so a later read may bring an
    entry *older* than the newest one already seen. A pass therefore reads from
    ``newest - skew`` (:meth:`since`) and drops what it has seen (:meth:`is_new`); the
    cursor remembers the ids of the entries inside that margin (the "boundary"), nothing
    older. ``to_json``/``from_json`` keep it in a state store between passes.
    """

    newest: datetime | None = None
    boundary: tuple[tuple[str, datetime], ...] = ()
    """(entry id, activityDateTime) of the entries within the skew margin of ``newest``."""
    _ids: frozenset[str] = field(default=frozenset(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_ids", frozenset(i for i, _ in self.boundary))

    def since(self, skew: timedelta) -> datetime | None:
        """The ``since`` of the next query: None reads from the start."""
        return None if self.newest is None else self.newest - skew

    def is_new(self, entry_id: str) -> bool:
        return entry_id not in self._ids

    def advanced(self, entries: Iterable[tuple[str, datetime]], skew: timedelta) -> LogCursor:
        """The cursor after a pass saw ``entries`` (id, activityDateTime), in any order."""
        kept = dict(self.boundary)
        newest = self.newest
        for entry_id, when in entries:
            kept[entry_id] = when
            newest = when if newest is None or when > newest else newest
        if newest is None:
            return self
        floor = newest - skew
        boundary = tuple(sorted((i, w) for i, w in kept.items() if w >= floor))
        return LogCursor(newest, boundary)

    def to_json(self) -> dict[str, object]:
        return {
            "newest": None if self.newest is None else odata_datetime(self.newest),
            "boundary": [[i, odata_datetime(w)] for i, w in self.boundary],
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, object]) -> LogCursor:
        """Read what ``to_json`` wrote; StateError names what is wrong."""
        newest = raw.get("newest")
        pairs = raw.get("boundary") or []
        if newest is not None and not isinstance(newest, str):
            raise StateError("log cursor: 'newest' must be an ISO date-time or null")
        if not isinstance(pairs, list) or not all(
            isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) for x in p)
            for p in pairs
        ):
            raise StateError("log cursor: 'boundary' must be a list of [id, date-time] pairs")
        return cls(
            None if newest is None else _aware(newest),
            tuple((str(i), _aware(str(w))) for i, w in pairs),
        )


def _aware(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise StateError(f"log cursor: {text!r} is not an ISO date-time") from exc
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def log_entry(summary: ProvisioningObjectSummary) -> LogEntry | None:
    """The entry reconciliation matches; None when it names no source identity or time.

    Only ``provisioningStatusInfo`` (or the deprecated beta ``statusInfo``) and
    ``provisioningAction`` are read, as ``LogEntry.from_graph`` reads them: the beta
    ``action`` property is not a fallback here.
    """
    external_id = summary.source_identity.id if summary.source_identity else None
    when = summary.activity_date_time
    if not external_id or when is None:
        return None
    activity_at = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
    status, code, reason = _status(summary)
    steps = [
        {"status": st.status, "details": st.details, "description": st.description}
        for st in summary.provisioning_steps
    ]
    code, reason = entry_reason(status, code, reason, steps)
    return LogEntry(
        id=summary.id or "",
        activity_at=activity_at,
        external_id=external_id,
        provisioning_action=(summary.provisioning_action or "other").lower(),
        status=status,
        error_code=code,
        reason=reason,
        job_id=_opt_str(summary.job_id),
        cycle_id=_opt_str(summary.cycle_id),
        change_id=_opt_str(summary.change_id),
    )


def _status(summary: ProvisioningObjectSummary) -> tuple[str, str | None, str | None]:
    """Status, error code and reason from the status info (current or deprecated beta)."""
    info = summary.provisioning_status_info
    if info is not None:
        error = info.error_information
        status = info.status
        code = _opt_str(error.error_code) if error else None
        reason = _opt_str(error.reason) if error else None
    else:
        legacy = _mapping((summary.model_extra or {}).get("statusInfo"))
        error_raw = _mapping(legacy.get("errorInformation"))
        status = _opt_str(legacy.get("status"))
        code = _opt_str(error_raw.get("errorCode"))
        reason = _opt_str(error_raw.get("reason"))
    return str(status or "unknownFutureValue").lower(), code, reason


def _mapping(value: object) -> Mapping[str, object]:
    return value if isinstance(value, Mapping) else {}


def _opt_str(value: object) -> str | None:
    if value is None or value == "":
        return None
    return str(value)
