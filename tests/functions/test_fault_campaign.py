"""The fault campaign on the Functions path, one bounded round (benchmarks/fault_campaign.py).

The host's function bodies run in worker processes against a private Azurite and the
emulator (both started here on free loopback ports): killed with SIGKILL mid-ingest,
mid-upload and mid-reconcile and retried, the same event delivered twice at once and
again, two instances at once, a lease broken and a lease expired under a holder that is
still sending, Azurite restarted while a file uploads. After each scenario the timer
runs until everything is finished, and the directory must match the extracts applied in
order: nothing lost, nothing applied twice, no run or lease left behind.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.fault_campaign import Outcome, run_scenario
from benchmarks.fault_campaign_world import World

pytestmark = pytest.mark.azurite

ROWS = 120
SEED = 7

#: Crashes each scenario injects (the seed fixes where); the others inject no SIGKILL.
CRASHES = {"crash_ingest": 2, "crash_upload": 2, "crash_reconcile": 2}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with World(tmp_path_factory.mktemp("fault-campaign")).running() as w:
        yield w


def _clean(out: Outcome) -> None:
    v = out.verdict
    detail = "\n".join(out.notes + v.problems + [f"{k}: {s}" for k, s in v.runs.items()])
    assert v.records > 0
    assert (v.lost, v.double_applied, v.stale) == (0, 0, 0), detail
    assert (v.stuck, v.leases_held, v.incoming_left) == (0, 0, 0), detail
    assert out.crashes == CRASHES.get(out.scenario, 0), detail


def _run(w: World, scenario: str) -> Outcome:
    out = run_scenario(w, scenario, 1, SEED, ROWS)
    _clean(out)
    return out


def test_a_worker_killed_while_planning_loses_nothing_after_the_host_retries(
    world: World,
) -> None:
    out = _run(world, "crash_ingest")
    assert any("deferred" in n for n in out.notes)  # the dead worker's lease, until it lapses
    assert out.verdict.resent == 0  # nothing had been sent


def test_a_worker_killed_mid_upload_is_continued_and_only_in_flight_batches_are_resent(
    world: World,
) -> None:
    out = _run(world, "crash_upload")
    # Each kill landed after a 202 and before its journal write: the batches in flight
    # then (at most the window) were sent again, with the same data; nothing else.
    assert out.verdict.unjournaled_calls >= 2
    assert 0 < out.verdict.resent <= 50 * out.verdict.unjournaled_calls


def test_a_worker_killed_mid_reconcile_is_finished_by_the_next_timer(world: World) -> None:
    out = _run(world, "crash_reconcile")
    assert out.verdict.resent == 0


def test_a_duplicate_event_at_once_or_later_makes_one_run(world: World) -> None:
    out = _run(world, "duplicate_event")
    assert len(out.verdict.runs) == 2  # one per file, however often it was delivered
    # The later delivery finds the file archived (so may the second of the pair at once,
    # when the first finished before it started).
    assert sum("gone" in n for n in out.notes) >= 2
    assert out.verdict.resent == 0


def test_two_instances_apply_two_files_in_extract_order(world: World) -> None:
    out = _run(world, "two_instances")
    assert out.verdict.resent == 0


def test_a_holder_whose_lease_is_broken_stops_and_the_taker_finishes(world: World) -> None:
    out = _run(world, "lease_broken")
    holder = next(n for n in out.notes if n.startswith("the holder"))
    assert "error" not in holder, holder  # stopped as a lost lock, not a failed invocation


def test_a_holder_paused_past_its_lease_sends_nothing_new_when_resumed(world: World) -> None:
    out = _run(world, "lease_expired")
    resumed = next(n for n in out.notes if n.startswith("the paused holder"))
    assert "lock_lost" in resumed or "deferred" in resumed, resumed


def test_an_azurite_restart_mid_upload_loses_nothing(world: World) -> None:
    _run(world, "azurite_restart")
    assert world.azurite.restarts >= 2


def test_the_campaign_table_sums_the_scenarios(tmp_path: Path) -> None:
    from benchmarks.fault_campaign import table

    a, b = Outcome("crash_ingest", 1, crashes=2), Outcome("crash_ingest", 2, crashes=1)
    a.verdict.resent = 3
    text = table([a, b])
    assert text.splitlines()[1].split()[:3] == ["crash_ingest", "2", "3"]
    assert text.splitlines()[-1].split()[0] == "total"
