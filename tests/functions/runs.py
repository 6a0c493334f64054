"""Runs in a given state, made through the hosted connector (held, blocked)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from connector.errors import PermissionDeniedError


class Refusing:
    """A target whose sends fail (default: 403, the app lost its upload permission)."""

    def __init__(self, inner: Any, error: Exception | None = None) -> None:
        self._inner = inner
        self._error = error or PermissionDeniedError("403: lacks the upload role", status=403)

    @property
    def job_id(self) -> str | None:
        return self._inner.job_id  # type: ignore[no-any-return]

    async def send(self, payload: Any) -> Any:
        raise self._error

    def iter_logs(self, since: Any) -> Any:
        return self._inner.iter_logs(since)

    async def get_job(self) -> Any:
        return await self._inner.get_job()

    async def aclose(self) -> None:
        await self._inner.aclose()


def held_run(w: Any, tmp_path: Path) -> Any:
    day1 = tmp_path / "hr_1.csv"
    from connector.sample import generate_extract

    generate_extract(day1, 100, seed=8)
    lines = day1.read_text(encoding="utf-8").splitlines(keepends=True)
    w.drop_and_deliver("employees/hr_1.csv", day1.read_bytes())
    w.tick(minutes=15)
    w.clock.advance(60)
    w.drop_and_deliver("employees/hr_2.csv", "".join(lines[:41]).encode())
    return next(r for r in w.runs() if r.state == "held")


def blocked_run(w: Any, tmp_path: Path) -> Any:
    from connector.sample import generate_extract

    engine = w.runtime.engine
    real = engine.targets
    engine.targets = lambda src: Refusing(real(src))
    day1 = tmp_path / "hr_1.csv"
    generate_extract(day1, 60, seed=3)
    w.drop_and_deliver("employees/hr_1.csv", day1.read_bytes())
    engine.targets = real
    return next(r for r in w.runs() if r.state == "blocked")
