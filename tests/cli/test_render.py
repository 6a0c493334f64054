"""What the run commands print: queue notes, outcome words, one-line reasons, report links."""

from __future__ import annotations

from rich.console import Console

from connector.cli import render
from connector.sync.summary import RunSummary
from connector.sync.waiting import WaitingReason


def captured(*renderables: object) -> str:
    console = Console(width=400, highlight=False)
    with console.capture() as cap:
        for item in renderables:
            console.print(item)
    return cap.get()


def test_a_queued_run_is_marked_and_says_what_it_waits_for() -> None:
    queued = RunSummary(
        "employees-b",
        "employees",
        "b.csv",
        "uploading",
        waiting="waits for run employees-a",
        waiting_reason=WaitingReason.QUEUED,
    )
    waiting = RunSummary(
        "employees-c", "employees", "c.csv", "uploading", waiting="QuotaExhaustedError: spent"
    )
    assert render.is_queued(queued)
    assert not render.is_queued(waiting)
    table = captured(render.runs_table([queued, waiting]))
    assert "uploading (queued)" in table
    assert "uploading (waiting)" in table
    console = Console(width=400, highlight=False)
    with console.capture() as cap:
        render.print_queue_notes(console, [queued, waiting])
    assert cap.get() == "employees-b: waits for run employees-a\n"


def test_outcomes_read_in_the_reports_labels_when_there_are_some() -> None:
    plain = RunSummary("r", "employees", "f.csv", "done", outcomes={"created": 2, "failed": 1})
    assert render.outcome_text(plain) == "2 created, 1 failed"
    labelled = RunSummary(
        "r",
        "employees",
        "f.csv",
        "done",
        outcomes={"created": 2},
        outcome_labels={"created": 1, "created (manager unresolved)": 1},
    )
    assert render.outcome_text(labelled) == "1 created, 1 created (manager unresolved)"


def test_a_stored_reason_is_shown_on_one_bounded_line() -> None:
    assert render.first_line("\n  first  \nsecond") == "first"
    assert render.first_line("x" * 400, limit=10) == "x" * 9 + "…"
    assert render.first_line("") == ""


def test_the_runs_table_can_list_each_report() -> None:
    s = RunSummary(
        "employees-abc", "employees", "f.csv", "done", reports={"report.html": "/r/report.html"}
    )
    assert "/r/report.html" in captured(render.runs_table([s], with_reports=True))
    assert "/r/report.html" not in captured(render.runs_table([s]))


def test_counts_use_the_singular_for_one() -> None:
    assert render.count_text(1, "bulk requests") == "1 bulk requests"
    assert render.count_text(1, "retries") == "1 retry"
    assert render.count_text(2, "retries") == "2 retries"
    assert render.count_text(1, "unchanged") == "1 unchanged"


def _printed_at(width: int, *renderables: object) -> str:
    console = Console(width=width, highlight=False)
    with console.capture() as cap:
        for item in renderables:
            console.print(item)
    return cap.get()


def _busy_run() -> RunSummary:
    return RunSummary(
        "employees-2aa3bb878ffeae63e1ff",
        "employees",
        "hr-extract-2026-12-05.csv",
        "done",
        planned={"joiners": 1200, "movers": 35, "leavers": 177, "unchanged": 98000},
        outcomes={"created": 1190, "updated": 35, "disabled": 170, "skipped": 3, "failed": 7},
        reports={"report.html": "/state/reports/employees/r/report.html"},
    )


def test_the_runs_table_keeps_every_outcome_column_at_80_columns() -> None:
    for with_reports in (False, True):
        text = _printed_at(80, render.runs_table([_busy_run()], with_reports=with_reports))
        assert max(len(line) for line in text.splitlines()) <= 80
        for word in ("join 1200", "move 35", "leave 177", "same 98000", "created 1190"):
            assert word in text
        for word in ("updated 35", "disabled 170", "skipped 3", "failed 7", "unconf. 0"):
            assert word in text
        assert "warn. 0" in text
        assert "employees-2aa3bb878ffeae63e1ff" in text  # the run id is never cut
        assert ("report.html" in text) is with_reports


def test_the_runs_table_is_one_row_per_run_when_the_console_is_wide() -> None:
    text = _printed_at(200, render.runs_table([_busy_run()]))
    row = next(line for line in text.splitlines() if "employees-2aa3bb878ffeae63e1ff" in line)
    for count in ("1200", "35", "177", "98000", "1190", "170", "3", "7"):
        assert count in row.split()
