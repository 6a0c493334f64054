"""The per-source run lock: exclusive, released on failure, renewed, taken over once stale."""

from __future__ import annotations

import contextlib
import logging
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from connector.clock import FakeClock
from connector.errors import ConcurrentRunError
from connector.state.holder import EXITED, start_time, this_process
from connector.state.local import LocalStateStore
from connector.state.store import StateStore

ROOT = Path(__file__).resolve().parents[2]


def test_lock_is_exclusive_per_source(store: StateStore) -> None:
    with store.lock("employees", owner="run-a") as held:
        assert held.source == "employees"
        assert held.owner == "run-a"
        with pytest.raises(ConcurrentRunError, match="employees"), store.lock("employees"):
            pass
        with store.lock("contractors"):
            pass
        held.renew()
    with store.lock("employees", owner="run-b"):
        pass


def test_lock_released_when_the_run_fails(store: StateStore) -> None:
    with pytest.raises(RuntimeError), store.lock("employees"):
        raise RuntimeError("run crashed")
    with store.lock("employees"):
        pass


def _race_for_the_lock(store_for: Callable[[], StateStore], racers: int = 4) -> list[str]:
    """``racers`` threads take the source's lock at once, each through ``store_for()``;
    the winner holds it until every other one was refused. Their outcomes, sorted."""
    outcomes: list[str] = []
    barrier = threading.Barrier(racers)
    refused = threading.Semaphore(0)
    release = threading.Event()

    def take() -> None:
        store = store_for()
        barrier.wait()
        try:
            with store.lock("employees"):
                outcomes.append("held")
                release.wait(30)
        except ConcurrentRunError:
            outcomes.append("refused")
            refused.release()

    threads = [threading.Thread(target=take) for _ in range(racers)]
    for t in threads:
        t.start()
    for _ in range(racers - 1):
        assert refused.acquire(timeout=30)
    release.set()
    for t in threads:
        t.join()
    return sorted(outcomes)


def test_lock_excludes_other_threads(store: StateStore) -> None:
    assert _race_for_the_lock(lambda: store) == ["held", "refused", "refused", "refused"]


def test_local_stale_lock_is_taken_over(tmp_path: Path) -> None:
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    a = LocalStateStore(tmp_path, clock=clock, lock_ttl=timedelta(minutes=5), heartbeat=False)
    b = LocalStateStore(tmp_path, clock=clock, lock_ttl=timedelta(minutes=5), heartbeat=False)
    with a.lock("employees", owner="crashed") as held_a:
        clock.advance(299)
        with pytest.raises(ConcurrentRunError, match="crashed"), b.lock("employees"):
            pass
        clock.advance(2)  # past the TTL: the holder stopped renewing
        with b.lock("employees", owner="next"):
            with pytest.raises(ConcurrentRunError, match="taken over"):
                held_a.renew()
            assert (tmp_path / "locks" / "employees.lock").exists()
        assert not (tmp_path / "locks" / "employees.lock").exists()
    # a's exit must not remove someone else's lock file (there is none now either)
    with b.lock("employees"):
        pass


def test_local_renew_keeps_the_lock_alive(tmp_path: Path) -> None:
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    a = LocalStateStore(tmp_path, clock=clock, lock_ttl=timedelta(minutes=5), heartbeat=False)
    with a.lock("employees") as held:
        for _ in range(3):
            clock.advance(200)
            held.renew()
        with pytest.raises(ConcurrentRunError), a.lock("employees"):
            pass


def test_local_heartbeat_renews_a_held_lock(tmp_path: Path) -> None:
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    a = LocalStateStore(
        tmp_path, clock=clock, lock_ttl=timedelta(minutes=5), heartbeat_interval=0.01
    )
    b = LocalStateStore(tmp_path, clock=clock, lock_ttl=timedelta(minutes=5), heartbeat=False)
    path = tmp_path / "locks" / "employees.lock"

    def expires() -> str:
        return str(orjson.loads(path.read_bytes())["expires_at"])

    with a.lock("employees"):
        first = expires()
        clock.advance(240)
        renewed = threading.Event()
        for _ in range(3000):  # the heartbeat thread rewrites the lock file
            if expires() != first:
                renewed.set()
                break
            renewed.wait(0.01)
        assert renewed.is_set()
        clock.advance(240)  # 8 minutes after acquiring: still held thanks to the heartbeat
        with pytest.raises(ConcurrentRunError), b.lock("employees"):
            pass


def test_local_garbage_lock_file_counts_as_stale(tmp_path: Path) -> None:
    store = LocalStateStore(tmp_path, heartbeat=False)
    (tmp_path / "locks").mkdir(exist_ok=True)
    (tmp_path / "locks" / "employees.lock").write_bytes(b"\x00half")
    with store.lock("employees"):
        pass


def test_local_heartbeat_retries_a_failed_renewal_before_giving_up(tmp_path: Path) -> None:
    store = LocalStateStore(tmp_path, lock_ttl=timedelta(minutes=5), heartbeat=False)
    with store.lock("employees") as held:
        real = store.backend._renew_lock  # type: ignore[attr-defined]
        failures = {"left": 2}

        def flaky(name: str, token: str) -> bool:
            if failures["left"] > 0:
                failures["left"] -= 1
                raise OSError("disk hiccup")
            return real(name, token)

        store.backend._renew_lock = flaky  # type: ignore[attr-defined]
        assert held._renew_with_retries(0.01)  # type: ignore[attr-defined]
        assert not held.lost
        assert failures["left"] == 0


def test_local_heartbeat_marks_the_lock_lost_when_renewal_keeps_failing(tmp_path: Path) -> None:
    store = LocalStateStore(tmp_path, lock_ttl=timedelta(minutes=5), heartbeat=False)
    with store.lock("employees") as held:

        def broken(name: str, token: str) -> bool:
            raise OSError("disk gone")

        store.backend._renew_lock = broken  # type: ignore[attr-defined]
        assert not held._renew_with_retries(0.01)  # type: ignore[attr-defined]
        assert held.lost


def test_local_lock_taken_over_is_lost_at_once(tmp_path: Path) -> None:
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    a = LocalStateStore(tmp_path, clock=clock, lock_ttl=timedelta(minutes=5), heartbeat=False)
    b = LocalStateStore(tmp_path, clock=clock, lock_ttl=timedelta(minutes=5), heartbeat=False)
    with a.lock("employees") as held:
        clock.advance(301)
        with b.lock("employees", owner="next"):
            assert not held._renew_with_retries(0.01)  # type: ignore[attr-defined]
            assert held.lost


# -- a holder process that is gone (same host) ------------------------------------------

_HOLD = """
import sys, time
from connector.state.holder import EXITED, start_time, this_process
from connector.state.local import LocalStateStore
store = LocalStateStore(sys.argv[1], heartbeat=False)
with store.lock("employees", owner="child-run"):
    print("held", flush=True)
    time.sleep(120)
"""


@contextlib.contextmanager
def _child_holding_the_lock(state: Path) -> Iterator[subprocess.Popen[str]]:
    """A real process that takes the ``employees`` lock and sleeps holding it."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(state)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "held"
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()


def test_local_lock_of_a_killed_process_is_taken_over_at_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "state"
    with _child_holding_the_lock(state) as child:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    store = LocalStateStore(state, heartbeat=False)
    with caplog.at_level(logging.WARNING), store.lock("employees", owner="next") as held:
        assert held.owner == "next"
    taken = [r.getMessage() for r in caplog.records if "gone" in r.getMessage()]
    assert taken == [
        f"source employees: the lock holder (process {child.pid} on this host) is gone;"
        " taking the lock over"
    ]


def test_local_lock_of_a_killed_zombie_process_is_taken_over(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with _child_holding_the_lock(state) as child:
        child.send_signal(signal.SIGKILL)
        for _ in range(3000):  # killed but not reaped yet: a zombie
            if start_time(child.pid) == EXITED:
                break
            time.sleep(0.01)
        assert start_time(child.pid) == EXITED
        with LocalStateStore(state, heartbeat=False).lock("employees"):
            pass


def test_local_lock_of_a_live_process_on_this_host_is_respected(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with _child_holding_the_lock(state):
        store = LocalStateStore(state, heartbeat=False)
        with pytest.raises(ConcurrentRunError, match="child-run"), store.lock("employees"):
            pass


def _write_lock(state: Path, **fields: object) -> None:
    (state / "locks").mkdir(parents=True, exist_ok=True)
    record = {"owner": "elsewhere", "token": "t", "expires_at": "2026-01-01T00:05:00+00:00"}
    (state / "locks" / "employees.lock").write_bytes(orjson.dumps({**record, **fields}))


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=30)
    return proc.pid


def test_local_lock_from_another_host_is_respected_until_it_expires(tmp_path: Path) -> None:
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    me = this_process()
    _write_lock(tmp_path, **{**me.record(), "host": me.host + "-other", "pid": _dead_pid()})
    store = LocalStateStore(tmp_path, clock=clock, heartbeat=False)
    with pytest.raises(ConcurrentRunError, match="elsewhere"), store.lock("employees"):
        pass
    clock.advance(301)
    with store.lock("employees"):
        pass


def test_local_lock_of_a_reused_pid_is_taken_over(tmp_path: Path) -> None:
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    me = this_process()
    assert me.start is not None
    # this process's PID, alive, but started at another time: the holder was another process
    _write_lock(tmp_path, **{**me.record(), "pid_start": me.start - 1})
    store = LocalStateStore(tmp_path, clock=clock, heartbeat=False)
    with store.lock("employees"):
        pass


def test_local_lock_from_an_old_record_without_a_process_identity_waits_for_expiry(
    tmp_path: Path,
) -> None:
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    _write_lock(tmp_path, host=this_process().host, pid=_dead_pid())  # no pid_ns recorded
    store = LocalStateStore(tmp_path, clock=clock, heartbeat=False)
    with pytest.raises(ConcurrentRunError), store.lock("employees"):
        pass


def test_local_takeover_of_a_killed_holder_has_exactly_one_winner(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with _child_holding_the_lock(state) as child:
        child.kill()
        child.wait(timeout=30)
    outcomes = _race_for_the_lock(lambda: LocalStateStore(state, heartbeat=False))
    assert outcomes == ["held", "refused", "refused", "refused"]
