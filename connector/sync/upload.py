"""The send window and the isolation of 400s: sending a run's batches to its target.

:func:`send_window` sends the batches a run still has to send, ``window`` at a time,
each batch once the batches holding its records' managers were acknowledged, and hands
each acknowledgement to the caller as it arrives (the engine journals it at once, off the
event loop, so a crash re-sends at most ``window`` batches). It returns why it stopped, if it did
(:class:`Stop`); it never changes the run's state: the engine applies the result.
:func:`isolate_refusal` finds the records a 400 is about within the run's allowance of
extra calls.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from connector.errors import (
    AuthenticationError,
    BadRequestError,
    ConcurrentRunError,
    ConfigError,
    GraphError,
    NotFoundError,
    PermissionDeniedError,
    SystemicRefusalError,
)
from connector.scim import BulkPayload, split_payload
from connector.sync.targets import BatchReceipt, ProvisioningTarget

__all__ = [
    "IsolationAllowance",
    "Stop",
    "StopKind",
    "isolate_refusal",
    "request_level",
    "send_window",
    "stop_for",
]

StopKind = Literal["failed", "blocked", "waiting"]

_RANK: dict[StopKind, int] = {"failed": 0, "blocked": 1, "waiting": 2}


@dataclass(frozen=True, slots=True)
class Stop:
    """Why the window stopped: ``failed`` (a systemic 400), ``blocked`` (an error retrying
    cannot fix) or ``waiting`` (quota, back-pressure, an outage, the lock lost)."""

    kind: StopKind
    error: BaseException
    batch: int


def stop_for(exc: BaseException, batch: int) -> Stop | None:
    """The stop an error of one send means, None for an error the window does not own."""
    if isinstance(exc, SystemicRefusalError):
        return Stop("failed", exc, batch)
    if isinstance(exc, AuthenticationError | PermissionDeniedError | NotFoundError | ConfigError):
        return Stop("blocked", exc, batch)
    if isinstance(exc, GraphError | ConcurrentRunError):
        return Stop("waiting", exc, batch)
    return None


OnAck = Callable[[int, BatchReceipt, StopKind | None], Awaitable[None] | None]
"""Called with a batch's index, its receipt and the kind of the first stop so far (None
while the window runs) as the batch is acknowledged; it may raise
:class:`SystemicRefusalError` (refusals are systemic) or :class:`ConcurrentRunError`
(the lock was lost while journaling) to stop the window. It may return an awaitable (the
journal write that makes the acknowledgement durable): the batch is released at once
(its reports' batches need its 202, not the journal), and its worker waits for that
write, and for its error, before it takes the next batch, so at most ``width`` batches
are ever in flight or acknowledged and not yet journaled, while the other workers keep
sending. The journal lists acknowledgements in the order they arrived, so a journal that
holds a report's batch holds its managers' batches too."""


class _Window:
    """The state of one window: batches not yet acknowledged, the stops, a condition."""

    def __init__(self, deps: Sequence[Collection[int]], pending: Sequence[int]) -> None:
        self.deps = deps
        self.queue = iter(pending)
        self.stops: list[Stop] = []
        self.unacked: set[int] = set(pending)
        self.acked = asyncio.Condition()

    def may_send(self, i: int) -> bool:
        """A batch waits until every batch holding its records' managers was acknowledged
        (a report must not overtake its manager); batches of earlier calls are."""
        return bool(self.stops) or self.unacked.isdisjoint(self.deps[i])

    async def wait_turn(self, i: int) -> bool:
        """Wait until batch ``i`` may go; False when the window stopped meanwhile."""
        if not self.may_send(i):
            async with self.acked:
                await self.acked.wait_for(functools.partial(self.may_send, i))
        return not self.stops

    async def release(self, i: int) -> None:
        async with self.acked:
            self.unacked.discard(i)
            self.acked.notify_all()

    async def stop(self, stop: Stop) -> None:
        self.stops.append(stop)
        async with self.acked:
            self.acked.notify_all()

    def worst(self) -> Stop | None:
        """The most serious reason wins: a failed run over a blocked one over waiting."""
        return min(self.stops, key=lambda s: _RANK[s.kind]) if self.stops else None


async def send_window(
    batches: Sequence[BulkPayload],
    deps: Sequence[Collection[int]],
    pending: Sequence[int],
    *,
    send: Callable[[BulkPayload], Awaitable[BatchReceipt]],
    on_ack: OnAck,
    width: int,
) -> Stop | None:
    """Send ``pending`` batches (in ascending order), ``width`` at a time, managers
    before their reports.

    ``deps[i]`` names the earlier batches holding the managers that batch ``i``'s
    records wait for (:meth:`~connector.sync.plans.PlanOps.batch_deps`): batch ``i`` is
    sent only once each of them was acknowledged. Stated by Microsoft (Q&A 5830481, a
    moderator; not in the docs): the service "only resolves references for objects that
    have already been processed". Assumed: that a 202 for the manager's request before
    the report's request is sent is the ordering that needs.
    A batch whose managers were acknowledged (or that has none: every batch of a plan
    with one level, the usual daily delta) does not wait for any other batch, so a
    first load waits only where a batch's own managers are still in flight. A stop
    ends new sends and releases the batches waiting; batches in flight finish.
    """
    window = _Window(deps, pending)

    async def worker() -> None:
        while not window.stops:
            i = next(window.queue, None)
            if i is None or not await window.wait_turn(i):
                return
            try:
                receipt = await send(batches[i])
                durable = on_ack(i, receipt, window.stops[0].kind if window.stops else None)
                await window.release(i)
                if durable is not None:
                    await durable
            except Exception as exc:
                stop = stop_for(exc, i)
                if stop is None:
                    raise
                await window.stop(stop)
                return

    tasks = [asyncio.create_task(worker()) for _ in range(max(1, min(width, len(pending))))]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        # An unexpected error (or cancellation) ends the run's call: stop the others and
        # let it propagate as is; unacknowledged batches stay for the next call.
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    return window.worst()


class IsolationAllowance(Protocol):
    """Extra calls a run may still spend isolating 400s (the engine keeps the count)."""

    def left(self) -> int: ...

    def spend(self) -> None: ...


_REQUEST_LEVEL = (
    "invalid data format",
    "content-type",
    "content type",
    "not valid json",
    "unparsable",
    "syntactically incorrect",
)
"""Words of a 400 about the request as a whole. Documented: a wrong ``Content-Type`` is
"the most common cause" of a bulkUpload 400 (Graph bulkUpload page) and is answered
"Invalid Data Format" (Entra, "Troubleshoot API-driven inbound provisioning issues"); a
400 means the request is "unparsable, syntactically incorrect or violates the schema"
(same Graph page). Assumed: that the service's message names those words. The client
sets the same header and serializer for every batch, so such a 400 would refuse every
batch alike: bisecting it would only spend calls."""


def request_level(refusal: BadRequestError) -> bool:
    """Whether a 400 is about the request as a whole (header, body syntax), not records.

    Graph's guidance is to branch on ``error.code``, not the message; no code for these
    cases is documented, so the message's words are read, and only to save calls: a 400
    they do not match is bisected as before, within the run's allowance, and the probe
    of :func:`isolate_refusal` (both halves refused) still catches a systemic one.
    """
    text = f"{refusal.code or ''} {refusal}".lower()
    return any(words in text for words in _REQUEST_LEVEL)


def _not_narrowed(err: BadRequestError, size: int) -> str:
    return (
        f"{err} (refused in a group of {size} records that was not narrowed down: the run's"
        " allowance of isolation calls is spent, so some of them may be fine; fix the"
        " refused data, then `connector runs retry` sends them again)"
    )


def _halves(group: BulkPayload) -> tuple[BulkPayload, BulkPayload]:
    half = len(group) // 2
    lhs, rhs = split_payload(group, [range(half), range(half, len(group))])
    return lhs, rhs


class _Isolation:
    """What one refused batch's isolation has found so far, and its extra calls."""

    def __init__(self, target: ProvisioningTarget, allowance: IsolationAllowance) -> None:
        self.target = target
        self.allowance = allowance
        self.rejected: dict[str, tuple[str | None, str]] = {}
        self.unisolated: set[str] = set()
        self.request_ids: list[str] = []
        self.pending: list[tuple[BulkPayload, BadRequestError]] = []

    def reject(self, group: BulkPayload, err: BadRequestError) -> None:
        """Every record of ``group`` refused with ``err`` (as a group when it is not one)."""
        why = str(err) if len(group) == 1 else _not_narrowed(err, len(group))
        for ext in group.external_ids:
            self.rejected[ext] = (err.code or "BadRequest", why)
        if len(group) > 1:
            self.unisolated.update(group.external_ids)

    async def send(self, group: BulkPayload) -> BadRequestError | None:
        """One extra call: None when accepted (its per-record refusals noted), else the 400."""
        self.allowance.spend()
        try:
            receipt = await self.target.send(group)
        except BadRequestError as err:
            return err
        if receipt.request_id:
            self.request_ids.append(receipt.request_id)
        self.rejected.update(receipt.rejected)
        return None

    async def probe(self, payload: BulkPayload, refusal: BadRequestError) -> None:
        """Both halves of the refused batch: both refused means the 400 is systemic."""
        if len(payload) == 1 or self.allowance.left() < 2:
            self.reject(payload, refusal)
            return
        lhs, rhs = _halves(payload)
        l_err, r_err = await self.send(lhs), await self.send(rhs)
        if l_err is not None and r_err is not None:
            raise SystemicRefusalError(str(l_err), code=l_err.code, request_id=l_err.request_id)
        self.pending.extend((g, e) for g, e in ((lhs, l_err), (rhs, r_err)) if e is not None)

    async def bisect(self) -> None:
        """Narrow each refused group down to its refused records, within the allowance."""
        left = self.allowance.left
        while self.pending:
            group, err = self.pending.pop()
            if len(group) == 1 or left() <= 0:
                self.reject(group, err)
                continue
            lhs, rhs = _halves(group)
            l_err = await self.send(lhs)
            if l_err is None:
                self.pending.append((rhs, err))  # the left half is fine: the right is not
                continue
            self.pending.append((lhs, l_err))
            if left() <= 0:
                self.reject(rhs, err)
                continue
            r_err = await self.send(rhs)
            if r_err is not None:
                self.pending.append((rhs, r_err))

    def receipt(self, refusal: BadRequestError) -> BatchReceipt:
        return BatchReceipt(
            request_id=self.request_ids[0] if self.request_ids else refusal.request_id,
            rejected=self.rejected,
            unisolated=frozenset(self.unisolated),
        )


async def isolate_refusal(
    target: ProvisioningTarget,
    payload: BulkPayload,
    refusal: BadRequestError,
    allowance: IsolationAllowance,
) -> BatchReceipt:
    """Find the records a 400 is about, within the run's allowance of extra calls.

    A 400 about the request as a whole (:func:`request_level`) raises
    :class:`SystemicRefusalError` at once, without an extra call. Otherwise the refused
    batch is split in halves and both are sent: if both are refused too, the 400 is not
    about single records (e.g. an attribute missing from the job's schema) and
    :class:`SystemicRefusalError` is raised instead of bisecting every batch. Otherwise
    the refused half is bisected (a refused group's halves: the left is sent; if
    accepted the right holds the bad record and is split unsent — the 400 is assumed
    deterministic). When the allowance is spent, the undecided records are reported
    refused as a group, with a reason that says so (``unisolated`` in the receipt).
    """
    if request_level(refusal):
        raise SystemicRefusalError(str(refusal), code=refusal.code, request_id=refusal.request_id)
    isolation = _Isolation(target, allowance)
    await isolation.probe(payload, refusal)
    await isolation.bisect()
    return isolation.receipt(refusal)
