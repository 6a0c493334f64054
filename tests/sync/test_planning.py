"""Planning a run: a file refused at the rejected-row cap keeps its rows on the run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from connector.errors import (
    RejectedShareExceededError,
)
from connector.extract import ExtractStats
from connector.extract import RejectedRow as ExtractRejectedRow
from connector.sync.journal_doc import journal_to_doc
from tests.sync.fakes import people
from tests.sync.world import World


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
    doc = journal_to_doc(w.engine.get_run(run.run_id))
    assert len(doc["rejected"]) == 1000
    assert doc["rejected"][0] == {
        "line": 2,
        "externalId": "E0002",
        "reason": "missing: userName is empty",
    }
    assert doc["rejectedCount"] == 1500
    assert doc["rejectedOmitted"] == 500
    assert doc["rowsInFile"] == 2000
