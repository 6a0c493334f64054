"""The runs index page and a report's links to its neighbours (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from connector.report_index import IndexRow, RunNav, build_index_html, nav_html

T0 = datetime(2026, 1, 5, 2, tzinfo=UTC)


def row(source: str, run_id: str, day: int, state: str = "done") -> IndexRow:
    return IndexRow(
        source=source,
        run_id=run_id,
        file_name=f"{source}_2026010{5 + day}.csv",
        state=state,
        received_at=T0 + timedelta(days=day),
        extract_at=T0.replace(hour=0) + timedelta(days=day),
        planned={"joiners": 3, "leavers": 1},
        outcomes={"created": 3, "disabled": 1},
    )


def test_index_groups_runs_per_source_newest_first_with_links_and_counts() -> None:
    page = build_index_html(
        [row("employees", "e-1", 0), row("contractors", "c-1", 0), row("employees", "e-2", 1)]
    )
    assert page.index("contractors (1 runs)") < page.index("employees (2 runs)")
    assert page.index('href="employees/e-2/report.html"') < page.index(
        'href="employees/e-1/report.html"'
    )
    assert "<td>2026-01-06 00:00</td>" in page  # extract date of e-2
    assert '<td class="n">3</td>' in page


def test_index_is_the_same_bytes_for_the_same_runs_in_any_order() -> None:
    rows = [row("employees", "e-1", 0), row("employees", "e-2", 1, "held")]
    assert build_index_html(rows) == build_index_html(list(reversed(rows)))


def test_index_escapes_file_names_and_lists_no_runs_plainly() -> None:
    bad = IndexRow("employees", "e-1", "<b>x</b>.csv", "done")
    page = build_index_html([bad])
    assert "&lt;b&gt;x&lt;/b&gt;.csv" in page
    assert "<b>x</b>" not in page
    assert "No runs yet." in build_index_html([])


def test_nav_links_previous_next_and_the_index_relative_to_the_report() -> None:
    both = nav_html(RunNav("e-1", "e-3"))
    assert 'href="../e-1/report.html"' in both
    assert 'href="../e-3/report.html"' in both
    assert 'href="../../index.html"' in both
    alone = nav_html(RunNav())
    assert "first run" in alone
    assert "latest run" in alone
