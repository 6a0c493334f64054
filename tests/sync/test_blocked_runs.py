"""Errors retrying cannot fix (401, 403, 404, no token) block a run until an operator resumes it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from connector.errors import (
    PermissionDeniedError,
)
from tests.sync.fakes import people
from tests.sync.world import World


def test_403_blocks_the_run_and_the_timer_does_not_retry_it(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.service.error = PermissionDeniedError("403: lacks SynchronizationData-User.Upload")
    run = w.sync("hr_20260302.csv", people(60))
    assert run.state == "blocked"
    assert run.failed_reason is not None
    assert "SynchronizationData-User.Upload" in run.failed_reason
    assert run.waiting is None
    assert asyncio.run(w.engine.resume_waiting()) == []
    w.service.error = None
    out = asyncio.run(w.engine.resume(run.run_id))  # the operator fixed the permission
    assert out.state == "uploaded"
    assert len(w.service.users) == 60


def test_approve_checks_a_token_can_be_obtained(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.sync("hr_20260302.csv", people(100))
    w.clock.advance(86400)
    held = w.sync("hr_20260303.csv", people(10))
    assert held.state == "held"
    from connector.errors import AuthenticationError

    def target(src: Any) -> Any:
        t = w.service.target(src)

        async def preflight() -> None:
            raise AuthenticationError("no credential available")

        t.preflight = preflight  # type: ignore[attr-defined]
        return t

    w.engine.targets = target
    with pytest.raises(AuthenticationError):
        asyncio.run(w.engine.approve(held.run_id))
    assert w.engine.get_run(held.run_id).state == "held"
