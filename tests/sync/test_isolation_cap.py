"""400 isolation spends calls only on 400s that may be about records, within a per-run cap,
and says how many it spent."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import orjson
from rich.console import Console

from connector.cli import render
from connector.clock import FakeClock
from connector.config import parse_sources
from connector.emulator import EmulatorConfig, run_emulator
from connector.errors import BadRequestError
from connector.graph.responses import error_for
from connector.sync.summary import RunSummary
from connector.sync.upload import request_level
from tests.sync.fakes import people
from tests.sync.world import World


def _with_cap(w: World, cap: int) -> None:
    w.config = w.config.model_copy(update={"isolation_calls": cap})
    w.engine = w.new_engine(window=1)


def test_a_400_about_the_request_as_a_whole_is_not_bisected(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.engine = w.new_engine(window=1)
    w.service.refuse = lambda data: "Invalid Data Format: Content-Type must be scim+json"
    run = w.sync("hr_20260302.csv", people(120))
    assert run.state == "failed"
    assert len(w.service.calls) == 1  # the refused batch itself, no extra call
    assert run.isolation_calls == 0
    assert run.failed_reason is not None
    assert "Invalid Data Format" in run.failed_reason


def test_one_bad_record_is_isolated_within_the_cap_and_the_calls_are_reported(
    tmp_path: Path,
) -> None:
    w = World(tmp_path)
    w.engine = w.new_engine(window=1)
    w.service.refuse = lambda data: "bad title" if data["externalId"] == "E0030" else None
    run = w.sync("hr_20260302.csv", people(100))
    assert run.state == "uploaded"
    assert 0 < run.isolation_calls <= w.config.isolation_calls == 20
    assert len(w.service.calls) == 2 + run.isolation_calls
    report = orjson.loads(w.store.read_artifact(f"employees/{run.run_id}/report.json"))
    assert report["isolation"] == {"calls": run.isolation_calls, "cap": 20}
    entry = w.store.load_records("employees").get("E0030")
    assert entry is not None
    assert entry.outcome == "failed"


def test_past_the_cap_the_rest_of_a_refused_batch_is_failed_with_the_reason_not_lost(
    tmp_path: Path,
) -> None:
    w = World(tmp_path)
    _with_cap(w, 2)
    bad = {"E0010", "E0060"}  # one in each of the first two batches
    w.service.refuse = lambda data: "bad title" if data["externalId"] in bad else None
    run = w.sync("hr_20260302.csv", people(120))
    assert run.state == "uploaded"  # two refused groups are not "refused whole twice"
    assert run.isolation_calls == 2
    assert len(w.service.calls) == 3 + 2  # three batches, the two halves of the first
    index = w.store.load_records("employees")
    failed = {e for e, entry in index.entries.items() if entry.outcome == "failed"}
    assert failed == {f"E{i:04}" for i in range(1, 26)} | {f"E{i:04}" for i in range(51, 101)}
    assert set(w.service.users) == {f"E{i:04}" for i in range(26, 51)} | {
        f"E{i:04}" for i in range(101, 121)
    }
    [done] = w.reconcile()
    failures = w.store.read_artifact(f"employees/{run.run_id}/failures.csv").decode()
    assert failures.count("not narrowed down") == 75
    assert "connector runs retry" in failures
    # nothing is lost: once the data is fixed an operator retry sends them again
    w.service.refuse = None
    retry = asyncio.run(w.engine.retry_failed(done.run_id))
    assert retry.state == "uploaded"
    assert len(w.service.users) == 120


_SOURCES = """
sources:
  - name: employees
    match: employees/
    mapping: mapping.yaml
    service_principal_id: 00000000-0000-0000-0000-00000000aaaa
    job_id: API2AAD.0123456789abcdef0123456789abcdef.11111111-2222-3333-4444-555555555555
"""


def test_the_cap_comes_from_the_sources_config() -> None:
    assert parse_sources(_SOURCES).isolation_calls == 20
    assert parse_sources("isolation_calls: 4\n" + _SOURCES).isolation_calls == 4


def test_the_summary_says_how_many_calls_isolation_spent() -> None:
    console = Console(width=400, highlight=False)
    summary = RunSummary("employees-a", "employees", "a.csv", "uploaded", isolation_calls=7)
    with console.capture() as cap:
        render.print_summary(summary, console)
    assert "400s:    7 extra calls spent finding the refused records" in cap.get()
    quiet = RunSummary("employees-b", "employees", "b.csv", "uploaded")
    with console.capture() as cap:
        render.print_summary(quiet, console)
    assert "400s" not in cap.get()


def test_which_400s_are_about_the_request_as_a_whole() -> None:
    assert request_level(BadRequestError("Invalid Data Format", status=400, code="BadRequest"))
    assert request_level(BadRequestError("The body is not valid JSON: x", status=400))
    assert not request_level(BadRequestError("bad title", status=400, code="BadRequest"))
    assert not request_level(BadRequestError("Invalid BulkRequest: Operations[3]", status=400))


def test_the_emulators_content_type_400_reads_as_request_level() -> None:
    with run_emulator(EmulatorConfig(), clock=FakeClock()) as emu:
        answer = httpx.post(
            emu.endpoint_url,
            content=b"{}",
            headers={"Authorization": f"Bearer {emu.token}", "Content-Type": "application/json"},
        )
    assert answer.status_code == 400
    error = error_for(answer, kind="upload")
    assert isinstance(error, BadRequestError)
    assert request_level(error)


class _WrongContentType(httpx.AsyncBaseTransport):
    """Sends bulkUpload bodies as application/json: every batch gets the documented 400."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path.endswith("/bulkUpload"):
            request.headers["Content-Type"] = "application/json"
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def test_the_emulators_request_level_400_fails_the_run_without_bisecting(
    tmp_path: Path,
) -> None:
    from benchmarks.emuworld import T0, sources_config
    from connector.graph.auth import StaticTokenProvider
    from connector.sample import generate_extract
    from connector.state.local import LocalStateStore
    from connector.sync.targets import graph_targets
    from connector.sync.wiring import build_engine

    day1 = tmp_path / "hr_20260105.csv"
    generate_extract(day1, 120, seed=2)
    clock = FakeClock(T0)
    with run_emulator(EmulatorConfig(), clock=clock) as emu:
        config = sources_config()
        store = LocalStateStore(tmp_path / "state", clock=clock, heartbeat=False)
        targets = graph_targets(
            config,
            store,
            StaticTokenProvider(emu.token),
            clock,
            allow_loopback=True,
            transport=_WrongContentType(),
            endpoint_for=lambda src: emu.endpoint_url,
        )
        engine = build_engine(config, store, targets, clock, window=1)
        run = asyncio.run(engine.ingest("employees", day1.name, day1))
        calls = emu.calls()
    assert run.state == "failed"
    assert [c.status for c in calls] == [400]
    assert run.isolation_calls == 0
    assert run.failed_reason is not None
    assert "Invalid Data Format" in run.failed_reason


def test_batches_refused_as_groups_once_the_cap_is_spent_do_not_fail_the_run(
    tmp_path: Path,
) -> None:
    w = World(tmp_path)
    _with_cap(w, 0)
    bad = {"E0010", "E0060", "E0110"}  # one in each of three batches in a row
    w.service.refuse = lambda data: "bad title" if data["externalId"] in bad else None
    run = w.sync("hr_20260302.csv", people(150))
    assert run.state == "uploaded"
    assert run.isolation_calls == 0
    assert len(w.service.calls) == 3
    index = w.store.load_records("employees")
    assert all(entry.outcome == "failed" for entry in index.entries.values())
    assert len(index.entries) == 150
