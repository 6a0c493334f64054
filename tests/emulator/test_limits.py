"""Throttling (40 calls in any 5-second window), daily quota, Retry-After, bucket full.
Time is the emulator's FakeClock, moved with ``advance``; nothing sleeps."""

from __future__ import annotations

from typing import Any

import httpx

from connector.emulator import BUCKET_FULL_MESSAGE, RunningEmulator

from .helpers import bulk, post, record


def _calls(emu: RunningEmulator, n: int, client: httpx.Client) -> list[int]:
    return [post(emu, bulk(record(f"{i}")), client=client).status_code for i in range(n)]


def test_forty_calls_pass_and_the_41st_in_the_window_is_429(emu: RunningEmulator) -> None:
    with httpx.Client() as client:
        assert _calls(emu, 40, client) == [202] * 40
        throttled = post(emu, bulk(record("x")), client=client)
        assert throttled.status_code == 429
        assert throttled.json()["error"]["code"] == "TooManyRequests"
        assert throttled.headers["retry-after"] == "5"
        emu.advance(4.999)
        assert post(emu, bulk(record("x")), client=client).status_code == 429
        emu.advance(0.001)
        assert post(emu, bulk(record("x")), client=client).status_code == 202


def test_window_slides_rather_than_resetting(emu: RunningEmulator) -> None:
    with httpx.Client() as client:
        assert _calls(emu, 20, client) == [202] * 20
        emu.advance(3)
        assert _calls(emu, 20, client) == [202] * 20
        emu.advance(2)  # the first 20 left the window, the last 20 are 2 s old
        assert _calls(emu, 20, client) == [202] * 20
        response = post(emu, bulk(record("x")), client=client)
        assert response.status_code == 429
        assert response.headers["retry-after"] == "3"
    statuses = [c.status for c in emu.calls()]
    assert statuses == [202] * 60 + [429]
    times = emu.accepted_call_times()
    assert len(times) == 60
    assert max(sum(1 for t in times if s <= t < s + 5) for s in times) == 40


def test_retry_after_can_be_switched_off(make_emulator: Any) -> None:
    emu = make_emulator(rate_limit_calls=2, retry_after=False)
    with httpx.Client() as client:
        assert _calls(emu, 3, client) == [202, 202, 429]
        response = post(emu, bulk(record("x")), client=client)
    assert response.status_code == 429
    assert "retry-after" not in response.headers


def test_throttled_calls_can_count_against_the_window(make_emulator: Any) -> None:
    emu = make_emulator(rate_limit_calls=2, count_throttled_calls=True)
    with httpx.Client() as client:
        assert _calls(emu, 3, client) == [202, 202, 429]
        emu.advance(4)
        assert _calls(emu, 1, client) == [429]
        emu.advance(0.5)
        assert _calls(emu, 1, client) == [429]
        emu.advance(0.5)  # t=5: the t=0 calls left; the 429s at t=4 and t=4.5 still count
        assert _calls(emu, 1, client) == [429]
        emu.advance(5)
        assert _calls(emu, 1, client) == [202]


def test_daily_quota_rolling_24_hours(make_emulator: Any) -> None:
    emu = make_emulator(daily_quota=5, rate_limit_calls=None)
    with httpx.Client() as client:
        assert _calls(emu, 5, client) == [202] * 5
        emu.advance(3600)
        response = post(emu, bulk(record("x")), client=client)
        assert response.status_code == 429
        assert "daily quota of 5" in response.json()["error"]["message"]
        assert response.headers["retry-after"] == str(23 * 3600)
        emu.advance(23 * 3600)
        assert _calls(emu, 5, client) == [202] * 5
        assert _calls(emu, 1, client) == [429]


def test_daily_quota_utc_day_resets_at_midnight(make_emulator: Any) -> None:
    emu = make_emulator(daily_quota=2, rate_limit_calls=None, quota_window="utc_day")
    emu.advance(23 * 3600)  # FakeClock starts at midnight UTC: now 23:00
    with httpx.Client() as client:
        assert _calls(emu, 3, client) == [202, 202, 429]
        assert post(emu, bulk(record("x")), client=client).headers["retry-after"] == "3600"
        emu.advance(3600)
        assert _calls(emu, 2, client) == [202, 202]


def test_quota_and_rate_limit_can_be_disabled(make_emulator: Any) -> None:
    emu = make_emulator(daily_quota=None, rate_limit_calls=None)
    with httpx.Client() as client:
        assert _calls(emu, 120, client) == [202] * 120


def test_bucket_full_is_500_with_the_documented_message(make_emulator: Any) -> None:
    emu = make_emulator(bucket_size=100, rate_limit_calls=None)
    emu.set_job_state("Paused")
    with httpx.Client() as client:
        assert (
            post(emu, bulk(*(record(f"a{i}") for i in range(50))), client=client).status_code == 202
        )
        assert (
            post(emu, bulk(*(record(f"b{i}") for i in range(50))), client=client).status_code == 202
        )
        full = post(emu, bulk(record("c")), client=client)
    assert full.status_code == 500
    assert full.json()["error"]["message"] == BUCKET_FULL_MESSAGE
    assert emu.queue_length() == 100
    emu.set_job_state("Active")
    emu.wait_idle(5)
    assert emu.queue_length() == 0
    assert post(emu, bulk(record("c"))).status_code == 202
