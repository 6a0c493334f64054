"""Shared builders for the Graph client tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from connector.clock import FakeClock
from connector.errors import BadRequestError, ConnectorError
from connector.graph.auth import StaticTokenProvider, TokenProvider
from connector.graph.client import Delivery, GraphClient, RetryPolicy
from connector.graph.endpoint import ProvisioningEndpoint
from connector.pacing import DailyBudget, SlidingWindowLimiter
from connector.scim import (
    CORE_USER_SCHEMA,
    ENTERPRISE_USER_SCHEMA,
    BulkOperation,
    BulkPayload,
    build_bulk_requests,
)

SP = "0b2a9a5c-6c7f-4a5e-9a61-3c1c4a1b2d3e"
JOB = "API2AAD.b16687d38faf42adb29892cdcaf01c6e.1a03de52-b9c3-4e2c-a1e3-9145aaa8e530"
ENDPOINT = ProvisioningEndpoint.build(SP, JOB, api_version="beta")


def operations(count: int, prefix: str = "E") -> list[BulkOperation]:
    return [
        BulkOperation(
            bulk_id=f"{prefix}{i:05d}",
            external_id=f"{prefix}{i:05d}",
            data={
                "schemas": [CORE_USER_SCHEMA, ENTERPRISE_USER_SCHEMA],
                "externalId": f"{prefix}{i:05d}",
                "userName": f"u{i}@contoso.com",
                "active": True,
            },
        )
        for i in range(count)
    ]


def payloads(records: int, per_batch: int = 50, prefix: str = "E") -> list[BulkPayload]:
    return list(build_bulk_requests(operations(records, prefix), max_operations=per_batch))


def external_ids(request: httpx.Request) -> list[str]:
    body = orjson.loads(request.content)
    return [op["data"]["externalId"] for op in body["Operations"]]


def accepted(request: httpx.Request) -> httpx.Response:
    return httpx.Response(
        202,
        headers={
            "request-id": f"req-{len(request.content)}",
            "client-request-id": request.headers.get("client-request-id", ""),
        },
    )


def graph_error(status: int, message: str, code: str = "Error") -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": message}})


def make_client(
    handler: Callable[[httpx.Request], httpx.Response],
    *,
    clock: FakeClock | None = None,
    tokens: TokenProvider | None = None,
    budget: DailyBudget | None = None,
    retry: RetryPolicy | None = None,
    endpoint: ProvisioningEndpoint = ENDPOINT,
    **kw: Any,
) -> tuple[GraphClient, FakeClock]:
    clock = clock or FakeClock()
    import random

    client = GraphClient(
        endpoint,
        tokens or StaticTokenProvider("test-token"),
        transport=httpx.MockTransport(handler),
        clock=clock,
        limiter=SlidingWindowLimiter(clock=clock),
        budget=budget,
        retry=retry,
        rng=random.Random(7),
        **kw,
    )
    return client, clock


@dataclass
class Sent:
    """What :func:`send_all` did with each payload, in input order."""

    items: list[BulkPayload]
    results: list[Delivery | BadRequestError | None]
    error: ConnectorError | None = None

    @property
    def delivered(self) -> list[Delivery]:
        return [r for r in self.results if isinstance(r, Delivery)]

    @property
    def refused(self) -> list[tuple[BulkPayload, BadRequestError]]:
        return [
            (p, r)
            for p, r in zip(self.items, self.results, strict=True)
            if isinstance(r, BadRequestError)
        ]

    @property
    def unsent(self) -> list[BulkPayload]:
        """Payloads not accepted nor refused: stopped by ``error`` (the next run's share)."""
        return [p for p, r in zip(self.items, self.results, strict=True) if r is None]

    @property
    def records_accepted(self) -> int:
        return sum(len(d.bulk_ids) for d in self.delivered)

    @property
    def records_unsent(self) -> int:
        return sum(len(p) for p in self.unsent)


async def send_all(
    client: GraphClient,
    items: list[BulkPayload],
    *,
    in_flight: int = 10,
    wait_on_bucket_full: bool = False,
) -> Sent:
    """Post every payload, ``in_flight`` at a time, stopping new sends at the first error
    other than a 400 (a test driver of ``post_bulk``; the engine's window is the product's)."""
    sent = Sent(items, [None] * len(items))
    cursor = iter(range(len(items)))

    async def worker() -> None:
        while sent.error is None:
            index = next(cursor, None)
            if index is None:
                return
            try:
                sent.results[index] = await client.post_bulk(
                    items[index], wait_on_bucket_full=wait_on_bucket_full
                )
            except BadRequestError as exc:
                sent.results[index] = exc
            except ConnectorError as exc:
                if sent.error is None:
                    sent.error = exc

    await asyncio.gather(*(worker() for _ in range(min(in_flight, len(items)))))
    return sent


def run_send_all(client: GraphClient, items: list[BulkPayload], **kw: Any) -> Sent:
    async def main() -> Sent:
        async with client:
            return await send_all(client, items, **kw)

    return asyncio.run(main())
