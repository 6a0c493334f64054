"""report.html for a 100,000-record run: its size, the time to build it, and the time
headless Chromium takes to open it until the per-record table shows its first page.

The baseline, measured in the same run, is a 1,000-record report (the same sections,
a hundredth of the records) and an empty page, so the figures separate what the
records cost from what opening any page costs. Chromium is Debian's
(``/usr/bin/chromium``), driven by Playwright; each figure is the median of ``--runs``.

    .venv/bin/python benchmarks/bench_report.py [--records 100000] [--runs 3]
"""

from __future__ import annotations

import argparse
import platform
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from playwright.sync_api import Browser, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from connector.report import RecordRow, ReportInput  # noqa: E402
from connector.report_html import build_report_html  # noqa: E402

KINDS = (("joiner", "created"), ("mover", "updated"), ("leaver", "disabled"))


def report_input(n: int) -> ReportInput:
    """A run of ``n`` records: a third each joiners, movers (two changed attributes)
    and leavers, one in fifty failed with an error code and a reason."""
    records = []
    for i in range(n):
        action, outcome = KINDS[i % 3]
        failed = i % 50 == 0
        records.append(
            RecordRow(
                f"{100000 + i}",
                action,
                "failed" if failed else outcome,
                line=i + 2,
                error_code="AzureActiveDirectoryConflictEncountered" if failed else None,
                reason="Another object already uses this userPrincipalName" if failed else None,
                display_name=f"Given{i % 997} Family{i % 1009}",
                changes=(
                    [
                        ("title", "Engineer", "Lead Engineer"),
                        (
                            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
                            "Sales",
                            "Legal",
                        ),
                    ]
                    if action == "mover"
                    else [("active", "true", "false")]
                    if action == "leaver"
                    else []
                ),
            )
        )
    counts: dict[str, int] = {}
    for r in records:
        counts[r.outcome] = counts.get(r.outcome, 0) + 1
    return ReportInput(
        run_id="employees-bench",
        source="employees",
        file_name="employees_20260106.csv",
        status="done",
        generated_at=datetime(2026, 1, 6, 8, tzinfo=UTC),
        planned={"joiners": n // 3, "movers": n // 3, "leavers": n - 2 * (n // 3)},
        outcome_counts=counts,
        records=records,
    )


def open_seconds(browser: Browser, page_path: Path, *, table: bool) -> tuple[float, float]:
    """Seconds from navigation until the table's first page is drawn (or load, if none),
    and from typing a search term until the filtered page is drawn."""
    page = browser.new_page()
    start = time.perf_counter()
    page.goto(page_path.as_uri(), wait_until="load")
    searched = 0.0
    if table:
        page.wait_for_function(
            "document.getElementById('rt-body').children.length > 0", timeout=120_000
        )
    elapsed = time.perf_counter() - start
    if table:
        t0 = time.perf_counter()
        page.fill("#rt-search", "family7")  # input event: the filter runs synchronously
        page.wait_for_function(
            "document.getElementById('rt-count').textContent.includes('filtered')"
        )
        searched = time.perf_counter() - t0
    page.close()
    return elapsed, searched


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("chromium missing: `make browser` (or apt-get install chromium)")
    print(f"python {platform.python_version()}, {platform.machine()}, chromium {chromium}")
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        blank = Path(tmp) / "blank.html"
        blank.write_text("<!DOCTYPE html><html><body>x</body></html>", "utf-8")
        rows = [("empty page", None, open_seconds(browser, blank, table=False))]
        for n in (1_000, args.records):
            data = report_input(n)
            builds, opens = [], []
            path = Path(tmp) / f"report-{n}.html"
            for _ in range(args.runs):
                t0 = time.perf_counter()
                body = build_report_html(data).encode("utf-8")
                builds.append(time.perf_counter() - t0)
                path.write_bytes(body)
                opens.append(open_seconds(browser, path, table=True))
            rows.append(
                (
                    f"{n:,} records",
                    (len(body), statistics.median(builds)),
                    (
                        statistics.median(o for o, _ in opens),
                        statistics.median(s for _, s in opens),
                    ),
                )
            )
        browser.close()
    print(f"{'page':<18}{'HTML bytes':>14}{'build s':>10}{'Chromium open s':>18}{'search s':>10}")
    for name, built, (opened, searched) in rows:
        size, build = built if built else (0, 0.0)
        print(f"{name:<18}{size:>14,}{build:>10.2f}{opened:>18.2f}{searched:>10.2f}")


if __name__ == "__main__":
    main()
