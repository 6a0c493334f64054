"""Regression tests for the engine review's findings (one or more per item)."""

from __future__ import annotations

import asyncio
import io
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from connector.clock import FakeClock
from connector.errors import (
    ConcurrentRunError,
    PermissionDeniedError,
    RejectedShareExceededError,
    RunError,
)
from connector.extract import ExtractStats
from connector.extract import RejectedRow as ExtractRejectedRow
from connector.graph.auth import StaticTokenProvider
from connector.graph.client import RetryPolicy
from connector.pipeline import Engine, PassResult, WaitingReason, graph_targets
from connector.reconcile import SentRecord, reconcile
from connector.state.local import LocalStateStore
from tests.sync.fakes import Crash, config, people
from tests.sync.test_pipeline import T0, World

# -- 2: a newer file never loses a waiting run's unsent records ----------------------------


def delta_world(tmp: Path) -> World:
    w = World(tmp)
    w.config = config(mode="delta", max_changes_percent=1000, max_changes=100000)
    w.engine = w.new_engine()
    return w


def test_delta_mode_finishes_the_waiting_run_before_planning_the_newer_file(
    tmp_path: Path,
) -> None:
    w = delta_world(tmp_path)
    w.service.quota = 1
    a = w.sync("hr_20260302.csv", people(100))  # 2 batches, 1 sent
    assert a.state == "uploading"
    w.service.quota = None
    w.clock.advance(86400)
    b = w.sync("hr_20260303.csv", people(10, dept="Ops", start=200))
    assert b.state == "uploaded"
    old = w.engine.get_run(a.run_id)
    assert old["state"] == "uploaded"
    assert "supersededReason" not in old
    assert set(w.service.users) == {f"E{i:04}" for i in range(1, 101)} | {
        f"E{i:04}" for i in range(200, 210)
    }


def test_delta_mode_newer_file_queues_behind_a_run_still_waiting(tmp_path: Path) -> None:
    w = delta_world(tmp_path)
    w.service.quota = 1
    a = w.sync("hr_20260302.csv", people(100))
    w.clock.advance(3600)
    b = w.sync("hr_20260303.csv", people(5, dept="Ops"))  # changes records A still owes
    assert b.state == "uploading"
    assert b.waiting_reason is WaitingReason.QUEUED
    assert w.engine.get_run(a.run_id)["state"] == "uploading"
    w.service.quota = None
    w.clock.advance(86400)
    out = asyncio.run(w.engine.resume_waiting())
    assert [s.run_id for s in out] == [a.run_id, b.run_id]
    assert all(s.state == "uploaded" for s in out)
    assert len(w.service.users) == 100
    # the newer data was applied last
    assert all(w.service.users[f"E{i:04}"]["department"] == "Ops" for i in range(1, 6))


def test_full_mode_held_newer_file_does_not_end_the_waiting_run(tmp_path: Path) -> None:
    w = World(tmp_path, max_changes_percent=1000)
    w.sync("hr_20260301.csv", people(100))
    w.clock.advance(86400)
    w.service.quota = len(w.service.calls) + 1
    a = w.sync("hr_20260302.csv", people(100, dept="Ops"))  # 2 batches of movers, 1 sent
    assert a.state == "uploading"
    w.clock.advance(3600)
    b = w.sync("hr_20260303.csv", people(10, dept="Ops"))  # 90 leavers: held
    assert b.state == "held"
    assert w.engine.get_run(a.run_id)["state"] == "uploading"
    w.engine.discard(b.run_id)
    w.service.quota = None
    [done] = asyncio.run(w.engine.resume_waiting())
    assert done.run_id == a.run_id
    assert done.state == "uploaded"
    assert all(u["department"] == "Ops" for u in w.service.users.values())


# -- 3: a run interrupted while planning can be planned again ------------------------------


def test_crash_after_planning_is_continued_by_resume_waiting(tmp_path: Path) -> None:
    w = World(tmp_path)
    real = w.engine._decide

    async def crash(*a: Any, **k: Any) -> Any:
        raise Crash("killed after planning")

    w.engine._decide = crash  # type: ignore[method-assign]
    with pytest.raises(Crash):
        w.sync("hr_20260302.csv", people(60))
    [run] = w.engine.list_runs()
    assert run.state == "planned"
    w.engine._decide = real  # type: ignore[method-assign]
    [out] = asyncio.run(w.engine.resume_waiting())
    assert out.state == "uploaded"
    assert len(w.service.users) == 60


def test_crash_while_reading_leaves_a_run_that_redelivery_plans_again(tmp_path: Path) -> None:
    w = World(tmp_path)
    real = w.engine.records

    def crash(*a: Any) -> Any:
        raise Crash("killed while reading")

    w.engine.records = crash
    with pytest.raises(Crash):
        w.sync("hr_20260302.csv", people(20))
    assert w.engine.list_runs()[0].state == "received"
    w.engine.records = real
    again = w.sync("hr_20260302.csv", people(20))
    assert not again.duplicate
    assert again.state == "uploaded"
    assert len(w.service.users) == 20


def test_a_received_run_can_be_discarded(tmp_path: Path) -> None:
    w = World(tmp_path)

    def crash(*a: Any) -> Any:
        raise Crash("killed while reading")

    w.engine.records = crash
    with pytest.raises(Crash):
        w.sync("hr_20260302.csv", people(5))
    run = w.engine.list_runs()[0]
    assert w.engine.discard(run.run_id).state == "discarded"


# -- 4: a systemic 400 fails the run instead of bisecting every batch ----------------------


def test_systemic_400_fails_the_run_after_a_few_calls(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.engine = w.new_engine(window=1)
    msg = "Attribute 'urn:custom:costCenter' is not in the job's schema"
    w.service.refuse = lambda data: msg
    run = w.sync("hr_20260302.csv", people(500))  # 10 batches
    assert run.state == "failed"
    assert run.failed_reason is not None
    assert msg in run.failed_reason
    assert "fix the mapping" in run.failed_reason
    assert len(w.service.calls) <= 3
    assert len(w.store.load_records("employees")) == 0


def test_one_bad_record_is_isolated_and_the_rest_delivered(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.service.refuse = lambda data: "bad title" if data["externalId"] == "E0030" else None
    run = w.sync("hr_20260302.csv", people(100))
    assert run.state == "uploaded"
    assert set(w.service.users) == {f"E{i:04}" for i in range(1, 101)} - {"E0030"}
    assert len(w.service.calls) <= 2 + 2 + 10  # two batches, both halves, bisection
    entry = w.store.load_records("employees").get("E0030")
    assert entry is not None
    assert entry.outcome == "failed"


def test_isolation_allowance_is_per_run_not_per_batch(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.engine = w.new_engine(window=1, isolation_calls=10)
    bad = {f"E{i:04}" for i in range(5, 500, 50)}  # one bad record in each of 10 batches
    w.service.refuse = lambda data: "bad" if data["externalId"] in bad else None
    run = w.sync("hr_20260302.csv", people(500))
    assert len(w.service.calls) <= 10 + 10 + 1
    assert w.engine.get_run(run.run_id)["isolationCalls"] <= 10 + 1


# -- 5: errors retrying cannot fix block the run -------------------------------------------


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
    assert w.engine.get_run(held.run_id)["state"] == "held"


# -- 6: a lost lock stops the run ----------------------------------------------------------


class _LosingStore(LocalStateStore):
    """The lock is reported lost once ``lose_after`` journal-visible sends happened."""

    lose: bool = False

    def lock(self, source: str, *, owner: str | None = None) -> Any:
        inner = super().lock(source, owner=owner)
        store = self

        class Wrapped:
            def __enter__(self) -> Any:
                self.held = inner.__enter__()
                return self

            def __exit__(self, *exc: Any) -> Any:
                return inner.__exit__(*exc)

            @property
            def lost(self) -> bool:
                return store.lose

            source = property(lambda self: self.held.source)
            owner = property(lambda self: self.held.owner)

            def renew(self) -> None:
                self.held.renew()

        return Wrapped()


def test_lost_lock_stops_sending_and_writing(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.store = _LosingStore(tmp_path / "state", clock=w.clock, heartbeat=False)
    w.engine = w.new_engine(window=1)
    real_send = w.service.target

    def target(src: Any) -> Any:
        t = real_send(src)
        inner = t.send

        async def send(payload: Any) -> Any:
            out = await inner(payload)
            if len(w.service.calls) == 2:
                w.store.lose = True  # type: ignore[attr-defined]
            return out

        t.send = send  # type: ignore[method-assign]
        return t

    w.engine.targets = target
    run = w.sync("hr_20260302.csv", people(250))  # 5 batches
    assert run.waiting_reason is WaitingReason.LOCK_LOST
    assert len(w.service.calls) == 2
    doc = w.engine.get_run(run.run_id)
    assert len(doc["batches"]) == 1  # the second ack was not written: the lock was gone


# -- 7: the journal holds no per-record data -----------------------------------------------


def test_journal_holds_counters_and_batch_metadata_only(tmp_path: Path) -> None:
    w = World(tmp_path)
    rows = people(300)
    rows[7] = (rows[7][0], "", *rows[7][2:])  # one rejected row
    run = w.sync("hr_20260302.csv", rows)
    doc = w.engine.get_run(run.run_id)
    text = json.dumps(doc)
    assert "lines" not in doc
    assert "E0001" not in text
    assert "E0300" not in text
    assert doc["rejectedCount"] == 1
    report = json.loads(w.store.read_artifact(f"employees/{run.run_id}/report.json"))
    assert report["rejected"][0]["line"] == 9


# -- 8: fingerprints advance only for accepted records -------------------------------------


def test_refused_mover_keeps_its_accepted_fingerprint_and_is_not_resent(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.sync("hr_20260302.csv", people(20))
    before = w.store.load_records("employees").get("E0003")
    assert before is not None
    w.clock.advance(86400)
    w.service.refuse = lambda data: "bad dept" if data["displayName"] == "Bad 3" else None
    day2 = people(20)
    day2[2] = (day2[2][0], day2[2][1], "Bad 3", *day2[2][3:])
    w.sync("hr_20260303.csv", day2)
    after = w.store.load_records("employees").get("E0003")
    assert after is not None
    assert after.fingerprint == before.fingerprint
    assert after.outcome == "failed"
    # the same refused data the next day is not sent again
    w.clock.advance(86400)
    calls = len(w.service.calls)
    again = w.sync("hr_20260304.csv", [*day2, *people(1, start=50)])
    assert again.planned["movers"] == 0
    assert w.service.calls[calls:] == [["E0050"]]
    # changed data is sent
    w.service.refuse = None
    w.clock.advance(86400)
    day5 = [*people(20), *people(1, start=50)]
    day5[2] = (day5[2][0], day5[2][1], "Fixed 3", *day5[2][3:])
    fixed = w.sync("hr_20260305.csv", day5)
    assert fixed.planned["movers"] == 1
    assert w.service.users["E0003"]["displayName"] == "Fixed 3"


def test_joiner_whose_create_failed_is_not_a_leaver_later(tmp_path: Path) -> None:
    w = World(tmp_path, max_leavers=100)
    w.sync("hr_20260301.csv", people(10))
    rows = people(10)
    rows.append(("E0099", "user3@contoso.com", "Clash", "Sales", "", "Active"))  # dup UPN
    w.clock.advance(86400)
    w.sync("hr_20260302.csv", rows)
    w.reconcile()
    entry = w.store.load_records("employees").get("E0099")
    assert entry is not None
    assert entry.outcome == "failed"
    assert not entry.active
    w.clock.advance(86400)
    nxt = w.sync("hr_20260303.csv", people(10))
    assert nxt.planned["leavers"] == 0


# -- 9: a window of batches in flight ------------------------------------------------------


def test_window_sends_batches_concurrently_and_quota_stops_cleanly(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.engine = w.new_engine(window=4)
    w.service.yield_in_send = True
    w.service.quota = 6
    run = w.sync("hr_20260302.csv", people(500))  # 10 batches
    assert 1 < w.service.max_in_flight <= 4
    assert run.state == "uploading"
    assert run.waiting_reason is WaitingReason.QUOTA
    assert run.batches_done == 6
    assert len(w.store.load_records("employees")) == 300
    w.service.quota = None
    w.clock.advance(86400)
    [done] = asyncio.run(w.engine.resume_waiting())
    assert done.state == "uploaded"
    sent = [e for c in w.service.calls for e in c]
    assert sorted(sent) == sorted({*sent})  # nothing sent twice
    assert len(set(sent)) == 500


# -- 11: reconciliation never takes the previous send's entry ------------------------------


def test_sent_record_after_bound_excludes_the_previous_entry() -> None:
    sent_at = T0 + timedelta(minutes=9)
    old_entry = {
        "id": "log-1",
        "activityDateTime": (T0 + timedelta(minutes=6)).isoformat(),
        "sourceIdentity": {"id": "E1"},
        "provisioningAction": "create",
        "provisioningStatusInfo": {"status": "success"},
    }
    rec = SentRecord("E1", sent_at, action="mover", after=T0 + timedelta(minutes=6))
    out = reconcile([rec], [old_entry], now=sent_at + timedelta(minutes=1))
    assert out.outcomes["E1"].outcome.value == "pending"
    plain = SentRecord("E1", sent_at, action="mover")
    out = reconcile([plain], [old_entry], now=sent_at + timedelta(minutes=1))
    assert out.outcomes["E1"].outcome.value == "created"  # what the bound prevents


def test_engine_does_not_match_the_previous_runs_log_entry(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.sync("hr_20260302.csv", people(3))
    w.reconcile(timedelta(minutes=7))  # entries at +6 min: run 1 done
    w.clock.advance(120)  # 9 min after the first send
    w.service.silent.add("E0002")
    day2 = people(3)
    day2[1] = (day2[1][0], day2[1][1], "Renamed", *day2[1][3:])
    w.config = config(max_changes_percent=1000)
    w.engine = w.new_engine()
    run2 = w.sync("hr_20260302b.csv", day2)
    runs = {r.run_id: r for r in w.reconcile(timedelta(minutes=1))}
    assert runs[run2.run_id].outcomes == {"pending": 1}


# -- 12–16: APIs for the Functions app -----------------------------------------------------


def test_resume_continues_one_run(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.service.quota = 1
    run = w.sync("hr_20260302.csv", people(120))
    assert run.waiting_reason is WaitingReason.QUOTA
    w.service.quota = None
    out = asyncio.run(w.engine.resume(run.run_id))
    assert out.state == "uploaded"
    assert out.waiting_reason is None
    with pytest.raises(RunError):
        asyncio.run(w.engine.resume("employees-nope"))


def test_busy_source_is_skipped_and_reported(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.service.quota = 1
    w.sync("hr_20260302.csv", people(120))
    w.service.quota = None
    other = LocalStateStore(tmp_path / "state", clock=w.clock, heartbeat=False)
    with other.lock("employees", owner="someone-else"):
        out = asyncio.run(w.engine.resume_waiting())
        assert isinstance(out, PassResult)
        assert list(out) == []
        assert "employees" in out.skipped
        rec = asyncio.run(w.engine.reconcile_open_runs())
        assert isinstance(rec, PassResult)
    with pytest.raises(ConcurrentRunError), other.lock("employees"):
        asyncio.run(w.engine.resume(w.engine.list_runs()[0].run_id))
    [done] = asyncio.run(w.engine.resume_waiting())
    assert done.state == "uploaded"


def test_file_refused_at_the_rejected_row_cap_journals_its_rows(tmp_path: Path) -> None:
    w = World(tmp_path)
    rows = [
        ExtractRejectedRow(i, f"E{i:04}", "missing", "userName is empty") for i in range(2, 1502)
    ]

    def refuse(source: Any, path: Path) -> Any:
        raise RejectedShareExceededError(
            "1500 of 2000 rows rejected, over the 10 % cap",
            path=path.name,
            rejected=rows,
            stats=ExtractStats(500, {"missing": 1500}),
        )

    w.engine.records = refuse
    run = w.sync("hr_20260302.csv", people(3))
    assert run.state == "failed"
    doc = w.engine.get_run(run.run_id)
    assert len(doc["rejected"]) == 1000
    assert doc["rejected"][0] == {
        "line": 2,
        "externalId": "E0002",
        "reason": "missing: userName is empty",
    }
    assert doc["rejectedCount"] == 1500
    assert doc["rejectedOmitted"] == 500
    assert doc["rowsInFile"] == 2000


def test_graph_targets_retry_policy_bounds_the_waiting(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    store = LocalStateStore(tmp_path / "state", clock=clock, heartbeat=False)
    cfg = config()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": "20"}, json={"error": {}})

    short = RetryPolicy(max_attempts=2, max_retry_after=30)
    targets = graph_targets(
        cfg,
        store,
        StaticTokenProvider("t"),
        clock,
        transport=httpx.MockTransport(handler),
        retry=short,
    )
    engine = Engine(cfg, store, targets, clock, window=1)
    from tests.sync.fakes import write_extract

    path = write_extract(tmp_path / "hr_20260302.csv", people(60))
    from tests.sync.fakes import csv_reader

    engine.records = csv_reader
    run = asyncio.run(engine.ingest("employees", path.name, path))
    assert run.state == "uploading"
    assert run.waiting_reason is WaitingReason.THROTTLED
    assert sum(clock.slept) <= 20 + 1  # one Retry-After wait, then the run waits


# -- 18: errors name the dropped file ------------------------------------------------------


def test_reader_errors_name_the_dropped_file_not_a_spool_file(tmp_path: Path) -> None:
    from tests.sync.emuworld import sources_config

    w = World(tmp_path)
    data = b"\xff\xfe\x00garbage without a header\n"
    w.engine = Engine(sources_config(), w.store, w.service.target, w.clock)
    run = asyncio.run(w.engine.ingest("employees", "incoming/hr_20260302.csv", io.BytesIO(data)))
    assert run.state == "failed"
    assert run.failed_reason is not None
    assert "hr_20260302.csv" in run.failed_reason
    assert "connector-extract" not in run.failed_reason


# -- 5 and 10: the CLI's exit codes and --open ---------------------------------------------


def test_cli_exits_non_zero_for_waiting_failed_or_blocked_runs() -> None:
    import typer

    from connector.cli.exits import EXIT_FAILED, EXIT_WAITING, exit_for
    from connector.pipeline import RunSummary

    def summary(state: str, waiting: str | None = None) -> RunSummary:
        return RunSummary("r", "employees", "f.csv", state, waiting=waiting)

    exit_for([summary("uploaded"), summary("held")])
    for state, waiting, code in (
        ("uploading", "QuotaExhaustedError: spent", EXIT_WAITING),
        ("failed", None, EXIT_FAILED),
        ("blocked", None, EXIT_FAILED),
    ):
        with pytest.raises(typer.Exit) as info:
            exit_for([summary("uploaded"), summary(state, waiting)])
        assert info.value.exit_code == code


def test_open_without_a_browser_says_where_the_report_is(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import webbrowser

    from connector.cli.common import console as _console
    from connector.cli.render import open_in_browser as _open_in_browser

    opened: list[str] = []

    def no_browser(url: str) -> bool:
        opened.append(url)
        return False

    monkeypatch.setattr(webbrowser, "open", no_browser)
    blob = "https://acct.blob.core.windows.net/reports/employees/r/report.html"
    _open_in_browser(blob, _console())
    assert opened == [blob]  # a blob URL is opened as is, not wrapped in a file path
    assert f"no browser available; open {blob}" in capsys.readouterr().out
    _open_in_browser("/tmp/x/report.html", _console())
    assert opened[-1] == "file:///tmp/x/report.html"
