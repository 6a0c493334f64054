"""The async Graph client: paced, retried calls to bulkUpload, provisioning logs and the job.

Layers, outermost first (the httpx ``_client.py`` shape): a public operation
(:meth:`GraphClient.post_bulk`, :meth:`~GraphClient.iter_provisioning_logs`,
:meth:`~GraphClient.get_job`…) describes one call; :meth:`~GraphClient._send_handling_retries`
retries it (backoff with jitter, ``Retry-After``, one token refresh on 401);
:meth:`~GraphClient._send_single_request` takes a pacing slot and the daily budget and sends
it once; :func:`connector.graph.responses.error_for` (pure) says which error an answer is.

Documented behaviour we rely on (see ``docs/graph-client.md`` for sources): bulkUpload
answers **202** with ``request-id``/``client-request-id``; 429 is throttling (40 calls / 5 s,
daily budget); 500 "bucket full" is back-pressure from the job's queue (wait 5–10 minutes).
The service upserts by externalId, so resending a batch is safe. Our assumption, where
Microsoft is silent: ``Retry-After`` is honoured when present (seconds or HTTP date) and a
very long one is treated like a spent quota.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import httpx
import orjson

from connector.clock import Clock, SystemClock
from connector.errors import (
    BadRequestError,
    BucketFullError,
    ConfigError,
    GraphError,
    QuotaExhaustedError,
    ServiceError,
    ThrottledError,
    TransportError,
    UnsafeEndpointError,
)
from connector.graph.auth import TokenProvider, check_token_destination
from connector.graph.endpoint import ProvisioningEndpoint
from connector.graph.logs import FALLBACK_PAGE_SIZE, LogQuery
from connector.graph.models import ProvisioningObjectSummary, SynchronizationJob
from connector.graph.responses import error_for, json_object
from connector.graph.schema import (
    SchemaUpdate,
    custom_attribute_definition,
    schema_attributes,
    source_directory,
)
from connector.pacing import (
    SETTLED,
    DailyBudget,
    RateLimiter,
    SlidingWindowLimiter,
    Slot,
    report_limiter,
)
from connector.scim import CONTENT_TYPE, BulkPayload

__all__ = ["DEFAULT_RESET_SCOPE", "CallMetrics", "Delivery", "GraphClient", "RetryPolicy"]

log = logging.getLogger("connector.graph")

DEFAULT_RESET_SCOPE = "Watermark, Escrows, QuarantineState"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to try. Every attempt is a real call: it counts against pacing and budget."""

    max_attempts: int = 6
    """Tries per call for 429, 5xx, timeouts and dropped connections (first try included)."""
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    max_retry_after: float = 300.0
    """A ``Retry-After`` longer than this is not waited for: it is raised as a spent quota."""
    bucket_full_wait: float = 300.0
    """Wait after "bucket full" when the caller asks not to stop (docs suggest 5–10 min)."""
    bucket_full_attempts: int = 3
    timeout: float = 60.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Exponential backoff with jitter: half fixed, half random, capped."""
        ceiling = min(self.backoff_max, self.backoff_base * 2.0 ** max(0, attempt - 1))
        return ceiling / 2 + rng.uniform(0, ceiling / 2)

    def transient_wait(self, attempt: int, rng: random.Random) -> float:
        """The wait after a 5xx or a dropped connection on try ``attempt``.

        The first retry goes at once (it still waits for a slot of the limiter, so it
        can never call faster than the window allows): one failed call among many is not
        an outage, and waiting would leave the slots it could use idle. A second failure
        in a row backs off exponentially from ``backoff_base``.
        """
        return 0.0 if attempt <= 1 else self.backoff(attempt - 1, rng)


@dataclass(frozen=True, slots=True)
class Delivery:
    """Records the service accepted (202) in one call."""

    bulk_ids: tuple[str, ...]
    external_ids: tuple[str, ...]
    request_id: str | None
    client_request_id: str
    accepted_at: datetime
    attempts: int


@dataclass(slots=True)
class CallMetrics:
    """Counters of one client since it was built: every number is an HTTP call or a record."""

    calls: int = 0
    accepted_calls: int = 0
    throttles: int = 0
    retries: int = 0
    server_errors: int = 0
    transport_errors: int = 0
    bucket_full: int = 0
    token_refreshes: int = 0
    records_resent: int = 0
    """Records in calls retried after a dropped connection or 5xx: the service may have
    queued them already, so they may arrive twice (harmless: bulkUpload upserts)."""
    waited_seconds: float = 0.0
    log_calls: int = 0
    """Provisioning-log reads sent (each one takes a slot of the report limiter)."""


@dataclass(frozen=True, slots=True)
class _Call:
    """One request as the retry loop sends it (every attempt sends the same)."""

    method: str
    url: str
    kind: str
    """What the call is for (``upload``, ``logs``, ``job-read``…): names the permission."""
    params: Mapping[str, str] | None = None
    body: bytes | None = None
    content_type: str | None = None
    paced: bool = False
    """bulkUpload calls take a slot of the rate limiter and of the daily budget."""
    report: bool = False
    """Provisioning-log reads take a slot of the (process-wide) report limiter."""
    records: int = 0


@dataclass(frozen=True, slots=True)
class _Answer:
    response: httpx.Response
    client_request_id: str
    attempts: int


def _written(slot: Slot) -> Callable[[str, Mapping[str, Any]], Awaitable[None]]:
    """An httpcore ``trace`` hook: the slot counts from when the request body is written."""

    async def trace(event: str, info: Mapping[str, Any]) -> None:
        if event.endswith(_WRITTEN):
            slot.sent()

    return trace


_WRITTEN = "send_request_body.complete"
"""httpcore's trace event after the whole request went to the connection (``http11.`` or
``http2.`` before it). Transports that do not trace (tests' mock transports) leave the
slot open until the call ends, which counts it later, never earlier."""


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
        reports: RateLimiter | None = None,
        budget: DailyBudget | None = None,
        retry: RetryPolicy | None = None,
        allow_loopback: bool = False,
        max_in_flight: int = 20,
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
        self.reports: RateLimiter = reports or report_limiter(endpoint.origin, clock)
        """Report (log) reads: 5 per 10 s, shared by the process (``report_limiter``)."""
        self.budget = budget
        self.retry = retry or RetryPolicy()
        self._allow_loopback = allow_loopback
        self._rng = rng or random.Random()
        inner = transport or httpx.AsyncHTTPTransport(
            limits=httpx.Limits(max_connections=max_in_flight * 2)
        )
        self._http = httpx.AsyncClient(
            transport=_GuardTransport(inner, allow_loopback=allow_loopback),
            timeout=httpx.Timeout(self.retry.timeout),
            follow_redirects=False,
        )
        self.metrics = CallMetrics()

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

    # ------------------------------------------------------------------ sending

    async def _send_handling_retries(self, call: _Call) -> _Answer:
        """Send ``call`` until it succeeds or cannot be retried; raise the typed error then.

        Retried: 429 (after ``Retry-After``, or backoff), 5xx other than "bucket full",
        timeouts and dropped connections, up to ``max_attempts`` tries; a 401 refreshes the
        token once without counting as a try.
        """
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            try:
                response, token, client_request_id = await self._send_single_request(call)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                await self._after_transport_failure(call, exc, attempt)
                continue
            error = error_for(
                response,
                kind=call.kind,
                endpoint=self.endpoint,
                attempts=attempt,
                now=self._clock.now(),
                max_retry_after=self.retry.max_retry_after,
            )
            if error is None:
                return _Answer(response, client_request_id, attempt)
            if response.status_code == 401 and not refreshed:
                refreshed = True
                attempt -= 1
                self.metrics.token_refreshes += 1
                await self._tokens.get_token(rejected=token)
                continue
            self._count(response.status_code, error)
            if not await self._wait_to_retry(call, error, attempt):
                raise error

    async def _send_single_request(self, call: _Call) -> tuple[httpx.Response, str, str]:
        """One try: a budget unit (bulkUpload), a token, a pacing slot, one HTTP request.

        The slot is taken last, right before the request, and counts from the moment the
        request is written (:class:`~connector.pacing.Slot`), so waiting on the budget's
        store or the token provider never narrows the window. Returns the answer, the
        token it carried and its ``client-request-id``.
        """
        if call.paced and self.budget is not None and not await self.budget.try_acquire():
            raise QuotaExhaustedError(
                f"the daily call budget of {self.budget.limit} bulkUpload calls is spent;"
                " the remaining batches wait for the next run",
                code="dailyBudget",
            )
        check_token_destination(call.url, allow_loopback=self._allow_loopback)
        token = await self._tokens.get_token()
        client_request_id = str(uuid.uuid4())
        headers = {
            "Authorization": f"Bearer {token}",
            "client-request-id": client_request_id,
            "Accept": "application/json",
        }
        if call.content_type:
            headers["Content-Type"] = call.content_type
        slot = SETTLED
        if call.report:
            slot = await self.reports.acquire()
            self.metrics.log_calls += 1
        if call.paced:
            slot = await self.limiter.acquire()
        self.metrics.calls += 1
        try:
            response = await self._http.request(
                call.method,
                call.url,
                params=call.params,
                content=call.body,
                headers=headers,
                extensions={"trace": _written(slot)},
            )
        finally:
            slot.sent()
        return response, token, client_request_id

    async def _after_transport_failure(self, call: _Call, exc: Exception, attempt: int) -> None:
        """Wait before the next try after a timeout or dropped connection; raise when spent."""
        self.metrics.transport_errors += 1
        if attempt >= self.retry.max_attempts:
            what = "timed out" if isinstance(exc, httpx.TimeoutException) else "failed"
            parts = urlsplit(call.url)
            raise TransportError(
                f"{call.method} {parts.path} {what} {attempt} times"
                f" ({type(exc).__name__}); check the network path to"
                f" {parts.hostname} and retry later"
            ) from exc
        await self._backoff(attempt, call.records)

    def _count(self, status: int, error: GraphError | UnsafeEndpointError) -> None:
        if status == 429:
            self.metrics.throttles += 1
        elif isinstance(error, BucketFullError):
            self.metrics.bucket_full += 1
        elif isinstance(error, ServiceError):
            self.metrics.server_errors += 1

    async def _wait_to_retry(
        self, call: _Call, error: GraphError | UnsafeEndpointError, attempt: int
    ) -> bool:
        """Wait before retrying ``error``; False when it is final (or tries are spent)."""
        if attempt >= self.retry.max_attempts:
            return False
        if isinstance(error, ThrottledError):
            wait = error.retry_after
            if wait is None:
                wait = self.retry.backoff(attempt, self._rng)
            if call.paced:
                self.limiter.pause(wait)
            if call.report:
                self.reports.pause(wait)
            self.metrics.retries += 1
            self.metrics.waited_seconds += wait
            await self._clock.sleep(wait)
            return True
        if isinstance(error, ServiceError):
            await self._backoff(attempt, call.records)
            return True
        return False

    async def _backoff(self, attempt: int, records: int) -> None:
        wait = self.retry.transient_wait(attempt, self._rng)
        self.metrics.retries += 1
        self.metrics.records_resent += records
        self.metrics.waited_seconds += wait
        await self._clock.sleep(wait)

    # ------------------------------------------------------------------ bulkUpload

    async def post_bulk(
        self, payload: BulkPayload, *, wait_on_bucket_full: bool = False
    ) -> Delivery:
        """POST one payload (paced, budgeted, retried); the Delivery on 202.

        Raises the typed error otherwise (400 :class:`~connector.errors.BadRequestError`,
        "bucket full", a spent quota…). With ``wait_on_bucket_full`` a "bucket full" answer
        is waited out (``bucket_full_wait`` seconds, ``bucket_full_attempts`` times).
        """
        call = _Call(
            "POST",
            self.endpoint.bulk_upload_url,
            kind="upload",
            body=payload.body,
            content_type=CONTENT_TYPE,
            paced=True,
            records=len(payload),
        )
        tries = 0
        while True:
            try:
                answer = await self._send_handling_retries(call)
            except BucketFullError:
                tries += 1
                if not wait_on_bucket_full or tries >= self.retry.bucket_full_attempts:
                    raise
                self.metrics.waited_seconds += self.retry.bucket_full_wait
                await self._clock.sleep(self.retry.bucket_full_wait)
                continue
            self.metrics.accepted_calls += 1
            headers = answer.response.headers
            return Delivery(
                bulk_ids=payload.bulk_ids,
                external_ids=payload.external_ids,
                request_id=headers.get("request-id"),
                client_request_id=headers.get("client-request-id", answer.client_request_id),
                accepted_at=self._clock.now(),
                attempts=answer.attempts,
            )

    # ------------------------------------------------------------------ logs

    async def iter_provisioning_logs(
        self, query: LogQuery | None = None
    ) -> AsyncIterator[ProvisioningObjectSummary]:
        """Every entry matching ``query``, following ``@odata.nextLink`` to the end.

        Each page read waits for the report limiter (5 reads per 10 s, documented) and
        honours ``429 Retry-After``. What v1.0 cannot filter (status) is filtered here.
        If the first page is refused (400) with the large ``$top``, it is asked again once
        with ``$top=100`` (the page size is not documented).
        """
        query = query or LogQuery()
        url: str | None = self.endpoint.logs_url
        params: Mapping[str, str] | None = query.params(
            self.endpoint.job_id, self.endpoint.api_version
        )
        while url is not None:
            page = await self._log_page(url, params)
            for raw in page.get("value") or []:
                summary = ProvisioningObjectSummary.model_validate(raw)
                if query.keeps(summary):
                    yield summary
            next_link = page.get("@odata.nextLink")
            if next_link is not None and not isinstance(next_link, str):
                raise GraphError("the logs page's @odata.nextLink is not a URL")
            if next_link:
                check_token_destination(next_link, allow_loopback=self._allow_loopback)
            url, params = next_link or None, None

    async def _log_page(self, url: str, params: Mapping[str, str] | None) -> dict[str, Any]:
        call = _Call("GET", url, kind="logs", params=params, report=True)
        try:
            answer = await self._send_handling_retries(call)
        except BadRequestError:
            top = (params or {}).get("$top")
            if top is None or int(top) <= FALLBACK_PAGE_SIZE:
                raise
            smaller = {**(params or {}), "$top": str(FALLBACK_PAGE_SIZE)}
            answer = await self._send_handling_retries(
                _Call("GET", url, kind="logs", params=smaller, report=True)
            )
        return json_object(answer.response)

    async def provisioning_logs(
        self, query: LogQuery | None = None
    ) -> list[ProvisioningObjectSummary]:
        """All entries of a query as a list (convenience over ``iter_provisioning_logs``)."""
        return [entry async for entry in self.iter_provisioning_logs(query)]

    # ------------------------------------------------------------------ job

    async def get_job(self) -> SynchronizationJob:
        """The job's status (raises NotFoundError when the job does not exist)."""
        answer = await self._send_handling_retries(
            _Call("GET", self.endpoint.job_url, kind="job-read")
        )
        return SynchronizationJob.model_validate(json_object(answer.response))

    async def start_job(self) -> None:
        """Start or resume the job (also clears quarantine)."""
        await self._send_handling_retries(
            _Call("POST", f"{self.endpoint.job_url}/start", kind="job-write")
        )

    async def pause_job(self) -> None:
        await self._send_handling_retries(
            _Call("POST", f"{self.endpoint.job_url}/pause", kind="job-write")
        )

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
        await self._send_handling_retries(
            _Call(
                "POST",
                f"{self.endpoint.job_url}/restart",
                kind="job-write",
                body=body,
                content_type="application/json",
            )
        )

    # ------------------------------------------------------------------ schema

    async def get_schema(self) -> dict[str, Any]:
        answer = await self._send_handling_retries(
            _Call("GET", self.endpoint.schema_url, kind="schema-read")
        )
        return json_object(answer.response)

    async def put_schema(self, schema: Mapping[str, Any]) -> None:
        """Replace the whole schema (PUT is a full replace; PATCH is not supported)."""
        await self._send_handling_retries(
            _Call(
                "PUT",
                self.endpoint.schema_url,
                kind="schema-write",
                body=orjson.dumps(dict(schema)),
                content_type="application/json",
            )
        )

    async def add_custom_attributes(
        self, names: Iterable[str], *, dry_run: bool = False, directory: str | None = None
    ) -> SchemaUpdate:
        """Register custom SCIM attributes: read the schema, add only missing ones, PUT it back.

        Names are ``<urn namespace>:<attribute>`` from the mapping; they are validated, so
        a name with quotes (CSV2SCIM's header bug) is refused rather than registered. The
        directory is chosen by :func:`~connector.graph.schema.source_directory` (``directory``
        names it explicitly); the result says which and why.
        """
        wanted: list[str] = []
        for name in names:
            custom_attribute_definition(name)  # validates
            if name not in wanted:
                wanted.append(name)
        schema = await self.get_schema()
        choice = source_directory(schema, directory)
        attributes = schema_attributes(schema, choice)
        existing = {str(a.get("name", "")).lower() for a in attributes if isinstance(a, dict)}
        added = tuple(n for n in wanted if n.lower() not in existing)
        present = tuple(n for n in wanted if n.lower() in existing)
        written = bool(added) and not dry_run
        if written:
            attributes.extend(custom_attribute_definition(n) for n in added)
            await self.put_schema(schema)
        return SchemaUpdate(added, present, written, choice.name, choice.reason)
