"""Out-of-order extracts: an older file arriving late is superseded, not applied, when
its name holds a date or its file time is known; otherwise the run says loudly that only
its arrival orders it."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

import orjson
from rich.console import Console

from connector.cli.render import print_summary
from connector.extract_time import ARRIVAL_WARNING
from connector.sync.journal_doc import journal_from_doc, journal_to_doc
from tests.sync.fakes import people
from tests.sync.world import T0, World


def _world(tmp_path: Path) -> World:
    """A world whose source configures no ``extract_timestamp`` (the default rules)."""
    w = World(tmp_path)
    src = w.config.source("employees").model_copy(update={"extract_timestamp": None})
    w.config = w.config.model_copy(update={"sources": [src]})
    w.engine = w.new_engine()
    return w


def _day1() -> list[tuple[str, ...]]:
    return people(100)


def _day2() -> list[tuple[str, ...]]:
    # Everyone still there; one person moved to Finance (so the bytes differ from day 1).
    return [(*p[:3], "Finance", *p[4:]) if p[0] == "E0020" else p for p in people(100)]


def _day3() -> list[tuple[str, ...]]:
    # Five leavers (E0096..E0100 gone), ten movers to Ops.
    rows = people(95)
    return [(*p[:3], "Ops", *p[4:]) if int(p[0][1:]) <= 10 else p for p in rows]


def _assert_day3_stands(w: World) -> None:
    users = w.service.users
    leavers = [f"E{i:04}" for i in range(96, 101)]
    assert [users[e]["enabled"] for e in leavers] == [False] * 5  # no leaver re-enabled
    assert {users[f"E{i:04}"]["department"] for i in range(1, 11)} == {"Ops"}  # not reverted
    assert users["E0020"]["department"] == "Sales"  # day 2's change never applied


def test_an_older_dated_file_arriving_last_is_superseded_not_applied(tmp_path: Path) -> None:
    w = _world(tmp_path)
    assert w.sync("hr_2026-03-01.csv", _day1()).state == "uploaded"
    w.clock.advance(3600)
    assert w.sync("hr_2026-03-03.csv", _day3()).state == "uploaded"
    w.clock.advance(3600)
    late = w.sync("hr_2026-03-02.csv", _day2())
    assert late.state == "superseded"
    assert late.batches_total == 0
    assert late.ordering_warning is None
    _assert_day3_stands(w)


def test_without_dates_in_names_the_file_times_order_the_extracts(tmp_path: Path) -> None:
    w = _world(tmp_path)
    t1, t2, t3 = (T0 - timedelta(days=d) for d in (3, 2, 1))
    assert w.sync("hr_a.csv", _day1(), file_time=t1).state == "uploaded"
    w.clock.advance(3600)
    assert w.sync("hr_c.csv", _day3(), file_time=t3).state == "uploaded"
    w.clock.advance(3600)
    late = w.sync("hr_b.csv", _day2(), file_time=t2)
    assert late.state == "superseded"
    _assert_day3_stands(w)
    doc = journal_to_doc(w.engine.get_run(late.run_id))
    assert doc["extractBasis"] == "file-time"
    assert doc["extractAt"].startswith(t2.strftime("%Y-%m-%dT%H:%M:%S"))


def test_a_run_ordered_only_by_arrival_warns_in_journal_report_and_summary(
    tmp_path: Path,
) -> None:
    w = _world(tmp_path)
    summary = w.sync("hr_latest.csv", _day1())
    assert summary.state == "uploaded"
    assert summary.ordering_warning == ARRIVAL_WARNING
    journal = w.engine.get_run(summary.run_id)
    assert journal_to_doc(journal)["extractBasis"] == "arrival"
    assert any("ordered by arrival" in e.detail for e in journal.timeline)
    report_json = orjson.loads(Path(summary.reports["report.json"]).read_bytes())
    assert report_json["orderingWarning"] == ARRIVAL_WARNING
    html = Path(summary.reports["report.html"]).read_text(encoding="utf-8")
    assert "Ordered by arrival." in html
    out = io.StringIO()
    print_summary(summary, Console(file=out, width=400, color_system=None))
    assert "warning: extract time unknown" in out.getvalue()


def test_a_dry_run_ordered_only_by_arrival_warns_too(tmp_path: Path) -> None:
    w = _world(tmp_path)
    dry = w.sync("hr_latest.csv", _day1(), dry_run=True)
    assert dry.ordering_warning == ARRIVAL_WARNING
    assert w.sync("hr_2026-03-01.csv", _day1(), dry_run=True).ordering_warning is None


def test_a_journal_stored_before_the_basis_was_kept_reads_without_a_warning(
    tmp_path: Path,
) -> None:
    w = _world(tmp_path)
    summary = w.sync("hr_latest.csv", _day1())
    doc = journal_to_doc(w.engine.get_run(summary.run_id))
    doc.pop("extractBasis")
    old = journal_from_doc(doc)
    assert old.extract_basis is None
    assert "extractBasis" not in journal_to_doc(old)


def test_the_cli_orders_an_undated_file_by_its_modification_time(tmp_path: Path) -> None:
    import os

    from connector.cli.sync import _file_time

    path = tmp_path / "hr.csv"
    path.write_text("id\n", encoding="utf-8")
    os.utime(path, (T0.timestamp(), T0.timestamp()))
    assert _file_time(path) == T0
    assert _file_time(tmp_path / "missing.csv") is None


def test_cli_sync_supersedes_an_undated_file_older_by_its_modification_time(
    tmp_path: Path,
) -> None:
    import os

    from benchmarks.emuworld import JOB, SP
    from connector.emulator.config import EmulatorConfig, JobConfig
    from connector.emulator.server import run_emulator
    from connector.sample import churn_extract, generate_extract
    from tests.cli.helpers import invoke, write_config

    config = write_config(tmp_path / "sources.yaml")
    f1, f2, f3 = (tmp_path / n for n in ("hr_a.csv", "hr_b.csv", "hr_c.csv"))
    generate_extract(f1, 40, seed=1)
    churn_extract(f1, f2, churn=0.05, seed=2)
    churn_extract(f1, f3, churn=0.05, seed=3)
    for k, path in enumerate((f1, f2, f3)):
        at = (T0 + timedelta(hours=k)).timestamp()
        os.utime(path, (at, at))
    common = ["--config", str(config), "--state", str(tmp_path / "state")]
    with run_emulator(EmulatorConfig(jobs=[JobConfig(service_principal_id=SP, job_id=JOB)])) as emu:
        net = ["--endpoint", emu.endpoint_url, "--token", emu.token, "--allow-loopback"]
        for path in (f1, f3):
            out = invoke("sync", str(path), "--source", "employees", *common, *net)
            assert "uploaded" in out
            assert "warning: extract time unknown" not in out
        late = invoke("sync", str(f2), "--source", "employees", *common, *net)
    assert "superseded" in late, late
    assert "older than the last one applied" in " ".join(late.split()), late


def test_cli_dry_run_of_a_dated_file_has_no_ordering_warning(tmp_path: Path) -> None:
    from connector.sample import generate_extract
    from tests.cli.helpers import invoke, write_config

    config = write_config(tmp_path / "sources.yaml")
    extract = tmp_path / "hr_2026-03-01.csv"
    generate_extract(extract, 5, seed=1)
    common = ["--config", str(config), "--state", str(tmp_path / "state")]
    out = invoke("sync", str(extract), "--source", "employees", *common, "--dry-run")
    assert "dry run" in out
    assert "warning: extract time unknown" not in out
