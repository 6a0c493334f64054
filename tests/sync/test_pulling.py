"""The pull record's watermark moves only once the run it came from is applied."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from connector.sources.snapshot import Watermark
from connector.sync.journal import Journal, RunState
from connector.sync.pulling import PullState, settle

AT = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)
OLD = Watermark("int", "10")
NEW = Watermark("int", "20")


def _pending() -> PullState:
    return PullState(last_pull_at=AT, watermark=OLD, pending_run="s-1", pending_watermark=NEW)


def _run(state: RunState, **kw: object) -> Journal:
    return Journal(run_id="s-1", source="s", state=state, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("state", [RunState.UPLOADED, RunState.RECONCILING, RunState.DONE])
def test_an_applied_run_makes_its_mark_the_watermark(state: RunState) -> None:
    got = settle(_pending(), _run(state))
    assert got.watermark == NEW
    assert got.pending_run is None


@pytest.mark.parametrize(
    "state",
    [RunState.RECEIVED, RunState.PLANNED, RunState.HELD, RunState.UPLOADING, RunState.BLOCKED],
)
def test_a_run_not_yet_applied_keeps_its_mark_pending(state: RunState) -> None:
    assert settle(_pending(), _run(state)) == _pending()


@pytest.mark.parametrize("state", [RunState.FAILED, RunState.SUPERSEDED, RunState.DISCARDED])
def test_a_run_that_will_never_apply_drops_its_mark(state: RunState) -> None:
    got = settle(_pending(), _run(state))
    assert got.watermark == OLD
    assert got.pending_run is None


def test_a_run_discarded_after_delivering_some_batches_drops_its_mark() -> None:
    got = settle(_pending(), _run(RunState.UPLOADED, discarded_reason="discarded by ops"))
    assert got.watermark == OLD
    assert got.pending_run is None


def test_a_pending_run_that_is_gone_drops_its_mark() -> None:
    assert settle(_pending(), None).watermark == OLD


def test_the_pull_record_round_trips_through_its_document() -> None:
    state = _pending()
    assert PullState.from_doc(state.to_doc("s")) == state
    assert PullState.from_doc({}) == PullState()
