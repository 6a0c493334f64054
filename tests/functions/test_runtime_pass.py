"""The hosted connector's timer pass, drop handling and health, end to end on Azurite.

Each test names the review finding it pins down: a busy source, the bounded waits on
429, the functions being synchronous, the sweep, approvals through the ``approvals``
container, a dead timer in health, and re-dropping a refused file.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest
from azure.functions.blob import InputStream

import function_app
from connector.functions import sweep, wiring
from connector.functions.dropzone import SWEEP_BLOB

from .conftest import extract_bytes

pytestmark = pytest.mark.azurite


# -- a busy source (item 1) ---------------------------------------------------------------------


def test_a_busy_source_does_not_fail_the_timer_pass(make_world: Any, tmp_path: Path) -> None:
    """Another instance holds one source's lock: the other source is still reconciled,
    the job check and the status still happen, and the invocation does not fail."""
    with make_world(second=True) as w:
        w.drop_and_deliver("contractors/c.csv", extract_bytes(tmp_path, 30, seed=21))
        w.drop_and_deliver("employees/e.csv", extract_bytes(tmp_path, 30, seed=22))
        with w.runtime.store.lock("employees", owner="another-instance"):
            w.tick(minutes=15)  # raised ConcurrentRunError before
        [contractors] = w.runs("contractors")
        assert contractors.state == "done"
        assert w.runs("employees")[0].state == "uploaded"  # left for the next pass
        status = orjson.loads(w.read("reports", "_connector/status.json"))
        assert status["busy"] == ["employees"]
        assert status["errors"] == []
        assert set(status["jobs"]) == {"employees", "contractors"}

        w.tick(minutes=15)  # the lock is free again
        assert w.runs("employees")[0].state == "done"


def test_a_redelivery_resumes_its_own_run_while_another_source_is_busy(
    make_world: Any, tmp_path: Path
) -> None:
    data = extract_bytes(tmp_path, 160, seed=23)  # 4 batches
    with make_world(second=True) as w:
        inner = w.runtime.engine.targets
        w.runtime.engine.targets = lambda src: _CrashAfter(inner(src), 2)
        w.drop("employees/hr.csv", data)
        with pytest.raises(_Crash):
            w.deliver("employees/hr.csv", data)
        w.runtime.engine.targets = inner
        with w.runtime.store.lock("contractors", owner="another-instance"):
            w.deliver("employees/hr.csv", data)  # the host retries the message
        [run] = w.runs()
        assert run.state == "uploaded"
        assert len(w.emu.users()) == 160
        assert w.names("incoming") == set()


class _Crash(Exception):
    pass


class _CrashAfter:
    """The service accepts call ``n``, then the worker dies before recording it."""

    def __init__(self, inner: Any, n: int) -> None:
        self.inner, self.n, self.sent = inner, n, 0

    @property
    def job_id(self) -> str | None:
        return self.inner.job_id  # type: ignore[no-any-return]

    async def send(self, payload: Any) -> Any:
        receipt = await self.inner.send(payload)
        self.sent += 1
        if self.sent == self.n:
            raise _Crash("worker killed")
        return receipt

    def iter_logs(self, since: Any) -> Any:
        return self.inner.iter_logs(since)

    async def get_job(self) -> Any:
        return await self.inner.get_job()

    async def aclose(self) -> None:
        await self.inner.aclose()


# -- bounded waits on 429 (item 2) --------------------------------------------------------------


def test_a_long_retry_after_is_not_waited_for_in_a_function(
    make_world: Any, tmp_path: Path
) -> None:
    """429 with Retry-After 100 s: the default client policy would wait 100 s per batch."""
    data = extract_bytes(tmp_path, 200, seed=24)  # 4 batches
    limit = {"rate_limit_calls": 1, "rate_limit_window_seconds": 100}
    with make_world(emulator=limit) as w:
        w.drop_and_deliver("employees/hr.csv", data)
        [run] = w.runs()
        assert run.state == "uploading"
        assert run.waiting_reason == "quota"  # a Retry-After over 30 s means: come back later
        assert sum(w.clock.slept) < 1
        assert run.batches_done == 1

        for _ in range(12):  # the timer continues it, one paced step at a time
            w.tick(minutes=15)
        [done] = w.runs()
        assert done.state in ("uploaded", "reconciling", "done")
        assert len(w.emu.users()) == 200


def test_total_retry_waiting_in_one_invocation_is_bounded(make_world: Any, tmp_path: Path) -> None:
    """429 with Retry-After 20 s on nearly every call: each short wait is allowed, but the
    invocation stops sending once its waits add up to the budget and leaves the run waiting.

    The engine keeps up to ``window`` batches in flight and each may wait once, so the
    summed waits (the FakeClock adds concurrent sleeps up) stay under the budget plus one
    ``max_retry_after`` per batch in flight; the default client policy waited 5 × 20 s per
    batch, for every batch.
    """
    data = extract_bytes(tmp_path, 800, seed=25)  # 16 batches
    limit = {"rate_limit_calls": 1, "rate_limit_window_seconds": 20}
    policy = wiring.FUNCTIONS_RETRY
    with make_world(emulator=limit) as w:
        bound = wiring.WAIT_BUDGET_SECONDS + w.runtime.engine.window * policy.max_retry_after * (
            policy.max_attempts - 1
        )
        w.drop_and_deliver("employees/hr.csv", data)
        [run] = w.runs()
        assert sum(w.clock.slept) <= bound
        assert max(w.clock.slept) <= policy.max_retry_after
        assert run.state == "uploading"
        assert run.waiting_reason == "throttled"
        assert run.batches_done < 16

        for _ in range(30):
            before = len(w.clock.slept)
            w.tick(minutes=15)
            assert sum(w.clock.slept[before:]) <= 2 * bound  # resume + reconcile, each bounded
            if len(w.emu.users()) == 800:
                break
        assert len(w.emu.users()) == 800


def test_each_invocation_loop_gets_its_own_targets(make_world: Any) -> None:
    """Rate limiters hold an asyncio lock: two invocations (two threads, two loops) must
    not share one; calls within one invocation share it (pacing across a pass)."""
    with make_world() as w:
        src = w.runtime.config.sources[0]

        async def limiters() -> tuple[Any, Any]:
            a, b = w.runtime.targets(src), w.runtime.targets(src)
            try:
                return a._inner.client.limiter, b._inner.client.limiter
            finally:
                await a.aclose()
                await b.aclose()

        found: list[tuple[Any, Any]] = []
        threads = [
            threading.Thread(target=lambda: found.append(asyncio.run(limiters()))) for _ in range(2)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        (a1, b1), (a2, b2) = found
        assert a1 is b1
        assert a2 is b2
        assert a1 is not a2


# -- synchronous functions (item 3) -------------------------------------------------------------


def test_functions_are_synchronous_so_the_host_runs_them_on_its_thread_pool() -> None:
    for fn in (function_app.ingest_extract, function_app.reconcile, function_app.health):
        user = fn._function.get_user_function()  # type: ignore[attr-defined]
        assert not inspect.iscoroutinefunction(user), user.__name__


def test_an_ingest_on_a_worker_thread_does_not_block_the_event_loop(
    make_world: Any, tmp_path: Path
) -> None:
    """Like the Python worker: the loop stays free while a sync function runs in a thread."""
    data = extract_bytes(tmp_path, 40, seed=26)
    with make_world() as w:
        w.drop("employees/hr.csv", data)
        started = threading.Event()
        release = threading.Event()
        real_ingest = w.runtime.engine.ingest

        async def slow_ingest(*args: Any, **kwargs: Any) -> Any:
            started.set()
            release.wait(10)  # blocking work (planning, sync blob I/O) inside the function
            return await real_ingest(*args, **kwargs)

        w.runtime.engine.ingest = slow_ingest  # type: ignore[method-assign]
        stream = InputStream(data=data, name="incoming/employees/hr.csv", length=len(data))

        async def host() -> int:
            loop = asyncio.get_running_loop()
            job = loop.run_in_executor(None, function_app.ingest_extract, stream)
            await loop.run_in_executor(None, started.wait, 10)
            ticks = 0
            for _ in range(5):  # the loop keeps serving other work meanwhile
                await asyncio.sleep(0)
                ticks += 1
            release.set()
            await job
            return ticks

        assert asyncio.run(host()) == 5
        w.emu.wait_idle()
        assert w.runs()[0].state == "uploaded"


# -- the sweep (item 4) -------------------------------------------------------------------------


def test_sweep_runs_after_resume_and_reconcile(make_world: Any) -> None:
    with make_world() as w:
        order: list[str] = []
        rt = w.runtime
        for name in ("process_approvals", "sweep_incoming", "check_jobs"):
            original = getattr(rt, name)

            async def wrapped(*a: Any, _o: Any = original, _n: str = name, **k: Any) -> Any:
                order.append(_n)
                return await _o(*a, **k)

            setattr(rt, name, wrapped)
        engine = rt.engine
        for name in ("resume_waiting", "reconcile_open_runs"):
            original = getattr(engine, name)

            async def wrapped_engine(*a: Any, _o: Any = original, _n: str = name, **k: Any) -> Any:
                order.append(_n)
                return await _o(*a, **k)

            setattr(engine, name, wrapped_engine)
        w.tick()
        assert order == [
            "process_approvals",
            "resume_waiting",
            "reconcile_open_runs",
            "check_jobs",
            "sweep_incoming",
        ]


def test_a_failing_file_does_not_block_the_sweep_and_is_retried_later(
    make_world: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sweep, "SWEEP_MAX_FILES", 1)
    with make_world() as w:
        w.drop("employees/a_broken.csv", extract_bytes(tmp_path, 10, seed=27))
        w.clock.advance(60)
        w.drop("employees/b_good.csv", extract_bytes(tmp_path, 10, seed=28))
        real_ingest = w.runtime.engine.ingest
        calls: list[str] = []

        async def ingest(source: str, name: str, *args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            if name.endswith("a_broken.csv"):
                raise RuntimeError("storage hiccup that never goes away")
            return await real_ingest(source, name, *args, **kwargs)

        w.runtime.engine.ingest = ingest  # type: ignore[method-assign]
        w.tick(minutes=15)  # the oldest file fails
        assert calls == ["employees/a_broken.csv"]
        record = orjson.loads(w.read(*SWEEP_BLOB))["failures"]["employees/a_broken.csv"]
        assert record["failures"] == 1
        assert record["error"] == "RuntimeError"

        w.tick(minutes=1)  # it is left alone for a while: the next file gets its turn
        assert calls[-1] == "employees/b_good.csv"
        assert w.names("incoming") == {"employees/a_broken.csv"}

        w.tick(minutes=15)  # 15 min after its failure it is tried again
        assert calls[-1] == "employees/a_broken.csv"
        record = orjson.loads(w.read(*SWEEP_BLOB))["failures"]["employees/a_broken.csv"]
        assert record["failures"] == 2

        w.runtime.engine.ingest = real_ingest  # type: ignore[method-assign]
        w.tick(minutes=31)  # the 2nd failure waits 30 min; then it goes through
        assert w.names("incoming") == set()
        assert orjson.loads(w.read(*SWEEP_BLOB))["failures"] == {}


def test_sweep_downloads_one_file_at_a_time_within_its_time_budget(
    make_world: Any, tmp_path: Path
) -> None:
    with make_world() as w:
        for i in range(4):
            w.drop(f"employees/f{i}.csv", extract_bytes(tmp_path, 5, seed=30 + i))
        w.clock.advance(15 * 60)
        downloads: list[str] = []
        real_read = w.runtime.zone.read_incoming

        def read_incoming(name: str) -> bytes | None:
            downloads.append(name)
            return real_read(name)

        real_ingest = w.runtime.ingest

        async def slow_ingest(name: str, data: bytes) -> Any:
            assert downloads[-1] == name  # downloaded only when its turn came
            w.clock.advance(sweep.SWEEP_BUDGET_SECONDS / 2)  # a slow file
            return await real_ingest(name, data)

        w.runtime.zone.read_incoming = read_incoming  # type: ignore[method-assign]
        w.runtime.ingest = slow_ingest  # type: ignore[method-assign]
        swept = asyncio.run(w.runtime.sweep_incoming())
        assert [o.blob for o in swept] == ["employees/f0.csv", "employees/f1.csv"]
        assert downloads == ["employees/f0.csv", "employees/f1.csv"]
        assert len(w.names("incoming")) == 2  # the rest waits for the next pass


# -- approvals through the approvals container (item 6) -----------------------------------------


def _held_run(w: Any, tmp_path: Path) -> Any:
    day1 = tmp_path / "hr_1.csv"
    from connector.sample import generate_extract

    generate_extract(day1, 100, seed=8)
    lines = day1.read_text(encoding="utf-8").splitlines(keepends=True)
    w.drop_and_deliver("employees/hr_1.csv", day1.read_bytes())
    w.tick(minutes=15)
    w.clock.advance(60)
    w.drop_and_deliver("employees/hr_2.csv", "".join(lines[:41]).encode())
    return next(r for r in w.runs() if r.state == "held")


def test_an_operator_approves_a_held_run_with_a_blob_in_approvals(
    make_world: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with make_world() as w:
        held = _held_run(w, tmp_path)
        calls = len(w.bulk_calls())
        marker = b'{"by": "Jane Operator"}'
        w.service.get_blob_client("approvals", held.run_id).upload_blob(marker)

        w.tick(minutes=15)
        released = next(r for r in w.runs() if r.run_id == held.run_id)
        assert released.state in ("uploaded", "reconciling", "done")
        assert len(w.bulk_calls()) > calls
        journal = w.runtime.engine.get_run(held.run_id)
        assert journal["approvedBy"] == "Jane Operator"
        assert any("Jane Operator" in str(e) for e in journal["timeline"])
        # the marker is filed (a copy first), never just deleted
        assert w.names("approvals") == {f"processed/{held.run_id}"}
        assert w.read("approvals", f"processed/{held.run_id}") == marker
        props = w.service.get_blob_client("approvals", f"processed/{held.run_id}")
        assert props.get_blob_properties().metadata["outcome"] == "approved"
        assert "Jane" not in caplog.text  # who approved is in the journal, not in logs

        # the same marker again (an operator retrying): nothing more happens
        w.service.get_blob_client("approvals", held.run_id).upload_blob(marker)
        sent = len(w.bulk_calls())
        w.tick(minutes=15)
        assert len(w.bulk_calls()) == sent
        assert w.names("approvals") == {f"processed/{held.run_id}"}


def test_an_approval_for_an_unknown_run_is_filed_not_retried_forever(make_world: Any) -> None:
    with make_world() as w:
        w.service.get_blob_client("approvals", "employees-0000000000").upload_blob(b"")
        w.tick(minutes=15)
        assert w.names("approvals") == {"processed/employees-0000000000"}
        blob = w.service.get_blob_client("approvals", "processed/employees-0000000000")
        assert blob.get_blob_properties().metadata["outcome"] == "unknown_run"


def test_an_approval_while_the_source_is_busy_stays_for_the_next_pass(
    make_world: Any, tmp_path: Path
) -> None:
    with make_world() as w:
        held = _held_run(w, tmp_path)
        w.service.get_blob_client("approvals", held.run_id).upload_blob(b"")
        with w.runtime.store.lock("employees", owner="another-instance"):
            w.tick(minutes=15)
        assert w.names("approvals") == {held.run_id}
        assert next(r for r in w.runs() if r.run_id == held.run_id).state == "held"
        w.tick(minutes=15)
        assert next(r for r in w.runs() if r.run_id == held.run_id).state != "held"
        journal = w.runtime.engine.get_run(held.run_id)
        assert journal["approvedBy"] == "approvals container"


# -- a dead timer in health (item 10) -----------------------------------------------------------


def test_health_is_degraded_when_the_timer_stopped_running(make_world: Any) -> None:
    with make_world() as w:
        code, body = w.health()
        assert code == 503  # no pass recorded yet
        assert body["problems"] == ["no successful reconcile pass recorded yet"]

        w.tick(minutes=15)
        code, body = w.health()
        assert code == 200
        assert body["staleAfterMinutes"] == 45  # 15-min schedule: max(3 × 15, 15 + 30)

        w.clock.advance(44 * 60)
        assert w.health()[0] == 200
        w.clock.advance(2 * 60)  # 46 min without a pass: the timer is dead
        code, body = w.health()
        assert code == 503
        assert body["status"] == "degraded"
        assert "is the timer running and succeeding?" in body["problems"][0]


def test_health_staleness_follows_the_schedule(make_world: Any) -> None:
    with make_world(schedule="0 0 * * * *") as w:  # hourly
        w.tick(minutes=1)
        w.clock.advance(2 * 3600)
        assert w.health()[0] == 200  # two missed hours is not yet three intervals
        w.clock.advance(3600 + 60)
        assert w.health()[0] == 503


# -- re-dropping a refused file (item 11) -------------------------------------------------------


def test_re_dropping_a_refused_file_plans_it_again(make_world: Any, tmp_path: Path) -> None:
    """What docs/functions.md says: a run that failed before sending anything is planned
    again when the same bytes arrive again (after the mapping or config was fixed)."""
    data = extract_bytes(tmp_path, 20, seed=29)
    with make_world() as w:
        real_records = w.runtime.engine.records

        def refusing(source: Any, path: Any) -> Any:
            from connector.errors import ExtractError

            raise ExtractError("the mapping does not fit this extract")

        w.runtime.engine.records = refusing
        w.drop_and_deliver("employees/hr.csv", data)
        [failed] = w.runs()
        assert failed.state == "failed"
        assert "employees/hr.csv" in w.names("quarantine")

        w.runtime.engine.records = real_records  # the mapping was fixed
        w.drop_and_deliver("employees/hr.csv", data)
        [run] = w.runs()
        assert run.run_id == failed.run_id
        assert run.state == "uploaded"
        assert len(w.emu.users()) == 20
        assert len(w.names("archive")) == 1
