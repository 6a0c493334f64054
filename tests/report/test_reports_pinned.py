"""The reports of a few runs are the bytes pinned in ``tests/report/pinned_reports.json``
(pinned by ``python -m tests.report.report_scenarios``): how the reports are counted and
streamed may change, what they say may not without pinning them again."""

from __future__ import annotations

import json

import pytest

from connector.report import ReportInput
from connector.report_html import build_report_html
from tests.report.report_scenarios import FILES, PINNED, SCENARIOS, digests, scenarios


def _page(data: ReportInput, rows: int) -> str:
    return build_report_html(data, max_failure_rows=rows)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, str]]:
    return digests(scenarios(tmp_path_factory.mktemp("pinned"), _page))


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("name", FILES)
def test_reports_are_byte_identical_to_the_pinned_ones(
    written: dict[str, dict[str, str]], scenario: str, name: str
) -> None:
    pinned = json.loads(PINNED.read_text("utf-8"))
    assert written[scenario][name] == pinned[scenario][name]


def test_a_page_listing_fewer_failures_than_there_are_is_the_pinned_one(
    written: dict[str, dict[str, str]],
) -> None:
    pinned = json.loads(PINNED.read_text("utf-8"))
    name = "report-2-failures.html"
    assert written["reconciled"][name] == pinned["reconciled"][name]


@pytest.mark.parametrize("name", ["held.csv", "held-section-3-rows.html"])
def test_a_held_runs_csv_and_a_section_listing_fewer_rows_than_there_are_are_the_pinned_ones(
    written: dict[str, dict[str, str]], name: str
) -> None:
    pinned = json.loads(PINNED.read_text("utf-8"))
    assert written["held"][name] == pinned["held"][name]
