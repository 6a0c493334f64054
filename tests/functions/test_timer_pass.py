"""The timer pass on Azurite: its step order, a busy source, a failing step, its log line.

Each step is guarded on its own: a busy source is skipped and reported, a failing step
is logged without personal data and fails the invocation after the status is written.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import orjson
import pytest

from connector.errors import ConnectorError
from connector.sync.summary import PassResult

from .conftest import extract_bytes

pytestmark = pytest.mark.azurite


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


def test_a_failing_step_logs_no_email_or_upn(
    make_world: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with make_world() as w:

        async def boom() -> PassResult:
            raise RuntimeError("userPrincipalName jane.doe@contoso.com is already in use")

        w.runtime.engine.resume_waiting = boom
        with pytest.raises(ConnectorError) as raised:  # the host logs this and its causes
            w.tick(minutes=15)
        chain = [raised.value, raised.value.__cause__]
        text = "\n".join(
            r.getMessage() + (str(r.exc_info[1]) if r.exc_info else "") for r in caplog.records
        )
        text += "\n".join(str(e) for e in chain if e is not None)
        assert "resume failed" in text
        assert "jane.doe@contoso.com" not in text
        assert "RuntimeError" in text


def test_the_pass_line_names_sources_blocked_by_a_run() -> None:
    from connector.functions.outcomes import PassOutcome

    out = PassOutcome(blocked={"employees": "run employees-1 is blocked"})
    assert out.line().endswith("blocked=employees")
    assert "blocked" not in PassOutcome().line()
