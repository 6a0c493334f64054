"""Runs whose reports are pinned byte for byte (SHA-256 and size of each file in
``tests/report/pinned_reports.json``): an upload still pending, the same run reconciled
(created, a conflict, an unconfirmed record, a rejected row; its page also with fewer
failure rows than there are), a held run that would disable and change people (its
``held.csv`` too, and its held section listing fewer rows than there are), and a report
with no record.

``python -m tests.report.report_scenarios`` pins the files the code writes now;
``... DIR`` also writes them into DIR, to read."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import tempfile
from collections.abc import Callable, Iterable
from datetime import timedelta
from pathlib import Path

from connector.report import ReportInput, write_reports
from connector.report_held import held_section
from connector.sync.run_keys import HELD_NAME
from tests.sync.fakes import people
from tests.sync.world import World

PINNED = Path(__file__).parent / "pinned_reports.json"
FILES = ("report.json", "failures.csv", "report.html")
SCENARIOS = ("pending", "reconciled", "held", "no records")

Page = Callable[[ReportInput, int], str]
"""``report.html`` with at most so many failure rows."""


def _stored(w: World, run_id: str) -> dict[str, bytes]:
    return {f: w.store.read_artifact(f"employees/{run_id}/{f}") for f in FILES}


def first_load() -> list[tuple[str, ...]]:
    rows = people(60)
    rows[4] = (rows[4][0], rows[3][1], *rows[4][2:])  # E0005 takes E0004's userPrincipalName
    rows.insert(7, ("E0099", "", "No Name", "Sales", "", "Active"))  # rejected: no userName
    return rows


def scenarios(tmp: Path, page: Page) -> dict[str, dict[str, bytes]]:
    """Each scenario's report files, as the engine writes them."""
    w = World(tmp)
    w.service.silent.add("E0010")
    first = w.sync("hr_20260302.csv", first_load())
    out = {"pending": _stored(w, first.run_id)}
    w.reconcile(timedelta(hours=3))
    out["reconciled"] = _stored(w, first.run_id)
    journal = w.engine.runs.require("employees", first.run_id)
    short = page(w.engine.reporter.report_input(journal), 2).encode("utf-8")
    out["reconciled"]["report-2-failures.html"] = short
    w.clock.advance(86400)
    later = [(*p[:3], "Legal" if i % 4 == 0 else p[3], *p[4:]) for i, p in enumerate(people(20))]
    held = w.sync("hr_20260303.csv", later)
    out["held"] = _stored(w, held.run_id)
    out["held"][HELD_NAME] = w.store.read_artifact(f"employees/{held.run_id}/{HELD_NAME}")
    journal = w.engine.runs.require("employees", held.run_id)
    view = w.engine.reporter.report_input(journal).changes
    assert view is not None
    short_section = held_section(view, journal.batches_total or 0, max_rows=3)
    out["held"]["held-section-3-rows.html"] = short_section.encode("utf-8")
    data = dataclasses.replace(
        w.engine.reporter.report_input(journal), records=[], brief_records=None, outcome_counts={}
    )
    got: dict[str, bytes] = {}

    def put(name: str, parts: Iterable[bytes], ctype: str) -> str:
        got[name] = b"".join(parts)
        return name

    write_reports(data, put)
    out["no records"] = got
    return out


def digests(written: dict[str, dict[str, bytes]]) -> dict[str, dict[str, str]]:
    """``sha256:size`` of each file of each scenario."""
    return {
        name: {f: f"{hashlib.sha256(b).hexdigest()}:{len(b)}" for f, b in files.items()}
        for name, files in written.items()
    }


def main(page: Page) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        written = scenarios(Path(tmp), page)
    PINNED.write_text(json.dumps(digests(written), indent=2) + "\n", "utf-8")
    if len(sys.argv) > 1:
        for name, files in written.items():
            folder = Path(sys.argv[1]) / name.replace(" ", "-")
            folder.mkdir(parents=True, exist_ok=True)
            for f, body in files.items():
                (folder / f).write_bytes(body)


if __name__ == "__main__":
    from connector.report_html import build_report_html

    main(lambda data, rows: build_report_html(data, max_failure_rows=rows))
