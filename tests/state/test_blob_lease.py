"""The Blob lock counts itself lost before its lease can lapse, and bounds each renewal."""

from __future__ import annotations

from typing import Any

import pytest
from azure.core.exceptions import ServiceRequestError

from connector.errors import ConcurrentRunError
from connector.state.blob import LEASE_SECONDS, LOST_AFTER_SECONDS, RENEW_TIMEOUT_SECONDS, BlobLock


class FakeLease:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.fail = False

    def renew(self, **kw: Any) -> None:
        self.calls.append(kw)
        if self.fail:
            raise ServiceRequestError("connection reset")


class Ticker:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_each_renewal_is_bounded_and_not_retried_by_the_sdk() -> None:
    lease = FakeLease()
    lock = BlobLock(lease, "employees", "me", monotonic=Ticker())  # type: ignore[arg-type]
    lock.renew()
    [kw] = lease.calls
    assert kw["timeout"] == RENEW_TIMEOUT_SECONDS
    assert kw["read_timeout"] == RENEW_TIMEOUT_SECONDS
    assert kw["connection_timeout"] == RENEW_TIMEOUT_SECONDS
    assert kw["retry_total"] == 0
    assert RENEW_TIMEOUT_SECONDS * 2 < LEASE_SECONDS


def test_no_successful_renewal_for_two_thirds_of_the_lease_is_a_lost_lock() -> None:
    clock = Ticker()
    lease = FakeLease()
    lock = BlobLock(lease, "employees", "me", monotonic=clock)  # type: ignore[arg-type]
    assert pytest.approx(LEASE_SECONDS * 2 / 3) == LOST_AFTER_SECONDS
    clock.now += LOST_AFTER_SECONDS - 1
    assert lock.lost is False
    lock.renew()  # a renewal lands: the clock starts again
    clock.now += LOST_AFTER_SECONDS - 1
    assert lock.lost is False
    clock.now += 2  # e.g. the renewal thread is stuck in a call
    assert lock.lost is True
    with pytest.raises(ConcurrentRunError):
        lock.renew()  # never renewed back once counted lost
    assert len(lease.calls) == 1


def test_the_heartbeat_stops_renewing_once_the_lock_is_lost() -> None:
    clock = Ticker()
    lease = FakeLease()
    lock = BlobLock(lease, "employees", "me", monotonic=clock)  # type: ignore[arg-type]
    assert lock._renew_with_retries() is True
    clock.now += LOST_AFTER_SECONDS + 1
    assert lock._renew_with_retries() is False
    assert len(lease.calls) == 1
    assert lock.lost is True


def test_a_failing_renewal_marks_the_lock_lost() -> None:
    lease = FakeLease()
    lease.fail = True
    lock = BlobLock(lease, "employees", "me", monotonic=Ticker())  # type: ignore[arg-type]
    with pytest.raises(ConcurrentRunError):
        lock.renew()
    assert lock.lost is True
