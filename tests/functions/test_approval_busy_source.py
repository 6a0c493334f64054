"""A marker for a busy source names that source in the pass's busy list, whatever its run id."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from connector.errors import ConcurrentRunError
from connector.functions.approvals import Approvals
from connector.functions.markers import ApprovalMarker
from connector.sync.journal import RunState


@dataclass
class _Journal:
    source: str
    state: RunState = RunState.HELD
    approved_by: str | None = None


@dataclass
class _Engine:
    journals: dict[str, _Journal]

    def get_run(self, run_id: str) -> _Journal:
        return self.journals[run_id]

    async def approve(self, run_id: str, **_: Any) -> Any:
        raise ConcurrentRunError("the source is busy")


@dataclass
class _Zone:
    markers: list[ApprovalMarker]
    filed: list[str] = field(default_factory=list)

    def approval_markers(self) -> list[ApprovalMarker]:
        return list(self.markers)

    def file_approval_marker(self, marker: ApprovalMarker, outcome: str) -> None:
        self.filed.append(marker.name)


def test_a_dated_run_of_a_hyphenated_source_is_reported_under_its_source() -> None:
    run_id = "hr-sql-0123456789abcdef0123-20260105T020000Z"
    zone = _Zone([ApprovalMarker(name=run_id, etag="0x1", data=b"")])
    engine = _Engine({run_id: _Journal("hr-sql")})
    approvals = Approvals(zone, engine, telemetry=None)  # type: ignore[arg-type]
    busy: set[str] = set()
    out = asyncio.run(approvals.process(busy))
    assert [o.outcome for o in out] == ["busy"]
    assert busy == {"hr-sql"}
    assert zone.filed == []  # the marker stays for the next pass
