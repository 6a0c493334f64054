"""What a run's reports count over its records, counted in one pass.

report.json (the action × outcome table; the outcomes when the journal has none) and
report.html (the same table, the number of failures and the first ones listed) read one
:class:`RecordCounts`, made by :func:`count_records` in a single pass over the records
before the files are written, instead of each counting on its own. It holds counts and
at most ``keep`` problem rows: its size does not grow with the run. failures.csv lists
every problem (:func:`problems`), in the same order.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from connector.report import RecordRow, RejectedRow

__all__ = [
    "PROBLEM_OUTCOMES",
    "Problem",
    "RecordCounts",
    "count_records",
    "problems",
]

PROBLEM_OUTCOMES = frozenset(
    {
        "failed",
        "skipped",
        "unconfirmed",
        "created (manager unresolved)",
        "updated (manager unresolved)",
    }
)
"""Outcomes of a record that needs a look (a row of failures.csv)."""

Problem = tuple[str, str, str, str, str]
"""(externalId, line, action, error code, reason) of a record or rejected row."""


@dataclass(frozen=True, slots=True)
class RecordCounts:
    """The records counted: by action and outcome, by outcome, and their problems."""

    by_action: dict[str, dict[str, int]]
    """Records by planned action, then outcome (each in the order first met)."""
    by_outcome: dict[str, int]
    """Records by outcome (in the order first met)."""
    problems: int
    """Records whose outcome is in :data:`PROBLEM_OUTCOMES`."""
    first_problems: tuple[Problem, ...]
    """The first ``keep`` of them, in record order."""
    keep: int
    """How many problem rows a page lists (records first, then rejected rows)."""

    def first_rows(self, rejected: Sequence[RejectedRow]) -> list[Problem]:
        """The problems a page lists: the first ``keep`` records, then rejected rows."""
        room = max(0, self.keep - len(self.first_problems))
        return [*self.first_problems, *(_rejected_problem(r) for r in rejected[:room])]


def _record_problem(r: RecordRow) -> Problem:
    line = "" if r.line is None else str(r.line)
    return (r.external_id, line, r.action, r.error_code or r.outcome, r.reason or "")


def _rejected_problem(r: RejectedRow) -> Problem:
    return (r.external_id or "", str(r.line), "rejected", "RejectedRow", r.reason)


def count_records(records: Iterable[RecordRow], *, keep: int = 1000) -> RecordCounts:
    """One pass over ``records``: every count the reports show, and the first ``keep``
    problems."""
    by_action: dict[str, dict[str, int]] = {}
    by_outcome: dict[str, int] = {}
    first: list[Problem] = []
    n_problems = 0
    for r in records:
        row = by_action.setdefault(r.action, {})
        row[r.outcome] = row.get(r.outcome, 0) + 1
        by_outcome[r.outcome] = by_outcome.get(r.outcome, 0) + 1
        if r.outcome in PROBLEM_OUTCOMES:
            n_problems += 1
            if len(first) < keep:
                first.append(_record_problem(r))
    return RecordCounts(by_action, by_outcome, n_problems, tuple(first), keep)


def problems(records: Iterable[RecordRow], rejected: Iterable[RejectedRow]) -> Iterator[Problem]:
    """Every record that needs a look, then every rejected row (failures.csv's rows)."""
    for r in records:
        if r.outcome in PROBLEM_OUTCOMES:
            yield _record_problem(r)
    for rej in rejected:
        yield _rejected_problem(rej)
