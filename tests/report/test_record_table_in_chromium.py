"""report.html in real headless Chromium (Debian's, driven by Playwright): the per-record
table's search, filters, sort and paging; escaping; the chart's labels; screenshots of
the demo's day-2 report, held report and runs index (kept in ``$REPORT_SHOTS`` if set)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from connector.report import RecordRow, ReportInput
from connector.report_html import build_report_html
from tests.report.demo_state import DemoState
from tests.sync.pngcheck import luminance_stats

MARKUP = "<img src=x onerror=\"document.title='pwned'\">"
CHROMIUM_HELP = (
    "headless Chromium is needed: run `apt-get install chromium` (as root) or `make browser`"
)


def synthetic_report(n: int = 250) -> ReportInput:
    kinds = [("joiner", "created"), ("mover", "updated"), ("leaver", "disabled")]
    records = [
        RecordRow(
            f"E{i:04}",
            kinds[i % 3][0],
            "failed" if i % 25 == 0 else kinds[i % 3][1],
            line=i + 2,
            error_code="AzureActiveDirectoryConflictEncountered" if i % 25 == 0 else None,
            display_name=MARKUP if i == 7 else f"Person {i}",
            changes=[("title", "Engineer", "Lead")] if kinds[i % 3][0] == "mover" else [],
        )
        for i in range(n)
    ]
    return ReportInput(
        run_id="employees-abc",
        source="employees",
        file_name="employees_20260106.csv",
        status="done",
        generated_at=datetime(2026, 1, 6, 8, tzinfo=UTC),
        planned={"joiners": 84, "movers": 83, "leavers": 83},
        outcome_counts={"created": 80, "updated": 80, "disabled": 80, "failed": 10},
        records=records,
    )


def visible_ids(page: Page) -> list[str]:
    ids: list[str] = page.eval_on_selector_all(
        "#rt-body tr", "rows => rows.map(r => r.getAttribute('data-ext'))"
    )
    return ids


def column(page: Page, k: int) -> list[str]:
    cells: list[str] = page.eval_on_selector_all(
        f"#rt-body tr td:nth-child({k + 1})", "cells => cells.map(c => c.textContent)"
    )
    return cells


def test_record_table_searches_filters_sorts_and_pages(browser: Browser, tmp_path: Path) -> None:
    html = tmp_path / "report.html"
    html.write_text(build_report_html(synthetic_report()), "utf-8")
    page = browser.new_page()
    page.goto(html.as_uri())
    assert page.text_content("#rt-count") == "records 1–100 of 250"
    assert len(visible_ids(page)) == 100
    page.click("#rt-next")
    assert visible_ids(page)[0] == "E0100"
    assert page.text_content("#rt-count") == "records 101–200 of 250"

    page.fill("#rt-search", "e0042")
    assert visible_ids(page) == ["E0042"]
    page.fill("#rt-search", "")
    page.select_option("#rt-action", "leaver")
    assert set(column(page, 2)) == {"leaver"}
    assert page.text_content("#rt-count") == "records 1–83 of 83 (filtered from 250)"
    page.select_option("#rt-outcome", "failed")
    assert visible_ids(page) == ["E0050", "E0125", "E0200"]
    page.select_option("#rt-action", "")
    page.select_option("#rt-outcome", "")

    page.click("#rt th[data-k='0']")
    assert visible_ids(page)[0] == "E0000"
    page.click("#rt th[data-k='0']")
    assert visible_ids(page)[0] == "E0249"
    page.focus("#rt th[data-k='0']")
    page.keyboard.press("Enter")
    assert visible_ids(page)[0] == "E0000"
    page.fill("#rt-search", "Engineer")
    assert set(column(page, 2)) == {"mover"}
    assert column(page, 6)[0] == "title: Engineer → Lead"
    page.close()


def test_names_holding_markup_are_shown_as_text(browser: Browser, tmp_path: Path) -> None:
    html = tmp_path / "report.html"
    html.write_text(build_report_html(synthetic_report()), "utf-8")
    page = browser.new_page()
    page.goto(html.as_uri())
    page.fill("#rt-search", "E0007")
    assert column(page, 1) == [MARKUP]
    assert page.locator("#rt img").count() == 0
    assert page.title() != "pwned"
    page.close()


def test_demo_reports_render_with_unclipped_labels_and_are_screenshotted(
    demo: DemoState, browser: Browser, tmp_path: Path
) -> None:
    shots = Path(os.environ.get("REPORT_SHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    day2 = demo.report_dir(1) / "report.html"
    page.goto(day2.as_uri())
    label = page.locator("svg text.lbl", has_text="created (manager unresolved)")
    box, svg = label.bounding_box(), page.locator("svg").bounding_box()
    assert box is not None
    assert svg is not None
    assert box["x"] >= svg["x"], "the chart label starts left of the chart (clipped)"
    assert page.text_content("#rt-count") == "records 1–21 of 21"
    page.screenshot(path=str(shots / "day2-report.png"), full_page=True)
    page.fill("#rt-search", "100305")
    assert column(page, 3) == ["created (manager unresolved)"]

    page.goto((demo.report_dir(2) / "report.html").as_uri())
    assert page.locator("#held tr").count() == 178
    page.screenshot(path=str(shots / "held-report.png"), full_page=True)
    page.click("text=all runs")
    assert page.url.endswith("/reports/index.html")
    assert page.locator("main tr").count() == 4
    overflow = page.evaluate("document.querySelector('section').scrollWidth - innerWidth")
    assert overflow <= 0, "the runs index is wider than a 1280-pixel window"
    page.screenshot(path=str(shots / "index.png"))
    page.close()
    for name in ("day2-report.png", "held-report.png", "index.png"):
        variance, colours = luminance_stats((shots / name).read_bytes())
        assert variance > 500.0, f"{name} looks blank"
        assert colours > 20, f"{name} looks blank"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoState:
    return DemoState.run(tmp_path_factory.mktemp("demo-browser"))


@pytest.fixture(scope="module")
def browser(demo: DemoState) -> Iterator[Browser]:
    """Chromium under Playwright (whose event loop runs while it is open: the demo, which
    runs its own loop, is set up first)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail(CHROMIUM_HELP)
    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield launched
        launched.close()


pytestmark = pytest.mark.browser
