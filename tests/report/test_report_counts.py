"""The counts every report file shows, made in one pass over the records."""

from __future__ import annotations

import json

from connector.report import RecordRow, RejectedRow, build_report_json
from connector.report_counts import count_records, problems
from tests.report.sample_report import sample_input


def _rows() -> list[RecordRow]:
    return [
        RecordRow("E1", "joiner", "created"),
        RecordRow("E2", "joiner", "failed", line=3, error_code="Conflict", reason="taken"),
        RecordRow("M1", "mover", "updated"),
        RecordRow("E3", "joiner", "unconfirmed", line=5),
        RecordRow("E4", "joiner", "created"),
        RecordRow("M2", "mover", "skipped", line=7, reason="manager missing"),
    ]


def test_records_are_counted_by_action_and_outcome_in_the_order_first_met() -> None:
    counts = count_records(_rows())
    assert counts.by_action == {
        "joiner": {"created": 2, "failed": 1, "unconfirmed": 1},
        "mover": {"updated": 1, "skipped": 1},
    }
    assert list(counts.by_outcome.items()) == [
        ("created", 2),
        ("failed", 1),
        ("updated", 1),
        ("unconfirmed", 1),
        ("skipped", 1),
    ]
    assert counts.problems == 3


def test_only_the_first_problems_a_page_lists_are_kept() -> None:
    counts = count_records(_rows(), keep=2)
    assert counts.problems == 3
    assert counts.first_problems == (
        ("E2", "3", "joiner", "Conflict", "taken"),
        ("E3", "5", "joiner", "unconfirmed", ""),
    )
    rejected = [RejectedRow(9, "missing userName", "X1")]
    assert counts.first_rows(rejected) == list(counts.first_problems)  # the page is full
    roomy = count_records(_rows(), keep=4)
    assert roomy.first_rows(rejected)[-1] == (
        "X1",
        "9",
        "rejected",
        "RejectedRow",
        "missing userName",
    )
    assert roomy.first_rows(rejected) == list(problems(_rows(), rejected))


def test_outcomes_left_unknown_are_counted_from_the_records() -> None:
    data = sample_input(outcome_counts=None)
    doc = json.loads(build_report_json(data))
    assert doc["outcomes"] == count_records(data.records).by_outcome
    assert doc["outcomes"]["created"] == 40
