"""Seeded fault injection: 5xx answers, connections dropped before or after acceptance,
added latency; the same seed gives the same sequence."""

from __future__ import annotations

import time
from typing import Any

import httpx

from .helpers import bulk, headers, post, record


def _outcomes(emu: Any, n: int) -> list[str]:
    out = []
    with httpx.Client() as client:
        for i in range(n):
            try:
                out.append(str(post(emu, bulk(record(f"{i}")), client=client).status_code))
            except httpx.TransportError:
                out.append("dropped")
    return out


FAULTY = {
    "fault_rate": 0.2,
    "drop_before_rate": 0.15,
    "drop_after_rate": 0.15,
    "rate_limit_calls": None,
}


def test_same_seed_same_sequence_other_seed_other_sequence(make_emulator: Any) -> None:
    first = _outcomes(make_emulator(seed=7, **FAULTY), 40)
    second = _outcomes(make_emulator(seed=7, **FAULTY), 40)
    other = _outcomes(make_emulator(seed=8, **FAULTY), 40)
    assert first == second
    assert first != other
    assert {"202", "dropped"} <= set(first)
    assert {"500", "503"} & set(first)


def test_drop_after_acceptance_queues_the_upload(make_emulator: Any) -> None:
    emu = make_emulator(drop_after_rate=1.0)
    try:
        post(emu, bulk(record("1"), record("2")))
        raise AssertionError("the connection should have been dropped")
    except httpx.RemoteProtocolError:
        pass
    emu.wait_idle(5)
    assert set(emu.users()) == {"1", "2"}
    assert [(c.status, c.operations) for c in emu.calls()] == [(0, 2)]


def test_drop_before_acceptance_loses_the_upload(make_emulator: Any) -> None:
    emu = make_emulator(drop_before_rate=1.0)
    try:
        post(emu, bulk(record("1")))
        raise AssertionError("the connection should have been dropped")
    except httpx.RemoteProtocolError:
        pass
    emu.wait_idle(5)
    assert emu.users() == {}
    assert emu.queue_length() == 0


def test_injected_5xx_are_graph_errors_and_not_queued(make_emulator: Any) -> None:
    emu = make_emulator(fault_rate=1.0, rate_limit_calls=None)
    statuses = set()
    with httpx.Client() as client:
        for i in range(12):
            response = post(emu, bulk(record(f"{i}")), client=client, hdrs=headers(emu))
            statuses.add(response.status_code)
            assert response.json()["error"]["code"] in ("InternalServerError", "ServiceUnavailable")
            assert "bucket" not in response.json()["error"]["message"]
    assert statuses == {500, 503}
    assert emu.queue_length() == 0
    assert emu.users() == {}


def test_added_latency(make_emulator: Any) -> None:
    emu = make_emulator(latency_ms=120)
    started = time.perf_counter()
    assert post(emu, bulk(record("1"))).status_code == 202
    assert time.perf_counter() - started >= 0.12
