"""The async Graph client: paced, fault-tolerant bulkUpload, provisioning logs and job APIs.

Documented behaviour we rely on (see ``docs/graph-client.md`` for sources):
bulkUpload answers **202** with ``request-id``/``client-request-id``; 400 means the body
was refused; 401 expired/invalid token; 403 missing ``SynchronizationData-User.Upload``;
429 throttled (40 calls / 5 s, daily budget); 500 with "The bucket that stores the ingested
data is full…" is back-pressure from the job's queue (wait 5–10 minutes). The service
upserts by externalId, so resending a batch is safe.

Our assumptions, where Microsoft is silent: ``Retry-After`` is honoured when present
(seconds or HTTP date) and a very long one is treated like a spent quota; the 400 body is
Graph's usual ``{"error": {"code", "message"}}``; a 400 is deterministic for the same
operations, which is what lets bisection isolate the offending records.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import httpx
import orjson

from connector.clock import Clock, SystemClock
from connector.errors import (
    AuthenticationError,
    BadRequestError,
    BucketFullError,
    ConfigError,
    ConnectorError,
    GraphError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExhaustedError,
    ServiceError,
    ThrottledError,
    TransportError,
    UnsafeEndpointError,
)
from connector.graph.auth import TokenProvider, check_token_destination
from connector.graph.endpoint import ProvisioningEndpoint
from connector.graph.models import ProvisioningObjectSummary, SynchronizationJob
from connector.pacing import DailyBudget, RateLimiter, SlidingWindowLimiter
from connector.scim import CONTENT_TYPE, BulkPayload

__all__ = [
    "BUCKET_FULL_MESSAGE",
    "DEFAULT_RESET_SCOPE",
    "BatchOutcome",
    "BatchStatus",
    "DeferReason",
    "Delivery",
    "GraphClient",
    "LogQuery",
    "RejectedRecord",
    "RetryPolicy",
    "SchemaUpdate",
    "UploadMetrics",
    "UploadResult",
    "custom_attribute_definition",
    "odata_datetime",
    "odata_string",
    "parse_retry_after",
    "split_payload",
]

log = logging.getLogger("connector.graph")

BUCKET_FULL_MESSAGE = (
    "The bucket that stores the ingested data is full, please wait for the synchronization"
    " service to process the ingested data and retry this request."
)
_BUCKET_FULL = re.compile(r"bucket\b.*\bfull", re.IGNORECASE | re.DOTALL)
DEFAULT_RESET_SCOPE = "Watermark, Escrows, QuarantineState"

_PERMISSIONS = {
    "upload": "SynchronizationData-User.Upload (or SynchronizationData-User.Upload.OwnedBy)",
    "logs": "ProvisioningLog.Read.All (some tenants need AuditLog.Read.All as well)",
    "job-read": "Synchronization.Read.All (or Application.ReadWrite.OwnedBy)",
    "job-write": "Synchronization.ReadWrite.All (or Application.ReadWrite.OwnedBy)",
    "schema-read": "Synchronization.Read.All (or Application.ReadWrite.OwnedBy)",
    "schema-write": "Synchronization.ReadWrite.All (or Application.ReadWrite.OwnedBy)",
}


# --------------------------------------------------------------------------- policy


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to try. Every attempt is a real call: it counts against pacing and budget."""

    max_attempts: int = 6
    """Tries per call for 429, 5xx, timeouts and dropped connections (first try included)."""
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    max_retry_after: float = 300.0
    """A ``Retry-After`` longer than this is not waited for: the batch is deferred as quota."""
    bucket_full_wait: float = 300.0
    """Wait after "bucket full" when the caller asks not to stop (docs suggest 5–10 min)."""
    bucket_full_attempts: int = 3
    timeout: float = 60.0
    max_isolation_calls: int = 200
    """Extra calls one ``upload`` may spend isolating bad records in refused batches."""
    max_isolation_calls_per_batch: int = 24

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Exponential backoff with jitter: half fixed, half random, capped."""
        ceiling = min(self.backoff_max, self.backoff_base * 2.0 ** max(0, attempt - 1))
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date), or None."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - now).total_seconds()
    if seconds != seconds or seconds in (float("inf"), float("-inf")):  # NaN / inf
        return None
    return max(0.0, seconds)


# --------------------------------------------------------------------------- outcomes


class DeferReason(StrEnum):
    """Why batches were not sent; the next run resends them."""

    QUOTA = "quota"
    BUCKET_FULL = "bucket_full"
    ERROR = "error"


class BatchStatus(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    PARTIAL = "partial"
    DEFERRED = "deferred"


@dataclass(frozen=True, slots=True)
class Delivery:
    """Records the service accepted (202) in one call."""

    bulk_ids: tuple[str, ...]
    external_ids: tuple[str, ...]
    request_id: str | None
    client_request_id: str
    accepted_at: datetime
    attempts: int


@dataclass(frozen=True, slots=True)
class RejectedRecord:
    """A record the service refused with 400. ``isolated`` is False when the isolation
    budget ran out and the record was only known to be in a refused group."""

    bulk_id: str
    external_id: str
    message: str
    code: str | None
    request_id: str | None
    isolated: bool


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """What happened to one input payload; exactly one place for each of its records."""

    index: int
    payload: BulkPayload
    accepted: tuple[Delivery, ...] = ()
    rejected: tuple[RejectedRecord, ...] = ()
    deferred: tuple[BulkPayload, ...] = ()
    defer_reason: DeferReason | None = None
    error: str | None = None
    isolation_calls: int = 0

    @property
    def status(self) -> BatchStatus:
        kinds = [bool(self.accepted), bool(self.rejected), bool(self.deferred)]
        if sum(kinds) != 1:
            return BatchStatus.PARTIAL
        if self.accepted:
            return BatchStatus.ACCEPTED
        if self.rejected:
            return BatchStatus.REJECTED
        return BatchStatus.DEFERRED

    @property
    def records_accepted(self) -> int:
        return sum(len(d.bulk_ids) for d in self.accepted)

    @property
    def records_deferred(self) -> int:
        return sum(len(p) for p in self.deferred)


@dataclass(slots=True)
class UploadMetrics:
    """Counters of one client (or one upload): every number is an HTTP call or a record."""

    calls: int = 0
    accepted_calls: int = 0
    throttles: int = 0
    retries: int = 0
    server_errors: int = 0
    transport_errors: int = 0
    bucket_full: int = 0
    token_refreshes: int = 0
    isolation_calls: int = 0
    records_resent: int = 0
    """Records in calls retried after a dropped connection or 5xx: the service may have
    queued them already, so they may arrive twice (harmless: bulkUpload upserts)."""
    waited_seconds: float = 0.0

    def copy(self) -> UploadMetrics:
        return replace(self)

    def minus(self, before: UploadMetrics) -> UploadMetrics:
        out = UploadMetrics()
        for name in self.__slots__:
            setattr(out, name, getattr(self, name) - getattr(before, name))
        return out


@dataclass(frozen=True, slots=True)
class UploadResult:
    """Every batch's outcome, in input order, plus the calls it cost."""

    outcomes: tuple[BatchOutcome, ...]
    metrics: UploadMetrics
    stopped: DeferReason | None = None
    error: ConnectorError | None = None
    elapsed: float = 0.0

    @property
    def remaining(self) -> list[BulkPayload]:
        """Payloads to send in a later run, in order."""
        return [p for o in self.outcomes for p in o.deferred]

    @property
    def batches_remaining(self) -> int:
        return sum(1 for o in self.outcomes if o.deferred)

    @property
    def records_accepted(self) -> int:
        return sum(o.records_accepted for o in self.outcomes)

    @property
    def records_rejected(self) -> int:
        return sum(len(o.rejected) for o in self.outcomes)

    @property
    def records_deferred(self) -> int:
        return sum(o.records_deferred for o in self.outcomes)

    @property
    def rejected(self) -> list[RejectedRecord]:
        return [r for o in self.outcomes for r in o.rejected]

    def summary(self) -> str:
        text = (
            f"{len(self.outcomes)} batches: {self.records_accepted} records accepted,"
            f" {self.records_rejected} rejected, {self.records_deferred} deferred"
            f" ({self.metrics.calls} calls, {self.metrics.throttles} throttled,"
            f" {self.metrics.retries} retries, {self.metrics.isolation_calls} isolation calls)"
        )
        if self.stopped is not None:
            text += (
                f"; stopped ({self.stopped.value}): {self.batches_remaining} batches remain"
                " for the next run"
            )
        return text

    def raise_for_error(self) -> None:
        """Re-raise the error that stopped the upload, for callers that want exceptions."""
        if self.error is not None:
            raise self.error


# --------------------------------------------------------------------------- payload split


def split_payload(payload: BulkPayload, parts: Sequence[Sequence[int]]) -> list[BulkPayload]:
    """Rebuild sub-requests holding the given operation indexes of ``payload``.

    The body is parsed with orjson and each sub-body keeps the root's other members
    (``schemas``, ``failOnErrors``) so a part is exactly the original request, smaller.
    """
    root = orjson.loads(payload.body)
    ops = root.get("Operations")
    if not isinstance(ops, list) or len(ops) != len(payload.bulk_ids):
        raise ValueError("payload body does not match its bulk_ids; cannot split it")
    out = []
    for indexes in parts:
        sub = dict(root)
        sub["Operations"] = [ops[i] for i in indexes]
        out.append(
            BulkPayload(
                body=orjson.dumps(sub),
                bulk_ids=tuple(payload.bulk_ids[i] for i in indexes),
                external_ids=tuple(payload.external_ids[i] for i in indexes),
            )
        )
    return out


# --------------------------------------------------------------------------- logs query


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


@dataclass(frozen=True, slots=True)
class LogQuery:
    """A provisioning-logs query. ``job_id`` None means the client's own job.

    Filters use the current property names (``jobId``, ``provisioningStatusInfo/status``),
    not the deprecated ``statusInfo/status`` of older doc examples; Microsoft notes the
    filters are case sensitive.
    """

    job_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    status: str | None = None
    action: str | None = None
    external_id: str | None = None
    cycle_id: str | None = None
    change_id: str | None = None
    top: int | None = None
    order_by: str | None = "activityDateTime desc"

    def filter_expression(self, default_job_id: str | None = None) -> str | None:
        clauses: list[str] = []
        job = self.job_id or default_job_id
        if job:
            clauses.append(f"jobId eq {odata_string(job)}")
        if self.since is not None:
            clauses.append(f"activityDateTime ge {odata_datetime(self.since)}")
        if self.until is not None:
            clauses.append(f"activityDateTime lt {odata_datetime(self.until)}")
        for prop, value in (
            ("provisioningStatusInfo/status", self.status),
            ("provisioningAction", self.action),
            ("sourceIdentity/id", self.external_id),
            ("cycleId", self.cycle_id),
            ("changeId", self.change_id),
        ):
            if value is not None:
                clauses.append(f"{prop} eq {odata_string(value)}")
        return " and ".join(clauses) or None

    def params(self, default_job_id: str | None = None) -> dict[str, str]:
        params: dict[str, str] = {}
        expression = self.filter_expression(default_job_id)
        if expression:
            params["$filter"] = expression
        if self.top is not None:
            if self.top < 1:
                raise ValueError("top must be positive")
            params["$top"] = str(self.top)
        if self.order_by:
            params["$orderby"] = self.order_by
        return params


# --------------------------------------------------------------------------- schema


@dataclass(frozen=True, slots=True)
class SchemaUpdate:
    """What ``add_custom_attributes`` did: names added, names already present."""

    added: tuple[str, ...]
    present: tuple[str, ...]
    written: bool


_ATTRIBUTE_NAME = re.compile(r"^urn:[A-Za-z0-9][A-Za-z0-9:._-]*:[A-Za-z_][A-Za-z0-9_]*$")


def custom_attribute_definition(name: str) -> dict[str, Any]:
    """The attribute definition CSV2SCIM and the portal register for a custom SCIM attribute."""
    if not _ATTRIBUTE_NAME.match(name):
        raise ConfigError(
            f"custom attribute name {name!r} is not '<urn namespace>:<attribute>' (for example"
            " 'urn:ietf:params:scim:schemas:extension:contoso:1.0:User:HireDate'); names"
            " come from the mapping and must not contain quotes or spaces"
        )
    return {
        "name": name,
        "type": "String",
        "mutability": "ReadWrite",
        "anchor": False,
        "caseExact": False,
        "flowNullValues": False,
        "multivalued": False,
        "required": False,
        "apiExpressions": [],
        "metadata": [],
        "referencedObjects": [],
    }


def _schema_attributes(schema: dict[str, Any]) -> list[Any]:
    """The source directory's User attributes: ``directories[0]``, object ``User`` (or first).

    This is where CSV2SCIM and the portal register API attributes; the schema layout
    beyond that is not documented.
    """
    directories = schema.get("directories")
    if not isinstance(directories, list) or not directories:
        raise GraphError("the job schema has no directories; cannot register attributes")
    objects = directories[0].get("objects") if isinstance(directories[0], dict) else None
    if not isinstance(objects, list) or not objects:
        raise GraphError("the job schema's source directory has no objects")
    target = next(
        (o for o in objects if isinstance(o, dict) and str(o.get("name", "")).lower() == "user"),
        objects[0],
    )
    attributes = target.setdefault("attributes", [])
    if not isinstance(attributes, list):
        raise GraphError("the job schema's User object has no attribute list")
    return attributes


# --------------------------------------------------------------------------- transport guard


class _GuardTransport(httpx.AsyncBaseTransport):
    """Refuses, before any byte is sent, a request carrying a token to a non-Graph host."""

    def __init__(self, inner: httpx.AsyncBaseTransport, *, allow_loopback: bool) -> None:
        self._inner = inner
        self._allow_loopback = allow_loopback

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if "authorization" in request.headers:
            check_token_destination(str(request.url), allow_loopback=self._allow_loopback)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def _error_details(response: httpx.Response) -> tuple[str, str | None]:
    """The service's error message and code from a Graph-style error body (or its text)."""
    try:
        body = orjson.loads(response.content) if response.content else None
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            message = err.get("message")
            code = err.get("code")
            return (str(message) if message else str(err)), (str(code) if code else None)
        if "detail" in body:  # SCIM-style error
            return str(body["detail"]), str(body.get("scimType") or "") or None
    text = response.text.strip() if response.content else ""
    return (text[:500] or f"HTTP {response.status_code}"), None


# --------------------------------------------------------------------------- client


class GraphClient:
    """One provisioning job's Graph door. Use as ``async with GraphClient(...) as client``."""

    def __init__(
        self,
        endpoint: ProvisioningEndpoint,
        tokens: TokenProvider,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock | None = None,
        limiter: RateLimiter | None = None,
        budget: DailyBudget | None = None,
        retry: RetryPolicy | None = None,
        allow_loopback: bool = False,
        max_in_flight: int = 10,
        rng: random.Random | None = None,
    ) -> None:
        if endpoint.is_loopback and not allow_loopback:
            raise UnsafeEndpointError(
                f"{endpoint.origin} is a loopback address: enable the emulator explicitly"
                " (allow_loopback=True / --allow-loopback) to send tokens there"
            )
        check_token_destination(endpoint.base_url, allow_loopback=allow_loopback)
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self.endpoint = endpoint
        self._tokens = tokens
        self._clock: Clock = clock or SystemClock()
        self.limiter: RateLimiter = limiter or SlidingWindowLimiter(clock=self._clock)
        self.budget = budget
        self.retry = retry or RetryPolicy()
        self._allow_loopback = allow_loopback
        self._max_in_flight = max_in_flight
        self._rng = rng or random.Random()
        inner = transport or httpx.AsyncHTTPTransport(
            limits=httpx.Limits(max_connections=max_in_flight * 2)
        )
        self._http = httpx.AsyncClient(
            transport=_GuardTransport(inner, allow_loopback=allow_loopback),
            timeout=httpx.Timeout(self.retry.timeout),
            follow_redirects=False,
        )
        self.metrics = UploadMetrics()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close connections and persist the budget's count."""
        try:
            if self.budget is not None:
                await self.budget.flush()
        finally:
            await self._http.aclose()

    # ------------------------------------------------------------------ core call

    async def _call(
        self,
        method: str,
        url: str,
        *,
        kind: str,
        params: Mapping[str, str] | None = None,
        body: bytes | None = None,
        content_type: str | None = None,
        paced: bool = False,
        records: int = 0,
    ) -> tuple[httpx.Response, str, int]:
        """Send one request with retries; return (response, client-request-id, attempts).

        Raises the typed GraphError for what cannot be retried, or once retries are spent.
        """
        policy = self.retry
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            if paced:
                await self.limiter.acquire()
                if self.budget is not None and not await self.budget.try_acquire():
                    raise QuotaExhaustedError(
                        f"the daily call budget of {self.budget.limit} bulkUpload calls is spent;"
                        " the remaining batches wait for the next run",
                        code="dailyBudget",
                    )
            check_token_destination(url, allow_loopback=self._allow_loopback)
            token = await self._tokens.get_token()
            client_request_id = str(uuid.uuid4())
            headers = {
                "Authorization": f"Bearer {token}",
                "client-request-id": client_request_id,
                "Accept": "application/json",
            }
            if content_type:
                headers["Content-Type"] = content_type
            self.metrics.calls += 1
            try:
                response = await self._http.request(
                    method, url, params=params, content=body, headers=headers
                )
            except UnsafeEndpointError:
                raise
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                self.metrics.transport_errors += 1
                kind_text = "timed out" if isinstance(exc, httpx.TimeoutException) else "failed"
                if attempt >= policy.max_attempts:
                    raise TransportError(
                        f"{method} {urlsplit(url).path} {kind_text} {attempt} times"
                        f" ({type(exc).__name__}); check the network path to"
                        f" {urlsplit(url).hostname} and retry later"
                    ) from exc
                await self._retry_wait(attempt, records)
                continue
            status = response.status_code
            request_id = response.headers.get("request-id")
            if 200 <= status < 300:
                return response, client_request_id, attempt
            if 300 <= status < 400:
                where = response.headers.get("location", "?")
                raise UnsafeEndpointError(
                    f"{method} {urlsplit(url).path} answered {status} redirecting to {where!r};"
                    " the client never follows redirects with a token"
                )
            message, code = _error_details(response)
            if status == 401:
                if not refreshed:
                    refreshed = True
                    attempt -= 1
                    self.metrics.token_refreshes += 1
                    await self._tokens.get_token(rejected=token)
                    continue
                raise AuthenticationError(
                    f"Graph refused the token twice (401 {code or ''}: {message}); check the"
                    " identity, its tenant and the token's audience (https://graph.microsoft.com)",
                    status=status,
                    request_id=request_id,
                    code=code,
                )
            if status == 403:
                raise PermissionDeniedError(
                    f"403 from Graph ({message}): the identity lacks the application permission"
                    f" {_PERMISSIONS.get(kind, kind)}; grant it with admin consent"
                    " (see docs/graph-client.md)",
                    status=status,
                    request_id=request_id,
                    code=code,
                )
            if status == 404:
                raise NotFoundError(
                    f"404 from Graph ({message}): service principal"
                    f" {self.endpoint.service_principal_id} or job {self.endpoint.job_id} does"
                    " not exist; check the Provisioning API endpoint in the portal",
                    status=status,
                    request_id=request_id,
                    code=code,
                )
            if status == 400:
                raise BadRequestError(message, status=status, request_id=request_id, code=code)
            if status == 429:
                self.metrics.throttles += 1
                retry_after = parse_retry_after(
                    response.headers.get("retry-after"), self._clock.now()
                )
                if retry_after is not None and retry_after > policy.max_retry_after:
                    raise QuotaExhaustedError(
                        f"throttled with Retry-After {retry_after:.0f} s (over the"
                        f" {policy.max_retry_after:.0f} s we wait): the service's quota is"
                        " probably spent; the remaining batches wait for the next run",
                        status=status,
                        request_id=request_id,
                        code=code,
                    )
                if attempt >= policy.max_attempts:
                    raise ThrottledError(
                        f"still throttled (429) after {attempt} attempts; lower the pace or"
                        " retry later",
                        retry_after=retry_after,
                        status=status,
                        request_id=request_id,
                        code=code,
                    )
                wait = (
                    retry_after if retry_after is not None else policy.backoff(attempt, self._rng)
                )
                if paced:
                    self.limiter.pause(wait)
                self.metrics.retries += 1
                self.metrics.waited_seconds += wait
                await self._clock.sleep(wait)
                continue
            if status == 500 and _BUCKET_FULL.search(message):
                self.metrics.bucket_full += 1
                raise BucketFullError(
                    f"the job's ingestion queue is full ({message}); resume later (minutes), and"
                    " check that the provisioning job is running and not in quarantine",
                    status=status,
                    request_id=request_id,
                    code=code,
                )
            if status >= 500:
                self.metrics.server_errors += 1
                if attempt >= policy.max_attempts:
                    raise ServiceError(
                        f"Graph answered {status} {attempt} times ({message}); retry later",
                        status=status,
                        request_id=request_id,
                        code=code,
                    )
                await self._retry_wait(attempt, records)
                continue
            raise GraphError(
                f"unexpected HTTP {status} from {method} {urlsplit(url).path}: {message}",
                status=status,
                request_id=request_id,
                code=code,
            )

    async def _retry_wait(self, attempt: int, records: int) -> None:
        wait = self.retry.backoff(attempt, self._rng)
        self.metrics.retries += 1
        self.metrics.records_resent += records
        self.metrics.waited_seconds += wait
        await self._clock.sleep(wait)

    # ------------------------------------------------------------------ bulkUpload

    async def post_bulk(
        self, payload: BulkPayload, *, wait_on_bucket_full: bool = False
    ) -> Delivery:
        """POST one payload (paced, budgeted, retried); the Delivery on 202.

        With ``wait_on_bucket_full`` a "bucket full" answer is waited out (``bucket_full_wait``
        seconds, ``bucket_full_attempts`` times) instead of raised at once.
        """
        tries = 0
        while True:
            try:
                response, client_request_id, attempts = await self._call(
                    "POST",
                    self.endpoint.bulk_upload_url,
                    kind="upload",
                    body=payload.body,
                    content_type=CONTENT_TYPE,
                    paced=True,
                    records=len(payload),
                )
            except BucketFullError:
                tries += 1
                if not wait_on_bucket_full or tries >= self.retry.bucket_full_attempts:
                    raise
                self.metrics.waited_seconds += self.retry.bucket_full_wait
                await self._clock.sleep(self.retry.bucket_full_wait)
                continue
            self.metrics.accepted_calls += 1
            return Delivery(
                bulk_ids=payload.bulk_ids,
                external_ids=payload.external_ids,
                request_id=response.headers.get("request-id"),
                client_request_id=response.headers.get("client-request-id", client_request_id),
                accepted_at=self._clock.now(),
                attempts=attempts,
            )

    async def upload(
        self,
        payloads: Iterable[BulkPayload],
        *,
        stop_on_backpressure: bool = True,
    ) -> UploadResult:
        """Send every payload with up to ``max_in_flight`` calls at once, paced and budgeted.

        Never raises for a batch: each outcome is data. A spent budget, "bucket full" (when
        ``stop_on_backpressure``) or a fatal error (401/403/404, retries spent) stops new
        sends; batches in flight finish and every batch not sent is returned as deferred.
        """
        items = list(payloads)
        started = self._clock.monotonic()
        before = self.metrics.copy()
        isolation_left = [self.retry.max_isolation_calls]  # shared by this upload's batches
        outcomes: list[BatchOutcome | None] = [None] * len(items)
        stop: list[tuple[DeferReason, ConnectorError | None]] = []
        cursor = iter(range(len(items)))

        async def worker() -> None:
            while not stop:
                index = next(cursor, None)
                if index is None:
                    return
                outcome, halt = await self._upload_one(
                    index,
                    items[index],
                    wait_on_bucket_full=not stop_on_backpressure,
                    isolation_left=isolation_left,
                )
                outcomes[index] = outcome
                if halt is not None and not stop:
                    stop.append(halt)

        workers = min(self._max_in_flight, len(items))
        await asyncio.gather(*(worker() for _ in range(workers)))
        reason, error = stop[0] if stop else (None, None)
        final: list[BatchOutcome] = []
        for index, outcome in enumerate(outcomes):
            if outcome is None:
                outcome = BatchOutcome(
                    index=index,
                    payload=items[index],
                    deferred=(items[index],),
                    defer_reason=reason or DeferReason.ERROR,
                    error=str(error) if error else None,
                )
            final.append(outcome)
        result = UploadResult(
            outcomes=tuple(final),
            metrics=self.metrics.minus(before),
            stopped=reason,
            error=error,
            elapsed=self._clock.monotonic() - started,
        )
        log.info(
            "bulkUpload: %s",
            result.summary(),
            extra={"batches": len(items), "calls": result.metrics.calls},
        )
        return result

    async def _upload_one(
        self,
        index: int,
        payload: BulkPayload,
        *,
        wait_on_bucket_full: bool,
        isolation_left: list[int],
    ) -> tuple[BatchOutcome, tuple[DeferReason, ConnectorError | None] | None]:
        try:
            delivery = await self.post_bulk(payload, wait_on_bucket_full=wait_on_bucket_full)
        except BadRequestError as exc:
            return await self._isolate(index, payload, exc, wait_on_bucket_full, isolation_left)
        except ConnectorError as exc:
            reason = _defer_reason(exc)
            outcome = BatchOutcome(
                index=index,
                payload=payload,
                deferred=(payload,),
                defer_reason=reason,
                error=str(exc),
            )
            return outcome, (reason, exc)
        return BatchOutcome(index=index, payload=payload, accepted=(delivery,)), None

    async def _isolate(
        self,
        index: int,
        payload: BulkPayload,
        refusal: BadRequestError,
        wait_on_bucket_full: bool,
        isolation_left: list[int],
    ) -> tuple[BatchOutcome, tuple[DeferReason, ConnectorError | None] | None]:
        """Bisect a refused batch: deliver the good records, name the bad ones.

        A group known to be refused is split in halves; the left half is sent; if it is
        accepted the right half must hold the bad record and is split without being sent
        (the 400 is assumed deterministic). One bad record in 50 costs about log2(50) ≈ 6
        extra calls. When the per-batch or per-upload bound is reached, the records of
        every undecided group are reported as rejected with ``isolated=False``.
        """
        accepted: list[Delivery] = []
        rejected: list[RejectedRecord] = []
        deferred: list[BulkPayload] = []
        halt: tuple[DeferReason, ConnectorError | None] | None = None
        batch_left = self.retry.max_isolation_calls_per_batch
        calls = 0

        def reject(group: BulkPayload, err: BadRequestError, isolated: bool) -> None:
            for bulk_id, external_id in zip(group.bulk_ids, group.external_ids, strict=True):
                rejected.append(
                    RejectedRecord(
                        bulk_id=bulk_id,
                        external_id=external_id,
                        message=str(err),
                        code=err.code,
                        request_id=err.request_id,
                        isolated=isolated,
                    )
                )

        async def send(group: BulkPayload) -> BadRequestError | None:
            """Send a group: None when accepted, the 400 when refused; raises others."""
            nonlocal batch_left, calls
            batch_left -= 1
            isolation_left[0] -= 1
            calls += 1
            self.metrics.isolation_calls += 1
            try:
                accepted.append(
                    await self.post_bulk(group, wait_on_bucket_full=wait_on_bucket_full)
                )
            except BadRequestError as exc:
                return exc
            return None

        # Groups known to be refused, each with the 400 that refused it.
        pending: list[tuple[BulkPayload, BadRequestError]] = [(payload, refusal)]
        while pending:
            group, err = pending.pop()
            if halt is not None:
                deferred.append(group)
                continue
            if len(group) == 1:
                reject(group, err, isolated=True)
                continue
            if batch_left <= 0 or isolation_left[0] <= 0:
                reject(group, err, isolated=False)
                continue
            half = len(group) // 2
            left, right = split_payload(group, [range(half), range(half, len(group))])
            try:
                left_err = await send(left)
            except ConnectorError as exc:
                halt = (_defer_reason(exc), exc)
                deferred.extend([left, right])
                continue
            if left_err is None:
                pending.append((right, err))  # the bad record must be on the right
                continue
            if batch_left <= 0 or isolation_left[0] <= 0:
                reject(left, left_err, isolated=len(left) == 1)
                reject(right, err, isolated=False)
                continue
            try:
                right_err = await send(right)
            except ConnectorError as exc:
                halt = (_defer_reason(exc), exc)
                deferred.append(right)
                pending.append((left, left_err))
                continue
            if right_err is not None:
                pending.append((right, right_err))
            pending.append((left, left_err))
        outcome = BatchOutcome(
            index=index,
            payload=payload,
            accepted=tuple(accepted),
            rejected=tuple(sorted(rejected, key=lambda r: payload.bulk_ids.index(r.bulk_id))),
            deferred=tuple(deferred),
            defer_reason=halt[0] if halt else None,
            error=str(halt[1]) if halt and halt[1] else None,
            isolation_calls=calls,
        )
        return outcome, halt

    # ------------------------------------------------------------------ logs

    async def iter_provisioning_logs(
        self, query: LogQuery | None = None
    ) -> AsyncIterator[ProvisioningObjectSummary]:
        """Every entry matching ``query``, following ``@odata.nextLink`` to the end."""
        query = query or LogQuery()
        url: str | None = self.endpoint.logs_url
        params: Mapping[str, str] | None = query.params(self.endpoint.job_id)
        while url is not None:
            response, _, _ = await self._call("GET", url, kind="logs", params=params)
            page = _json(response)
            for raw in page.get("value") or []:
                yield ProvisioningObjectSummary.model_validate(raw)
            next_link = page.get("@odata.nextLink")
            if next_link is not None and not isinstance(next_link, str):
                raise GraphError("the logs page's @odata.nextLink is not a URL")
            if next_link:
                check_token_destination(next_link, allow_loopback=self._allow_loopback)
            url, params = next_link or None, None

    async def provisioning_logs(
        self, query: LogQuery | None = None
    ) -> list[ProvisioningObjectSummary]:
        """All entries of a query as a list (convenience over ``iter_provisioning_logs``)."""
        return [entry async for entry in self.iter_provisioning_logs(query)]

    # ------------------------------------------------------------------ job

    async def get_job(self) -> SynchronizationJob:
        response, _, _ = await self._call("GET", self.endpoint.job_url, kind="job-read")
        return SynchronizationJob.model_validate(_json(response))

    async def start_job(self) -> None:
        """Start or resume the job (also clears quarantine)."""
        await self._call("POST", f"{self.endpoint.job_url}/start", kind="job-write")

    async def pause_job(self) -> None:
        await self._call("POST", f"{self.endpoint.job_url}/pause", kind="job-write")

    async def restart_job(self, *, confirm: bool, reset_scope: str = DEFAULT_RESET_SCOPE) -> None:
        """Restart the job. Purges uploads not yet processed, so ``confirm`` must be True."""
        if not confirm:
            raise ConfigError(
                "restarting the provisioning job purges every upload it has not processed yet;"
                " pass confirm=True (--yes) to restart anyway"
            )
        log.warning(
            "restarting provisioning job %s: pending uploads are purged", self.endpoint.job_id
        )
        body = orjson.dumps({"criteria": {"resetScope": reset_scope}})
        await self._call(
            "POST",
            f"{self.endpoint.job_url}/restart",
            kind="job-write",
            body=body,
            content_type="application/json",
        )

    async def get_schema(self) -> dict[str, Any]:
        response, _, _ = await self._call("GET", self.endpoint.schema_url, kind="schema-read")
        return _json(response)

    async def put_schema(self, schema: Mapping[str, Any]) -> None:
        """Replace the whole schema (PUT is a full replace; PATCH is not supported)."""
        await self._call(
            "PUT",
            self.endpoint.schema_url,
            kind="schema-write",
            body=orjson.dumps(dict(schema)),
            content_type="application/json",
        )

    async def add_custom_attributes(
        self, names: Iterable[str], *, dry_run: bool = False
    ) -> SchemaUpdate:
        """Register custom SCIM attributes: read the schema, add only missing ones, PUT it back.

        Names are ``<urn namespace>:<attribute>`` from the mapping; they are validated, so
        a name with quotes (CSV2SCIM's header bug) is refused rather than registered.
        """
        wanted: list[str] = []
        for name in names:
            custom_attribute_definition(name)  # validates
            if name not in wanted:
                wanted.append(name)
        schema = await self.get_schema()
        attributes = _schema_attributes(schema)
        existing = {str(a.get("name", "")).lower() for a in attributes if isinstance(a, dict)}
        added = tuple(n for n in wanted if n.lower() not in existing)
        present = tuple(n for n in wanted if n.lower() in existing)
        if not added or dry_run:
            return SchemaUpdate(added=added, present=present, written=False)
        attributes.extend(custom_attribute_definition(n) for n in added)
        await self.put_schema(schema)
        return SchemaUpdate(added=added, present=present, written=True)


def _defer_reason(exc: ConnectorError) -> DeferReason:
    if isinstance(exc, QuotaExhaustedError):
        return DeferReason.QUOTA
    if isinstance(exc, BucketFullError):
        return DeferReason.BUCKET_FULL
    return DeferReason.ERROR


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = orjson.loads(response.content)
    except orjson.JSONDecodeError as exc:
        raise GraphError(
            f"Graph answered {response.status_code} with a body that is not JSON",
            status=response.status_code,
            request_id=response.headers.get("request-id"),
        ) from exc
    if not isinstance(data, dict):
        raise GraphError("Graph answered with JSON that is not an object")
    return data
